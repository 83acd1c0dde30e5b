"""Signed outbound webhooks, delivered to a real HTTP receiver on loopback.

The receiver is ``http.server`` in a thread on 127.0.0.1, so these tests allow private
targets (``WEBHOOK_ALLOW_PRIVATE_TARGETS``) except where they prove the refusal. Tasks
are called as functions; the broker is replaced by a recorder, so nothing runs eagerly
behind a test's back.
"""

import datetime
import json
import re
import socket
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from portfolio import governance, services, tasks, webhooks
from portfolio.api.serializers import UseCaseSerializer
from portfolio.governance import GateRefused
from portfolio.models import (
    ChecklistItem,
    ChecklistTemplate,
    Membership,
    RecomputeJob,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from pricing import services as pricing_services
from tests.factories import (
    ChecklistTemplateFactory,
    MembershipFactory,
    UserFactory,
    WebhookDeliveryFactory,
    WebhookSubscriptionFactory,
)

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"
ALL_EVENTS = WebhookEvent.values
TEAM_EVENTS = [event for event in ALL_EVENTS if event not in ("price.changed", "recompute.finished")]
PUBLIC_URL = "https://93.184.215.14/hooks"  # A public address by number: no DNS lookup needed.

deliver_webhook = tasks.deliver_webhook  # The real task, kept before the recorder replaces it.


# --- The broker (the receiver is in tests/conftest.py) ----------------------------------------


@dataclass
class Broker:
    """Stands in for ``tasks.deliver_webhook``'s queue: records what is enqueued."""

    queued: list[int] = field(default_factory=list)
    retries: list[tuple[int, float]] = field(default_factory=list)
    down: bool = False

    def apply_async(self, args, countdown=None):
        if self.down:
            raise ConnectionError("broker unreachable")
        if countdown is None:
            self.queued.append(args[0])
        else:
            self.retries.append((args[0], countdown))


@pytest.fixture
def broker(monkeypatch):
    fake = Broker()
    monkeypatch.setattr(tasks.deliver_webhook, "apply_async", fake.apply_async)
    return fake


@pytest.fixture(autouse=True)
def webhook_settings(settings, broker):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0
    return settings


@pytest.fixture
def hook(manager, receiver):
    """A whole-portfolio subscription to every event, on the receiver."""
    return webhooks.create_subscription(owner=manager, target_url=receiver.url, events=ALL_EVENTS)


def deliveries(event: str) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(event_type=event).order_by("pk"))


def token_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def documented_verify():
    """The ``verify`` function of the README's recipe, run as it is written there."""
    section = README.read_text().split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace = {}
    exec(code, namespace)
    return namespace["verify"]


# --- Signing and delivery --------------------------------------------------------------------------


def test_a_delivery_is_signed_and_verifies_with_the_documented_recipe(hook, team, receiver):
    use_case = services.create_use_case(team=team, title="FAQ bot")
    (delivery,) = deliveries("use_case.created")

    assert deliver_webhook(delivery.pk) == "delivered"

    (request,) = receiver.requests
    assert request.path == "/hooks?source=portfolio"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Webhook-Id"] == str(delivery.event_id)
    assert request.headers["X-Webhook-Event"] == "use_case.created"
    assert request.headers["X-Webhook-Version"] == "1"
    assert abs(int(request.headers["X-Webhook-Timestamp"]) - time.time()) < 60
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", request.headers["X-Signature"])
    verify = documented_verify()
    assert verify(hook.secret, request.headers, request.body)
    assert not verify("another-secret", request.headers, request.body)
    assert not verify(hook.secret, request.headers, request.body.replace(b"FAQ bot", b"FAQ bat"))

    payload = json.loads(request.body)
    assert set(payload) == {"id", "type", "version", "created_at", "data"}
    assert payload["id"] == str(delivery.event_id) and payload["type"] == "use_case.created"
    # The resource as the API shows it.
    assert set(payload["data"]) == set(UseCaseSerializer.Meta.fields)
    assert payload["data"]["id"] == use_case.pk and payload["data"]["team"] == "support"


