"""The Celery app, configured from Django settings (namespace CELERY_)."""

import os
from typing import Any

from celery import Celery, signals

from jobs import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# redis:// broker URLs use kombu's Redis transport with one client per pool (jobs/broker.py).
broker.register()

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def _use_django_logging(**_: Any) -> None:
    """Workers and beat log like the web: Django's LOGGING (JSON lines with request and task ids)."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
