"""Domain errors. Handlers map these to 4xx responses or to failed workflow states."""

ECHO_CHARS = 100  # the most of a user's value an error message quotes


def echo(value: object) -> str:
    """A user's value as an error message quotes it (its repr), cut to ECHO_CHARS characters with an ellipsis and
    the value's length: a 1 MB data set name is not sent back whole. ``echo("x" * 10**6)`` is ``'xxx…x'… (1000000
    characters)`` with 100 characters of the repr."""
    text = repr(value)
    if len(text) <= ECHO_CHARS:
        return text
    size = len(value) if isinstance(value, str | bytes) else len(text)
    return f"{text[:ECHO_CHARS]}… ({size} characters)"


class MLError(Exception):
    """Base class: the message is meant for the user and names the problem."""


class InvalidInput(MLError):
    """The caller sent something we cannot use (bad CSV, bad spec, bad instance)."""


class Unprocessable(InvalidInput):
    """Well-formed, but the thing asked for cannot be done with it (HTTP 422), e.g. an ONNX export of a model
    whose preprocessing ONNX cannot express."""


class NotFoundError(MLError):
    """A data set, run or model that was asked for does not exist."""


class ConflictError(MLError):
    """The request conflicts with the current state (e.g. a promotion that does not beat production)."""


class LimitExceeded(MLError):
    """A ceiling of the stack is reached (e.g. concurrent training runs): retry later, or raise the ceiling."""


class CorruptData(MLError):
    """Stored data the server wrote cannot be used (e.g. a damaged model version): a 500 naming what is wrong."""
