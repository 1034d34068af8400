"""Exceptions that tasks raise to end a record FAILED with a readable reason."""


class TaskFailed(Exception):
    """The work failed for a reason already stored by the domain; do not retry."""


class RetryRefused(Exception):
    """An app's retry handler declined to start the work again; the message says why."""
