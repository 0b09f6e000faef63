"""Prefect flows: one per DVC stage (`python -m flows.<stage>`), thin wrappers around `pipeline`."""

import os

# Show the library's log lines (progress, warnings) in Prefect's logs and UI.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "pipeline")
