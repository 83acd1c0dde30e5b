"""The Celery app, and the one way the project queues a task."""

import logging
import os
from typing import Any

from celery import Celery
from celery.app.task import Task
from django.db import transaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)


def enqueue(task: str | Task, *args: Any, countdown: float | None = None) -> bool:
    """Queue ``task`` (a task or its registered name); a broker that cannot take it is logged, not raised.

    Every caller has recorded its intent in the database first (a use case flagged
    ``needs_recompute``, a queued job, a pending webhook delivery), so a lost enqueue costs
    a delay until the sweep that reads that record, never data or the request. A name no
    task is registered under is a bug and raises ``KeyError``.
    """
    if isinstance(task, str):
        task = app.tasks[task]
    try:
        task.apply_async(args, countdown=countdown)
    except Exception:  # Any broker failure (connection, timeout, serialisation).
        logger.warning("Could not enqueue %s%s; left for the sweep.", task.name, args)
        return False
    return True


def enqueue_on_commit(task: str | Task, *args: Any) -> None:
    """``enqueue`` once the current transaction commits (at once outside one); nothing if it rolls back."""
    transaction.on_commit(lambda: enqueue(task, *args))
