"""Celery tasks: thin, idempotent wrappers around services that take ids."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_ready
from django.db import OperationalError

from config.celery import enqueue
from portfolio import services, webhooks

# Transient database errors are retried with backoff; everything else fails loudly. The
# backoff (1, 2, 4, then 8 s, each with random jitter) stays under half the broker's
# visibility timeout, so a waiting retry is never handed out twice, and ten retries ride
# out a database restart of half a minute or more; a longer outage leaves the flags to
# the sweep.
RETRY = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_backoff_max": 8,
    "max_retries": 10,
    "acks_late": True,
}


@shared_task(**RETRY)
def recompute_use_case(use_case_id: int) -> bool:
    # Overwrites the derived figures, so running twice is harmless; a use case
    # deleted after the task was queued is skipped.
    return services.recompute_use_case(use_case_id=use_case_id, reason="inputs changed")


@shared_task(**RETRY)
def run_recompute_job(job_id: int) -> None:
    services.run_recompute_job(job_id=job_id)


@shared_task(**RETRY)
def recompute_job_chunk(job_id: int, use_case_ids: list[int]) -> int:
    return services.recompute_job_chunk(job_id=job_id, use_case_ids=use_case_ids)


@shared_task(**RETRY)
def recompute_stale() -> int:
    """The sweep: recompute what is still flagged and re-enqueue jobs whose enqueue was lost."""
    services.requeue_lost_jobs()
    return services.recompute_stale().use_cases


@shared_task(**RETRY)
def nightly_portfolio() -> int:
    """Recompute the whole portfolio, re-evaluate every checklist (expired waivers re-open),
    then store the day's portfolio snapshot."""
    scope = {"all": True, "snapshot": True, "governance": True}
    return services.start_recompute_job(reason="nightly recompute", scope=scope).pk


# One attempt per run: retries are scheduled by the delivery itself, with its own backoff.
# Hard-limited well below the claim an attempt holds, so a stuck one is swept, not doubled.
@shared_task(**{**RETRY, "soft_time_limit": 60, "time_limit": 90})
def deliver_webhook(delivery_id: int) -> str | None:
    # A delivered, abandoned or missing delivery is left alone, so running twice sends once.
    delivery = webhooks.deliver(delivery_id=delivery_id)
    return None if delivery is None else delivery.status


@shared_task(**RETRY)
def sweep_webhook_deliveries() -> int:
    """Queue webhook deliveries whose enqueue or retry was lost."""
    return webhooks.requeue_due_deliveries()


@shared_task(**RETRY)
def sweep_import_previews() -> int:
    """Delete uploaded import files whose preview expired unconfirmed."""
    return services.delete_stale_import_previews()


@worker_ready.connect
def sweep_on_worker_start(sender, **kwargs) -> None:
    # Whatever changed while no worker was running is picked up at once (else by the periodic sweep).
    enqueue(recompute_stale)