def test_the_recipe_refuses_a_replayed_old_delivery(hook):
    verify = documented_verify()
    body = b'{"id":"x"}'
    old = int(time.time()) - 301
    headers = {
        "X-Webhook-Timestamp": str(old),
        "X-Signature": webhooks.sign(secret=hook.secret, timestamp=old, body=body),
    }
    assert not verify(hook.secret, headers, body)
    now = int(time.time())
    headers = {
        "X-Webhook-Timestamp": str(now),
        "X-Signature": webhooks.sign(secret=hook.secret, timestamp=now, body=body),
    }
    assert verify(hook.secret, headers, body)


def test_failed_attempts_are_retried_until_delivered(hook, team, receiver, broker):
    receiver.statuses = [500, 500]
    services.create_use_case(team=team, title="FAQ bot")
    (delivery,) = deliveries("use_case.created")

    assert deliver_webhook(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_status_code) == (1, 500)
    assert delivery.last_error == "HTTP 500 Internal Server Error: receiver says no"
    assert broker.retries == [(delivery.pk, 0)]  # The retry is scheduled with its backoff.

    assert deliver_webhook(delivery.pk) == "failed"
    assert deliver_webhook(delivery.pk) == "delivered"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "delivered",
        3,
        200,
        "",
    )
    assert delivery.delivered_at is not None
    # Every attempt carries the same event id, so the receiver can drop duplicates.
    assert {request.headers["X-Webhook-Id"] for request in receiver.requests} == {str(delivery.event_id)}

    # Delivered: running the task again sends nothing.
    assert deliver_webhook(delivery.pk) == "delivered"
    assert len(receiver.requests) == 3


def test_a_short_retry_is_queued_with_its_countdown(hook, team, receiver, settings, broker):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 20}
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10  # Half the visibility timeout: still safe to hold.
    receiver.statuses = [503]
    services.create_use_case(team=team, title="FAQ bot")
    (delivery,) = deliveries("use_case.created")

    assert deliver_webhook(delivery.pk) == "failed"
    assert broker.retries == [(delivery.pk, 10)]
    assert deliver_webhook(delivery.pk) == "failed"  # Too early: nothing is sent.
    assert len(receiver.requests) == 1


