"""Settings that must hold for delivery to stay safe, checked on every run."""

import os
import subprocess
import sys

from celery import current_app
from django.conf import settings

from conftest import BASE_DIR


def test_every_time_limit_countdown_and_backoff_stays_below_the_visibility_timeout():
    """Otherwise Redis hands a task that is still running (or waiting to retry) to a second worker."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    # every attempt may first wait for the provider budget, then time out; backoff between attempts
    attempt_worst_case = settings.AI_BUDGET_MAX_WAIT_SECONDS + settings.AI_TIMEOUT_SECONDS
    ai_worst_case = attempt_worst_case * (settings.AI_MAX_RETRIES + 1) + 8 * settings.AI_MAX_RETRIES

    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT < visibility
    assert ai_worst_case < settings.CELERY_TASK_TIME_LIMIT, "a provider call must end before the hard limit"
    assert settings.JOBS_RESEND_AFTER_SECONDS < visibility
    # a task that found no provider budget comes back after at most this (held unacknowledged meanwhile)
    assert settings.AI_BUDGET_MAX_COUNTDOWN_SECONDS < visibility / 10
    for name, task in current_app.tasks.items():
        if name.startswith("celery."):
            continue
        for limit in (task.time_limit, task.soft_time_limit):
            assert limit is None or limit < visibility, name
        backoff_max = getattr(task, "retry_backoff_max", None) if getattr(task, "retry_backoff", False) else None
        assert backoff_max is None or backoff_max < visibility, name
        assert (task.default_retry_delay or 0) < visibility, name


def test_manage_check_deploy_reports_nothing_with_production_settings():
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "x" * 64 + "production-like-secret-key-for-the-check",
        "DATABASE_URL": "postgres://app@db.invalid:5432/app",
        "REDIS_URL": "redis://redis.invalid:6379/0",
        "ALLOWED_HOSTS": "api.example.com",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
