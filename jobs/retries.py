"""A running task sent again later without counting a failed attempt (waiting is not failing)."""

from celery import Task
from celery.exceptions import Reject, Retry


def task_wait(task: Task, *, exc: BaseException, countdown: float) -> Retry:
    """What `task.retry(exc=exc, countdown=countdown)` does, except that the message sent again
    keeps the retry count it came with; raise what it returns.

    For a task that waits for something (a provider's budget) rather than failed: however often
    it waits, it never runs out of retries, and its waits do not use up the retries its real
    failures get (`max_retries` for database errors, `task_retry_on_worker_lost`). `Task.retry`
    counts every call, and with `max_retries=None` it means the task's own limit, not none.
    """
    request = task.request
    if request.called_directly:  # not run by a worker: there is no message to send again
        raise exc
    again = task.signature_from_request(request, countdown=countdown, retries=request.retries)
    try:
        again.apply_async()
    except Exception as error:  # as Task.retry does: the broker refused it; the sweeper sends the record again
        raise Reject(error, requeue=False) from error
    return Retry(exc=exc, when=countdown, sig=again)
