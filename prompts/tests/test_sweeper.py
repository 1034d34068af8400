"""A request whose task the sweeper gives up on ends FAILED, never PENDING for ever."""

from datetime import timedelta

from django.utils import timezone

from jobs.models import TaskRecord
from jobs.services import task_records_sweep
from prompts.models import PromptRequest


def test_sweeper_gives_up_after_max_sends_and_fails_the_request(db, make_user, settings):
    user = make_user()
    request = PromptRequest.objects.create(owner=user, model="gpt-4o-mini", prompt_text="lost")
    record = TaskRecord.objects.create(
        name="prompts.process_prompt_request",
        queue="prompts.low",
        owner=user,
        target_type="prompts.promptrequest",
        target_id=str(request.pk),
        sends=settings.JOBS_MAX_SENDS,
    )
    TaskRecord.objects.filter(pk=record.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    counts = task_records_sweep()

    assert counts["failed"] == 1
    record.refresh_from_db()
    request.refresh_from_db()
    assert record.state == "FAILURE" and "Gave up after" in record.error
    assert request.status == "FAILED" and "Gave up after" in request.error