def test_a_long_retry_is_left_to_the_sweep_until_it_is_due(hook, team, receiver, settings, broker):
    # Redis hands a task held past its visibility timeout to a worker again: a 30 s
    # countdown under a 20 s timeout would be queued over and over. The sweep sends it.
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 20}
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    receiver.statuses = [503]
    services.create_use_case(team=team, title="FAQ bot")
    (delivery,) = deliveries("use_case.created")
    broker.queued.clear()
    before = timezone.now()

    assert deliver_webhook(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert (
        before + datetime.timedelta(seconds=29)
        < delivery.next_attempt_at
        < timezone.now() + datetime.timedelta(seconds=31)
    )
    assert broker.retries == []
    assert tasks.sweep_webhook_deliveries() == 0 and broker.queued == []  # Not due yet.
    deliver_webhook(delivery.pk)  # Too early: nothing is sent.
    assert len(receiver.requests) == 1

    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert tasks.sweep_webhook_deliveries() == 1  # Due: queued at once, with no grace.
    assert broker.queued == [delivery.pk]
    assert deliver_webhook(delivery.pk) == "delivered" and len(receiver.requests) == 2


def test_backoff_doubles_from_the_base():
    assert [webhooks.backoff_seconds(attempts, base=30) for attempts in range(1, 9)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3840,
    ]


def test_a_target_that_keeps_failing_is_abandoned_then_disabled(hook, team, receiver, settings):
    assert (settings.WEBHOOK_MAX_ATTEMPTS, settings.WEBHOOK_DISABLE_AFTER) == (8, 5)
    receiver.statuses = [500] * 100
    for number in range(5):
        services.create_use_case(team=team, title=f"Use case {number}")
    pending = deliveries("use_case.created")
    assert len(pending) == 5

    for number, delivery in enumerate(pending, start=1):
        for _attempt in range(8):
            deliver_webhook(delivery.pk)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("abandoned", 8)
        hook.refresh_from_db()
        assert hook.consecutive_failures == number
        assert hook.active == (number < 5)
    assert len(receiver.requests) == 40
    assert "5 deliveries in a row were abandoned" in hook.disabled_reason
    assert "HTTP 500" in hook.disabled_reason

    # Its owner sees why; a disabled subscription receives no new events.
    shown = token_client(hook.owner).get(f"/api/v1/webhooks/{hook.pk}/").json()
    assert shown["active"] is False and shown["disabled_reason"] == hook.disabled_reason
    services.create_use_case(team=team, title="After")
    assert len(deliveries("use_case.created")) == 5

    # Turned back on, it starts afresh.
    answer = token_client(hook.owner).patch(f"/api/v1/webhooks/{hook.pk}/", {"active": True}, format="json")
    assert answer.status_code == 200
    assert (answer.json()["disabled_reason"], answer.json()["consecutive_failures"]) == ("", 0)


def test_a_success_resets_the_failure_count(hook, team, receiver):
    WebhookSubscription.objects.filter(pk=hook.pk).update(consecutive_failures=3)
    services.create_use_case(team=team, title="FAQ bot")
    deliver_webhook(deliveries("use_case.created")[0].pk)
    hook.refresh_from_db()
    assert hook.consecutive_failures == 0


def test_a_timeout_is_a_failed_attempt(hook, team, receiver, monkeypatch):
    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.2)
    receiver.delay = 1
    services.create_use_case(team=team, title="FAQ bot")
    (delivery,) = deliveries("use_case.created")
    assert deliver_webhook(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert delivery.last_status_code is None and "Timed out" in delivery.last_error


def test_a_redirect_is_a_failure_and_is_not_followed(hook, team, receiver):
    receiver.statuses = [302]
    services.create_use_case(team=team, title="FAQ bot")
    (delivery,) = deliveries("use_case.created")
    assert deliver_webhook(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert delivery.last_status_code == 302 and len(receiver.requests) == 1


def test_an_unreachable_target_is_a_failed_attempt(manager, team):
    with socket.socket() as probe:  # A loopback port nothing listens on.
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    webhooks.create_subscription(
        owner=manager, target_url=f"http://127.0.0.1:{port}/hooks", events=["use_case.created"]
    )
    services.create_use_case(team=team, title="FAQ bot")
    (delivery,) = deliveries("use_case.created")
    assert deliver_webhook(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert "ConnectionRefusedError" in delivery.last_error


def test_a_path_with_other_characters_is_sent_percent_encoded(manager, team, receiver):
    base = receiver.url.split("/hooks")[0]
    webhooks.create_subscription(
        owner=manager, target_url=f"{base}/hooks/ünïcode?team=R%26D&x=1", events=["use_case.created"]
    )
    services.create_use_case(team=team, title="FAQ bot")
    assert deliver_webhook(deliveries("use_case.created")[0].pk) == "delivered"
    assert receiver.requests[0].path == "/hooks/%C3%BCn%C3%AFcode?team=R%26D&x=1"


def test_an_unforeseen_error_counts_as_a_failed_attempt(hook, team, monkeypatch, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 1

    def broken(*args, **kwargs):
        raise ValueError("unforeseen")

    monkeypatch.setattr(webhooks, "post", broken)
    services.create_use_case(team=team, title="FAQ bot")
    assert deliver_webhook(deliveries("use_case.created")[0].pk) == "abandoned"
    assert deliveries("use_case.created")[0].last_error == "ValueError: unforeseen"


def test_a_disabled_subscription_abandons_its_open_deliveries_unsent(hook, team, receiver):
    services.create_use_case(team=team, title="FAQ bot")
    (delivery,) = deliveries("use_case.created")
    webhooks.update_subscription(subscription=hook, active=False)
    assert deliver_webhook(delivery.pk) == "abandoned"
    assert receiver.requests == []


def test_the_task_tolerates_a_missing_delivery():
    assert deliver_webhook(987654) is None


def test_a_claimed_delivery_is_not_sent_twice(hook, team, receiver):
    services.create_use_case(team=team, title="FAQ bot")
    (delivery,) = deliveries("use_case.created")
    # Another worker holds the attempt (its claim pushed the next attempt into the future).
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=1, next_attempt_at=timezone.now() + datetime.timedelta(seconds=webhooks.CLAIM_SECONDS)
    )
    assert deliver_webhook(delivery.pk) == "pending"
    assert receiver.requests == []


# --- Server-side request forgery -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8000/hooks",
        "http://[::1]/hooks",
        "http://localhost/hooks",
        "http://192.168.1.20/hooks",
        "http://172.16.0.1/hooks",
        "http://100.64.0.1/hooks",
        "http://0.0.0.0/hooks",
        "http://224.0.0.1/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://[fe80::1]/hooks",
    ],
)
def test_a_private_target_is_refused_with_a_400(manager, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    answer = token_client(manager).post(
        "/api/v1/webhooks/", {"target_url": url, "events": ["use_case.created"]}, format="json"
    )
    assert answer.status_code == 400, answer.content
    (message,) = answer.json()["target_url"]
    assert "public addresses only" in message
    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://93.184.215.14/hooks", "Only http and https targets are allowed."),
        ("https://user:pw@93.184.215.14/hooks", "Leave credentials out of the URL"),
        ("https://no-such-host.invalid/hooks", "cannot be resolved"),
    ],
)
def test_other_unusable_targets_are_refused_with_a_400(manager, settings, url, message):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    answer = token_client(manager).post(
        "/api/v1/webhooks/", {"target_url": url, "events": ["use_case.created"]}, format="json"
    )
    assert answer.status_code == 400
    assert message in answer.json()["target_url"][0]


