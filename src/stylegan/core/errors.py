"""User-facing errors. The CLI prints these as one line, without a traceback."""


class StyleGANError(Exception):
    """An error caused by the user's input or environment, with a message that says what to do."""


class UsageError(StyleGANError):
    """A flag or argument has a value that is not allowed. The message names the flag and the allowed values."""
