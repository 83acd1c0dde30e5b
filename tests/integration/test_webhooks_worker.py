"""Webhooks end to end: a committed change, a real worker on Redis, a receiver on loopback."""

import datetime
import json
import time

import pytest

from portfolio import services, webhooks
from portfolio.models import WebhookDelivery
from tests.integration.conftest import broker, unacked_tasks, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_the_worker_delivers_signed_events_and_retries_with_backoff(start_worker, receiver, settings, team, manager):
    # The receiver is on loopback; the worker retries after 1 s, then 2 s.
    start_worker(WEBHOOK_ALLOW_PRIVATE_TARGETS="true", WEBHOOK_RETRY_BASE_SECONDS="1")
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    subscription = webhooks.create_subscription(owner=manager, target_url=receiver.url, events=["use_case.created"])
    receiver.statuses = [500, 503]

    use_case = services.create_use_case(team=team, title="FAQ bot")  # Commits: the delivery is queued.

    delivery = wait_until(
        lambda: WebhookDelivery.objects.filter(subscription=subscription, status="delivered").first(), timeout=30
    )
    assert delivery is not None, WebhookDelivery.objects.values()
    assert (delivery.attempts, delivery.last_status_code) == (3, 200)
    assert len(receiver.requests) == 3
    request = receiver.requests[-1]
    expected = webhooks.sign(
        secret=subscription.secret, timestamp=int(request.headers["X-Webhook-Timestamp"]), body=request.body
    )
    assert request.headers["X-Signature"] == expected
    assert json.loads(request.body)["data"]["id"] == use_case.pk


def test_a_retry_longer_than_the_visibility_timeout_is_sent_by_the_sweep(
    start_worker, celery_beat, receiver, settings, team, manager
):
    # A 12 s backoff under the 20 s visibility timeout is more than half of it: no countdown
    # task is held by the worker (Redis would hand it out again and again); beat's sweep
    # queues the retry once it is due.
    start_worker(WEBHOOK_ALLOW_PRIVATE_TARGETS="true", WEBHOOK_RETRY_BASE_SECONDS="12", CELERY_VISIBILITY_TIMEOUT="20")
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    subscription = webhooks.create_subscription(owner=manager, target_url=receiver.url, events=["use_case.created"])
    receiver.statuses = [503]

    services.create_use_case(team=team, title="FAQ bot")

    failed = wait_until(
        lambda: WebhookDelivery.objects.filter(subscription=subscription, status="failed").first(), timeout=20
    )
    assert failed is not None, WebhookDelivery.objects.values()
    time.sleep(1)  # Long enough for a countdown task, had one been sent, to reach the queue or the worker.
    waiting = unacked_tasks() + [json.loads(message) for message in broker().lrange("celery", 0, -1)]
    assert not [task for task in waiting if task["headers"]["task"].endswith("deliver_webhook")]
    delivery = wait_until(
        lambda: WebhookDelivery.objects.filter(subscription=subscription, status="delivered").first(), timeout=30
    )
    assert delivery is not None, WebhookDelivery.objects.values()
    assert (delivery.attempts, len(receiver.requests)) == (2, 2)
    assert delivery.delivered_at - failed.next_attempt_at < datetime.timedelta(seconds=5)  # Sent once due.