def test_a_name_with_any_private_address_is_refused(manager, settings, monkeypatch):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    monkeypatch.setattr(webhooks, "resolve", lambda host, port: ["93.184.215.14", "10.1.2.3"])
    answer = token_client(manager).post(
        "/api/v1/webhooks/",
        {"target_url": "https://mixed.example.com/", "events": ["use_case.created"]},
        format="json",
    )
    assert answer.status_code == 400 and "10.1.2.3" in answer.json()["target_url"][0]


def test_the_target_is_checked_again_at_delivery_time(manager, team, settings, monkeypatch, receiver):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    port = receiver.url.split(":")[2].split("/")[0]
    monkeypatch.setattr(webhooks, "resolve", lambda host, port: ["93.184.215.14"])
    webhooks.create_subscription(
        owner=manager, target_url=f"http://hooks.example.com:{port}/hooks", events=["use_case.created"]
    )
    services.create_use_case(team=team, title="FAQ bot")
    (delivery,) = deliveries("use_case.created")
    # The name now points at loopback (DNS rebinding): refused, and nothing is sent.
    monkeypatch.setattr(webhooks, "resolve", lambda host, port: ["127.0.0.1"])
    assert deliver_webhook(delivery.pk) == "failed"
    delivery.refresh_from_db()
    assert "127.0.0.1" in delivery.last_error and "public addresses only" in delivery.last_error
    assert receiver.requests == []


def test_a_delivery_connects_to_the_address_it_checked(manager, team, monkeypatch, receiver):
    port = receiver.url.split(":")[2].split("/")[0]
    monkeypatch.setattr(webhooks, "resolve", lambda host, port: ["127.0.0.1"])
    webhooks.create_subscription(
        owner=manager, target_url=f"http://hooks.example.com:{port}/in", events=["use_case.created"]
    )
    services.create_use_case(team=team, title="FAQ bot")
    assert deliver_webhook(deliveries("use_case.created")[0].pk) == "delivered"
    (request,) = receiver.requests
    assert request.headers["Host"] == f"hooks.example.com:{port}" and request.path == "/in"


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "http://017700000001/"])
def test_loopback_spelled_as_a_number_is_refused(url):
    # URL validators refuse these spellings anyway; the resolver's check does not depend on it.
    with pytest.raises(webhooks.TargetRefused, match="public addresses only"):
        webhooks.resolve_target(url, allow_private=False)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700:4700::1111", True),
        ("10.0.0.1", False),
        ("127.0.0.1", False),
        ("::1", False),
        ("169.254.169.254", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        ("0.0.0.0", False),
        ("240.0.0.1", False),
        ("ff02::1", False),
        ("100.64.0.1", False),
        ("2002:7f00:1::", False),
        ("2002:5db8:d70e::", True),
        ("64:ff9b::7f00:1", False),
    ],
)
def test_public_addresses(address, public):
    assert webhooks.is_public_address(address) is public


# --- Events from every service path ------------------------------------------------------------


