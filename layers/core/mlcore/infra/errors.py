"""Domain errors. Handlers map these to 4xx responses or to failed workflow states."""


class MLError(Exception):
    """Base class: the message is meant for the user and names the problem."""


class InvalidInput(MLError):
    """The caller sent something we cannot use (bad CSV, bad spec, bad instance)."""


class NotFoundError(MLError):
    """A data set, run or model that was asked for does not exist."""


class ConflictError(MLError):
    """The request conflicts with the current state (e.g. a promotion that does not beat production)."""
