"""Prefect flows: one per DVC stage (`python -m flows.<stage>`), thin wrappers around `pipeline`."""

import logging
import os

# No traffic beyond loopback: Prefect's temporary server would otherwise send usage telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Show the library's log lines (progress, warnings) in Prefect's logs and UI.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "pipeline")
logging.getLogger("pipeline").setLevel(logging.INFO)