def test_events_are_written_with_the_change_and_queued_after_commit(
    hook, team, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.create_use_case(team=team, title="FAQ bot")
        # Written in the change's transaction, queued only once it commits.
        (delivery,) = deliveries("use_case.created")
        assert broker.queued == []
    assert broker.queued == [delivery.pk]


def test_a_rolled_back_change_leaves_no_delivery_and_queues_nothing(
    hook, team, broker, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.create_use_case(team=team, title="FAQ bot")
        assert len(deliveries("use_case.created")) == 1
        raise RuntimeError("the caller fails after the service")
    assert not WebhookDelivery.objects.exists()
    assert callbacks == [] and broker.queued == []


def test_a_refused_stage_gate_sends_nothing(hook, team, broker, django_capture_on_commit_callbacks):
    use_case = services.create_use_case(team=team, title="FAQ bot")
    WebhookDelivery.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(GateRefused):
        services.update_use_case(use_case=use_case, stage="production")
    assert not WebhookDelivery.objects.exists()
    assert callbacks == [] and broker.queued == []


def test_use_case_updates_and_stage_changes(hook, team):
    use_case = services.create_use_case(team=team, title="FAQ bot")
    services.update_use_case(use_case=use_case, title="FAQ bot v2")
    assert [d.payload["data"]["title"] for d in deliveries("use_case.updated")] == ["FAQ bot v2"]
    assert deliveries("use_case.stage_changed") == []

    services.update_use_case(use_case=use_case, stage="poc")
    (moved,) = deliveries("use_case.stage_changed")
    assert moved.payload["data"]["stage"] == "poc" and moved.payload["previous_stage"] == "idea"
    assert len(deliveries("use_case.updated")) == 2


def test_bulk_upserts_emit_created_updated_and_stage_changed(hook, team):
    services.bulk_upsert_use_cases(
        rows=[
            services.BulkRow(team=team, external_id="crm-1", fields={"title": "FAQ bot"}),
            services.BulkRow(team=team, external_id="crm-2", fields={"title": "Routing"}),
        ]
    )
    assert sorted(d.payload["data"]["external_id"] for d in deliveries("use_case.created")) == ["crm-1", "crm-2"]
    services.bulk_upsert_use_cases(
        rows=[
            services.BulkRow(team=team, external_id="crm-1", fields={"title": "FAQ bot", "stage": "poc"}),
            services.BulkRow(team=team, external_id="crm-2", fields={"title": "Routing v2"}),
        ]
    )
    assert sorted(d.payload["data"]["external_id"] for d in deliveries("use_case.updated")) == ["crm-1", "crm-2"]
    (moved,) = deliveries("use_case.stage_changed")
    assert (moved.payload["data"]["external_id"], moved.payload["previous_stage"]) == ("crm-1", "idea")


def test_deployment_changes(hook, team, gpt4o):
    use_case = services.create_use_case(team=team, title="FAQ bot")
    deployment = services.create_deployment(use_case=use_case, model=gpt4o, requests_per_month=1000)
    services.update_deployment(deployment=deployment, requests_per_month=2000)
    deployment_id = deployment.pk
    services.delete_deployment(deployment=deployment)
    changes = deliveries("deployment.changed")
    assert [(d.payload["action"], d.payload["data"]["id"]) for d in changes] == [
        ("created", deployment_id),
        ("updated", deployment_id),
        ("deleted", deployment_id),
    ]
    assert changes[1].payload["data"]["requests_per_month"] == 2000
    assert changes[1].payload["data"]["model"] == "openai/gpt-4o"


def test_an_automatic_item_that_fails_on_evaluation(hook, team):
    use_case = services.create_use_case(team=team, title="Social scoring", risk_tier="unacceptable")
    governance.evaluate_checklists(use_case_ids=[use_case.pk])
    failed = deliveries("checklist_item.failed")
    codes = {d.payload["data"]["code"] for d in failed}
    assert "core-risk-tier" in codes
    assert all(d.payload["data"]["status"] == "failed" and d.payload["data"]["team"] == "support" for d in failed)
    # Evaluated again, an item that stays failed is not news.
    governance.evaluate_checklists(use_case_ids=[use_case.pk])
    assert len(deliveries("checklist_item.failed")) == len(failed)


def test_a_manual_item_recorded_as_failed_and_an_item_waived(hook, team, member, manager):
    template = ChecklistTemplateFactory(code="red-team", kind=ChecklistTemplate.Kind.MANUAL)
    use_case = services.create_use_case(team=team, title="FAQ bot")
    governance.evaluate_checklists(use_case_ids=[use_case.pk])
    item = ChecklistItem.objects.get(use_case=use_case, template=template)

    governance.record_evidence(item=item, by=member, text="The red team found a jailbreak.", status="failed")
    (failed,) = deliveries("checklist_item.failed")
    assert (failed.payload["data"]["id"], failed.payload["data"]["recorded_by"]) == (item.pk, "alice")

    governance.waive_item(item=item, by=manager, reason="Accepted for the pilot.")
    (waived,) = deliveries("checklist_item.waived")
    assert waived.payload["data"]["status"] == "waived"
    assert waived.payload["data"]["waiver_reason"] == "Accepted for the pilot."


def test_a_new_price_and_an_imported_price_file(hook, gpt4o):
    price = pricing_services.add_price(
        model=gpt4o,
        input_per_million=Decimal("2.00"),
        output_per_million=Decimal("8.00"),
        effective_from=datetime.date(2030, 1, 1),
    )
    (added,) = deliveries("price.changed")
    assert added.payload["data"]["id"] == price.pk
    assert (added.payload["data"]["model"], added.payload["data"]["input_per_million"]) == ("openai/gpt-4o", "2.000000")

    pricing_services.import_prices(
        entries={
            "gpt-4o": {"input_cost_per_token": 1.5e-06, "output_cost_per_token": 6e-06, "litellm_provider": "openai"},
            "acme-1": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "litellm_provider": "acme"},
        },
        effective_from=datetime.date(2031, 1, 1),
    )
    imported = deliveries("price.changed")[1:]
    assert sorted(d.payload["data"]["model"] for d in imported) == ["acme/acme-1", "openai/gpt-4o"]


def test_a_finished_recompute_job(hook, team):
    services.create_use_case(team=team, title="FAQ bot")
    job = services.start_recompute_job(reason="Full recompute requested", scope={"all": True})
    assert deliveries("recompute.finished") == []
    services.run_recompute_job(job_id=job.pk, inline=True)
    (finished,) = deliveries("recompute.finished")
    assert finished.payload["data"]["id"] == job.pk
    assert (finished.payload["data"]["status"], finished.payload["data"]["total"]) == ("finished", 1)
    assert RecomputeJob.objects.get(pk=job.pk).status == "finished"


def test_no_subscription_no_delivery(team):
    services.create_use_case(team=team, title="FAQ bot")
    assert not WebhookDelivery.objects.exists()


# --- Scoping ---------------------------------------------------------------------------------------


def test_a_team_subscription_receives_only_its_teams_records(manager, team, other_team, receiver, gpt4o):
    ours = webhooks.create_subscription(owner=manager, team=team, target_url=receiver.url, events=TEAM_EVENTS)
    everything = webhooks.create_subscription(owner=manager, target_url=receiver.url, events=ALL_EVENTS)
    mine = services.create_use_case(team=team, title="FAQ bot")
    theirs = services.create_use_case(team=other_team, title="Paper search")
    services.create_deployment(use_case=theirs, model=gpt4o)
    pricing_services.add_price(
        model=gpt4o,
        input_per_million=Decimal("2"),
        output_per_million=Decimal("8"),
        effective_from=datetime.date(2030, 1, 1),
    )

    received = WebhookDelivery.objects.filter(subscription=ours)
    assert [(d.event_type, d.payload["data"]["id"]) for d in received] == [("use_case.created", mine.pk)]
    assert set(WebhookDelivery.objects.filter(subscription=everything).values_list("event_type", flat=True)) == {
        "use_case.created",
        "deployment.changed",
        "price.changed",
    }
    # One event, one id, whoever receives it.
    assert WebhookDelivery.objects.filter(event_type="use_case.created").values("event_id").distinct().count() == 2


def test_a_team_subscription_cannot_ask_for_portfolio_wide_events(manager, team):
    answer = token_client(manager).post(
        "/api/v1/webhooks/",
        {
            "team": "support",
            "target_url": PUBLIC_URL,
            "events": ["use_case.created", "price.changed"],
        },
        format="json",
    )
    assert answer.status_code == 400
    assert "price.changed" in answer.json()["events"][0]


# --- The sweep -------------------------------------------------------------------------------------


def test_the_sweep_queues_deliveries_whose_enqueue_failed(
    hook, team, broker, receiver, django_capture_on_commit_callbacks
):
    broker.down = True
    with django_capture_on_commit_callbacks(execute=True):
        services.create_use_case(team=team, title="FAQ bot")  # The web request still succeeds.
    (delivery,) = deliveries("use_case.created")
    assert delivery.status == "pending" and broker.queued == []

    broker.down = False
    assert tasks.sweep_webhook_deliveries() == 0  # Within its grace: its own enqueue may still come.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - datetime.timedelta(seconds=webhooks.SWEEP_GRACE_SECONDS + 1)
    )
    assert tasks.sweep_webhook_deliveries() == 1
    assert broker.queued == [delivery.pk]
    assert deliver_webhook(delivery.pk) == "delivered" and len(receiver.requests) == 1


