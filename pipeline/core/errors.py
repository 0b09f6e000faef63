"""The errors a user can fix: the stages turn these into one clear line and a non-zero exit code."""

LAST_WORD = "COLORIZE_LAST_WORD"  # set by the pipeline for the stages it runs: the file a stage writes that line to


class PipelineError(Exception):
    """A problem with the user's data or params, with a message that says what and where."""


class Stopped(Exception):
    """Work gave up early because the run was asked to stop (Ctrl-C); what it finished is kept."""


def one_line(text: str, limit: int = 300) -> str:
    """`text` on one line (runs of whitespace and newlines made single spaces), cut to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
