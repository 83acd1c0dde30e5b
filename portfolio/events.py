"""Domain events: services record what happened; subscribers act on it.

A service records an event inside the transaction of its change
(``record(WebhookEvent.USE_CASE_UPDATED, use_case, use_case.team_id)``). Every subscriber
of that type runs at once, in the same transaction: the webhook outbox writes its delivery
rows there, so a rolled-back change sends nothing, and queues them once it commits;
recompute enqueueing likewise waits for the commit (``config.celery.enqueue_on_commit``).

Subscribers register with ``@subscribe(type, …)`` in modules that the apps' ``ready()``
imports, so this module imports none of them: services and governance record events
without knowing who listens, and no import runs back up the layers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Internal events, never sent to webhooks.
RECOMPUTE_REQUESTED = "recompute.requested"


@dataclass(frozen=True)
class Event:
    """``subjects`` are (record, team id) pairs; ``extras`` one dict of payload keys per subject, or none."""

    type: str
    subjects: Sequence[tuple[Any, int | None]]
    extras: Sequence[dict[str, Any]] | None = None
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Event], None]
_subscribers: defaultdict[str, list[Subscriber]] = defaultdict(list)


def subscribe(*types: str) -> Callable[[Subscriber], Subscriber]:
    """Register the decorated function for events of ``types``; registering twice keeps one."""

    def register(subscriber: Subscriber) -> Subscriber:
        for event_type in types:
            if subscriber not in _subscribers[event_type]:
                _subscribers[event_type].append(subscriber)
        return subscriber

    return register


def subscribers(event_type: str) -> list[Subscriber]:
    return list(_subscribers.get(event_type, ()))


def record(event_type: str, subject: Any, team_id: int | None, **extra: Any) -> None:
    """Record that ``event_type`` happened to ``subject``, a record of team ``team_id`` (None: portfolio-wide)."""
    record_many(event_type, [(subject, team_id)], extras=[extra] if extra else None)


def record_many(
    event_type: str,
    subjects: Sequence[tuple[Any, int | None]],
    *,
    extras: Sequence[dict[str, Any]] | None = None,
) -> None:
    """``record`` for many records at once: each subscriber is called once, with all of them."""
    if not subjects:
        return
    dispatch(Event(type=event_type, subjects=list(subjects), extras=extras))


def request_recompute(use_case_ids: Sequence[int], *, sweep: bool = False) -> None:
    """Record that these use cases, already flagged ``needs_recompute``, want a recompute:
    each by itself, or with ``sweep`` all at once by the stale sweep (many rows of a bulk write)."""
    if use_case_ids:
        data = {"use_case_ids": list(use_case_ids), "sweep": sweep}
        dispatch(Event(type=RECOMPUTE_REQUESTED, subjects=[], data=data))


def dispatch(event: Event) -> None:
    for subscriber in subscribers(event.type):
        subscriber(event)
