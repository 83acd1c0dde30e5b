"""Celery tasks: thin, idempotent wrappers around services that take ids."""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from portfolio import services

RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "max_retries": 5, "acks_late": True}


@shared_task(**RETRY)
def recompute_use_case(use_case_id: int) -> bool:
    # Overwrites the derived figures, so running twice is harmless; a use case
    # deleted after the task was queued is skipped.
    return services.recompute_use_case(use_case_id=use_case_id, reason="inputs changed")


@shared_task(**RETRY)
def recompute_stale() -> int:
    return services.recompute_stale().use_cases


@shared_task(**RETRY)
def recompute_portfolio() -> int:
    return services.recompute_portfolio(reason="nightly recompute").use_cases
