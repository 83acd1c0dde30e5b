"""Domain events and the one enqueue helper: who listens, when they run, what a broker failure does."""

import logging

import pytest
from django.db import transaction

from config.celery import app, enqueue, enqueue_on_commit
from portfolio import events, subscribers, tasks, webhooks
from portfolio.models import WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard(monkeypatch):
    """A subscriber of ``test.happened`` that records what it hears, removed afterwards."""
    log = []
    monkeypatch.setattr(events, "_subscribers", events.defaultdict(list, events._subscribers))
    events._subscribers["test.happened"] = []
    events.subscribe("test.happened")(log.append)
    return log


def test_every_webhook_event_reaches_the_outbox():
    for event_type in WebhookEvent.values:
        assert webhooks.write_outbox in events.subscribers(event_type), event_type


def test_a_recompute_request_is_queued_by_its_subscriber():
    assert events.subscribers(events.RECOMPUTE_REQUESTED) == [subscribers.queue_recompute]


def test_subscribers_hear_every_subject_once(heard):
    events.record_many("test.happened", [("a", 1), ("b", None)], extras=[{"x": 1}, {"x": 2}])
    events.record("test.happened", "c", 2, why="because")
    assert [(event.subjects, event.extras) for event in heard] == [
        ([("a", 1), ("b", None)], [{"x": 1}, {"x": 2}]),
        ([("c", 2)], [{"why": "because"}]),
    ]


def test_nothing_to_record_calls_no_one(heard):
    events.record_many("test.happened", [])
    events.request_recompute([])
    assert heard == []


def test_subscribing_twice_keeps_one(heard):
    events.subscribe("test.happened")(heard.append)
    events.record("test.happened", "a", None)
    assert len(heard) == 1


def test_subscribers_run_in_the_callers_transaction(heard):
    with pytest.raises(RuntimeError), transaction.atomic():
        events.record("test.happened", "a", None)
        assert transaction.get_connection().in_atomic_block
        raise RuntimeError("the caller fails after recording")
    assert len(heard) == 1  # Heard at once; what it wrote rolls back with the caller.


def test_a_recompute_request_is_queued_only_after_commit(monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(tasks.recompute_use_case, "apply_async", lambda args, countdown=None: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        events.request_recompute([3, 4])
        assert queued == []
    assert queued == [(3,), (4,)]


def test_a_bulk_recompute_request_queues_one_sweep(monkeypatch, django_capture_on_commit_callbacks):
    sweeps = []
    monkeypatch.setattr(tasks.recompute_stale, "apply_async", lambda args, countdown=None: sweeps.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        events.request_recompute([1, 2, 3], sweep=True)
    assert sweeps == [()]


def test_enqueue_logs_a_broker_failure_and_answers_false(monkeypatch, caplog):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.recompute_stale, "apply_async", broker_down)
    with caplog.at_level(logging.WARNING, logger="config.celery"):
        assert enqueue("portfolio.tasks.recompute_stale") is False
    assert "left for the sweep" in caplog.text


def test_enqueue_passes_the_countdown(monkeypatch):
    sent = []
    monkeypatch.setattr(
        tasks.deliver_webhook, "apply_async", lambda args, countdown=None: sent.append((args, countdown))
    )
    assert enqueue(tasks.deliver_webhook, 7, countdown=3.0) is True
    assert sent == [((7,), 3.0)]


def test_a_task_name_nobody_registered_is_a_bug():
    with pytest.raises(KeyError):
        enqueue("portfolio.tasks.no_such_task")


def test_enqueue_on_commit_waits_for_the_commit_and_drops_on_rollback(monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(tasks.recompute_stale, "apply_async", lambda args, countdown=None: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        enqueue_on_commit("portfolio.tasks.recompute_stale")
        assert sent == []
    assert sent == [()] and len(callbacks) == 1
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit("portfolio.tasks.recompute_stale")
        raise RuntimeError("rolled back")
    assert sent == [()]


def test_every_task_the_code_names_is_registered():
    from portfolio import services

    for name in (services.RUN_JOB_TASK, services.CHUNK_TASK, webhooks.DELIVER_TASK):
        assert name in app.tasks