def test_the_sweep_retries_a_failed_delivery_whose_retry_was_lost(hook, team, broker, receiver):
    receiver.statuses = [500]
    broker.down = True  # The retry cannot be scheduled.
    services.create_use_case(team=team, title="FAQ bot")
    (delivery,) = deliveries("use_case.created")
    assert deliver_webhook(delivery.pk) == "failed" and broker.retries == []
    broker.down = False
    assert webhooks.requeue_due_deliveries(grace_seconds=0) == 1
    assert deliver_webhook(delivery.pk) == "delivered"


def test_the_sweep_leaves_delivered_and_abandoned_ones(hook):
    WebhookDeliveryFactory(subscription=hook, next_attempt_at=timezone.now() - datetime.timedelta(hours=1))
    WebhookDeliveryFactory(
        subscription=hook,
        status="abandoned",
        delivered_at=None,
        next_attempt_at=timezone.now() - datetime.timedelta(hours=1),
    )
    assert webhooks.requeue_due_deliveries(grace_seconds=0) == 0


# --- The API -----------------------------------------------------------------------------------------


@pytest.fixture
def lead(team):
    return MembershipFactory(team=team, role=Membership.Role.LEAD, user=UserFactory(username="lena")).user


@pytest.fixture
def their_lead(other_team):
    return MembershipFactory(team=other_team, role=Membership.Role.LEAD, user=UserFactory(username="rita")).user


