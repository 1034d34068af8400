"""Exceptions that tasks raise to end a record FAILED with a readable reason."""


class TaskFailed(Exception):
    """The work failed for a reason already stored by the domain; do not retry."""
