"""The errors a user can fix: the stages turn these into one clear line and a non-zero exit code."""


class PipelineError(Exception):
    """A problem with the user's data or params, with a message that says what and where."""