def test_the_secret_is_shown_on_creation_only(lead):
    client = token_client(lead)
    created = client.post(
        "/api/v1/webhooks/",
        {"team": "support", "target_url": PUBLIC_URL, "events": ["use_case.created", "deployment.changed"]},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert re.fullmatch(r"[0-9a-f]{64}", body["secret"])
    assert (body["team"], body["owner"], body["active"]) == ("support", "lena", True)
    assert WebhookSubscription.objects.get().secret == body["secret"]
    assert "secret" not in client.get(f"/api/v1/webhooks/{body['id']}/").json()
    assert "secret" not in client.get("/api/v1/webhooks/").json()["results"][0]
    assert (
        "secret" not in client.patch(f"/api/v1/webhooks/{body['id']}/", {"description": "CMDB"}, format="json").json()
    )


def test_leads_manage_their_own_teams_webhooks_only(lead, their_lead, manager):
    ours = WebhookSubscriptionFactory(team=lead.memberships.get().team)
    whole = WebhookSubscriptionFactory(team=None)
    client = token_client(their_lead)
    assert client.get(f"/api/v1/webhooks/{ours.pk}/").status_code == 404
    assert client.get(f"/api/v1/webhooks/{whole.pk}/").status_code == 404
    assert client.get("/api/v1/webhooks/").json()["results"] == []
    assert (
        client.post(
            "/api/v1/webhooks/",
            {"team": "support", "target_url": PUBLIC_URL, "events": ["use_case.created"]},
            format="json",
        ).status_code
        == 400
    )
    # A lead does not subscribe the whole portfolio; a manager does.
    assert (
        client.post(
            "/api/v1/webhooks/", {"target_url": PUBLIC_URL, "events": ["use_case.created"]}, format="json"
        ).status_code
        == 403
    )
    assert (
        token_client(manager)
        .post("/api/v1/webhooks/", {"target_url": PUBLIC_URL, "events": ALL_EVENTS}, format="json")
        .status_code
        == 201
    )


def test_members_get_403(member, team):
    WebhookSubscriptionFactory(team=team)
    client = token_client(member)
    assert client.get("/api/v1/webhooks/").status_code == 403
    assert client.get("/api/v1/webhook-deliveries/").status_code == 403


def test_the_team_of_a_subscription_is_set_on_creation_only(manager, team, other_team):
    subscription = WebhookSubscriptionFactory(team=team)
    answer = token_client(manager).patch(f"/api/v1/webhooks/{subscription.pk}/", {"team": "research"}, format="json")
    assert answer.status_code == 200 and answer.json()["team"] == "support"


def test_the_delivery_log_filters_and_is_scoped(lead, their_lead, team, other_team):
    ours = WebhookSubscriptionFactory(team=team)
    theirs = WebhookSubscriptionFactory(team=other_team)
    delivered = WebhookDeliveryFactory(subscription=ours)
    failed = WebhookDeliveryFactory(subscription=ours, status="failed", delivered_at=None, last_error="HTTP 500")
    their_delivery = WebhookDeliveryFactory(subscription=theirs)
    client = token_client(lead)

    def ids(query):
        return {row["id"] for row in client.get(f"/api/v1/webhook-deliveries/{query}").json()["results"]}

    assert ids("") == {delivered.pk, failed.pk}
    assert ids("?status=failed") == {failed.pk}
    assert ids(f"?subscription={ours.pk}") == {delivered.pk, failed.pk}
    assert ids(f"?subscription={theirs.pk}") == set()
    assert client.get(f"/api/v1/webhook-deliveries/{their_delivery.pk}/").status_code == 404
    shown = client.get(f"/api/v1/webhook-deliveries/{failed.pk}/").json()
    assert (shown["status"], shown["last_error"], shown["attempts"]) == ("failed", "HTTP 500", 1)


def test_redeliver_sends_the_same_event_again(lead, team, broker, receiver, django_capture_on_commit_callbacks):
    subscription = webhooks.create_subscription(
        owner=lead, team=team, target_url=receiver.url, events=["use_case.created"]
    )
    original = WebhookDeliveryFactory(subscription=subscription, status="abandoned", delivered_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        answer = token_client(lead).post(f"/api/v1/webhook-deliveries/{original.pk}/redeliver/")
    assert answer.status_code == 201
    copy = WebhookDelivery.objects.get(pk=answer.json()["id"])
    assert (copy.status, copy.event_id, copy.payload) == ("pending", original.event_id, original.payload)
    assert broker.queued == [copy.pk]
    assert deliver_webhook(copy.pk) == "delivered"
    assert receiver.requests[0].headers["X-Webhook-Id"] == str(original.event_id)

    # Still being attempted, or on a disabled subscription: refused.
    pending = WebhookDeliveryFactory(subscription=subscription, status="pending", delivered_at=None)
    assert token_client(lead).post(f"/api/v1/webhook-deliveries/{pending.pk}/redeliver/").status_code == 400
    webhooks.update_subscription(subscription=subscription, active=False)
    refused = token_client(lead).post(f"/api/v1/webhook-deliveries/{copy.pk}/redeliver/")
    assert refused.status_code == 400 and "subscription" in refused.json()


def test_deleting_a_subscription_deletes_its_log(manager, hook, team):
    services.create_use_case(team=team, title="FAQ bot")
    assert token_client(manager).delete(f"/api/v1/webhooks/{hook.pk}/").status_code == 204
    assert not WebhookDelivery.objects.exists()


def test_events_are_validated(manager):
    client = token_client(manager)
    for events, status in ([], 400), (["use_case.deleted"], 400), (["use_case.created"] * 2, 400), ("x", 400):
        answer = client.post("/api/v1/webhooks/", {"target_url": PUBLIC_URL, "events": events}, format="json")
        assert answer.status_code == status, events
        assert "events" in answer.json()
