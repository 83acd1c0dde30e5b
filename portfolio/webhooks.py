"""Signed outbound webhooks: subscriptions, the events services emit, and their delivery.

A service that changes a record calls ``emit`` inside its transaction: one
``WebhookDelivery`` row per matching subscription is written with the change, so a
rolled-back change sends nothing and a committed one is never lost. Its delivery is
queued after commit; when the broker cannot take it, the sweep does later.

``deliver`` makes one attempt: it claims the row, checks the target's addresses again
(DNS can change after the subscription was accepted), POSTs the signed JSON body to
an address it checked, with a 5 s timeout, and records the outcome: delivered, a
retry after an exponential backoff, or abandoned after the last attempt. A
subscription whose deliveries keep being abandoned is disabled, with the reason.

A retry due within half the broker's visibility timeout is queued with a countdown; a
later one is left to the sweep, which queues it once it is due. (Redis hands a task
that waits longer than the visibility timeout to a worker again, so long countdowns
would pile up copies in the queue.)
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import serializers as drf_serializers

from config.celery import enqueue as enqueue_task
from portfolio import events
from portfolio.models import (
    PORTFOLIO_WIDE_EVENTS,
    Team,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from portfolio.webhook_payloads import PAYLOAD_VERSION, PAYLOADS

logger = logging.getLogger(__name__)

# Connect and read timeout of one attempt, in seconds.
TIMEOUT_SECONDS = 5.0
# A claimed attempt holds its delivery this long: a worker that dies mid-attempt
# leaves it to the sweep once the claim has lapsed (the task is killed well before).
CLAIM_SECONDS = 300
# The sweep leaves a delivery this long to its own enqueue before queueing it again.
SWEEP_GRACE_SECONDS = 30
# Bytes of a refusing receiver's answer kept in ``last_error``.
ERROR_BODY_BYTES = 500
USER_AGENT = "ai-portfolio-webhooks/1"
DELIVER_TASK = "portfolio.tasks.deliver_webhook"

Status = WebhookDelivery.Status

# How each kind of record is shown: the API's serializer, and what it reads alongside.
_LOOKUP_CHUNK_SIZE = 500


def new_secret() -> str:
    return secrets.token_hex(32)


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Signature`` header: HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed with the secret."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def backoff_seconds(attempts: int, *, base: float) -> float:
    """The wait after the ``attempts``-th failed attempt: base, 2 × base, 4 × base, …"""
    return base * 2 ** max(attempts - 1, 0)


# --- Targets (server-side request forgery) ----------------------------------------------------


class TargetRefused(Exception):
    """A target URL that deliveries may not go to; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (tests replace it to simulate DNS)."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def is_public_address(address: str) -> bool:
    """Whether an IP address is globally reachable: not loopback, private, link-local, multicast, reserved, …"""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 and 6to4's 2002:7f00:1:: reach the IPv4 address they carry.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is not None:
            return is_public_address(str(embedded))
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def resolve_target(url: str, *, allow_private: bool | None = None) -> Target:
    """The target of ``url`` with the addresses a delivery may connect to; ``TargetRefused`` otherwise.

    Every address the host resolves to is checked, so a name with one public and one
    private address is refused. ``allow_private`` defaults to ``WEBHOOK_ALLOW_PRIVATE_TARGETS``.
    """
    if allow_private is None:
        allow_private = settings.WEBHOOK_ALLOW_PRIVATE_TARGETS
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused(_("Enter a valid URL.")) from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(_("Only http and https targets are allowed."))
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(_("Leave credentials out of the URL: receivers check the signature instead."))
    host = parts.hostname
    if not host:
        raise TargetRefused(_("The URL names no host."))
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = tuple(dict.fromkeys(address.partition("%")[0] for address in resolve(host, port)))
    except (OSError, UnicodeError):
        raise TargetRefused(_("The host %(host)s cannot be resolved.") % {"host": host}) from None
    if not addresses:
        raise TargetRefused(_("The host %(host)s cannot be resolved.") % {"host": host})
    if not allow_private:
        refused = [address for address in addresses if not is_public_address(address)]
        if refused:
            raise TargetRefused(
                _(
                    "%(host)s resolves to %(address)s, a loopback, private, link-local, multicast or reserved "
                    "address: webhooks go to public addresses only."
                )
                % {"host": host, "address": refused[0]}
            )
    # Percent-encoded as HTTP needs it; what is already encoded stays as it is.
    path = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe="!#$%&'()*+,/:;=?@[]~")
    return Target(scheme=parts.scheme, host=host, port=port, path=path, addresses=addresses)


def check_target_url(url: str) -> None:
    """Refuse a target URL deliveries may not go to, as a field error."""
    try:
        resolve_target(url)
    except TargetRefused as refusal:
        raise ValidationError({"target_url": [str(refusal)]}) from None


# --- Subscriptions ---------------------------------------------------------------------------


@transaction.atomic
def create_subscription(
    *,
    owner: AbstractBaseUser,
    target_url: str,
    events: list[str],
    team: Team | None = None,
    description: str = "",
    active: bool = True,
) -> WebhookSubscription:
    """Subscribe ``target_url`` to ``events``; the generated secret is on the returned row."""
    subscription = WebhookSubscription(
        owner=owner,
        team=team,
        target_url=target_url,
        events=events,
        description=description,
        active=active,
        secret=new_secret(),
    )
    subscription.full_clean()
    check_target_url(target_url)
    subscription.save()
    return subscription


@transaction.atomic
def update_subscription(*, subscription: WebhookSubscription, **fields: Any) -> WebhookSubscription:
    """Change a subscription; turning a disabled one back on clears its failures and the reason."""
    was_active = (
        WebhookSubscription.objects.select_for_update().values_list("active", flat=True).get(pk=subscription.pk)
    )
    for name, value in fields.items():
        setattr(subscription, name, value)
    subscription.full_clean()
    if "target_url" in fields:
        check_target_url(subscription.target_url)
    names = [*fields, "updated_at"]
    if subscription.active and not was_active:
        subscription.disabled_reason, subscription.consecutive_failures = "", 0
        names += ["disabled_reason", "consecutive_failures"]
    subscription.save(update_fields=names)
    return subscription


@transaction.atomic
def delete_subscription(*, subscription: WebhookSubscription) -> None:
    subscription.delete()


# --- Events ----------------------------------------------------------------------------------

Subject = models.Model | dict[str, Any]


@events.subscribe(*WebhookEvent.values)
def write_outbox(event: events.Event) -> None:
    """The outbox's subscription to domain events: a delivery row per subscription that wants it."""
    emit_many(event.type, event.subjects, extras=event.extras)


def emit(event: str, subject: Subject, team_id: int | None, **extra: Any) -> list[WebhookDelivery]:
    """Record ``event`` about ``subject`` (a record of ``team_id``) for every subscription that wants it.

    Call it inside the transaction of the change: the deliveries commit or roll back
    with it, and are queued once it commits. ``extra`` adds top-level payload keys.
    """
    return emit_many(event, [(subject, team_id)], extras=[extra] if extra else None)


def emit_many(
    event: str, subjects: Sequence[tuple[Subject, int | None]], *, extras: Sequence[dict[str, Any]] | None = None
) -> list[WebhookDelivery]:
    """``emit`` for many records at once: one read of the subscriptions, one insert of the deliveries."""
    if not subjects:
        return []
    subscriptions = [
        subscription
        for subscription in WebhookSubscription.objects.filter(active=True).only("pk", "team_id", "events")
        if isinstance(subscription.events, list) and event in subscription.events
    ]
    if not subscriptions:
        return []
    portfolio_wide = event in PORTFOLIO_WIDE_EVENTS
    wanted = []
    for index, (subject, team_id) in enumerate(subjects):
        receivers = [s for s in subscriptions if _receives(s, team_id=team_id, portfolio_wide=portfolio_wide)]
        if receivers:
            wanted.append((index, subject, receivers))
    now = timezone.now()
    created_at = drf_serializers.DateTimeField().to_representation(now)
    data = _represent([subject for _index, subject, _receivers in wanted])
    deliveries = []
    for (index, _subject, receivers), shown in zip(wanted, data, strict=True):
        event_id = uuid.uuid4()
        payload = {
            "id": str(event_id),
            "type": event,
            "version": PAYLOAD_VERSION,
            "created_at": created_at,
            "data": shown,
            **(extras[index] if extras else {}),
        }
        # Stored as the JSON it is sent as: decimals, dates and ids already strings.
        payload = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
        deliveries += [
            WebhookDelivery(
                subscription=subscription, event_type=event, event_id=event_id, payload=payload, next_attempt_at=now
            )
            for subscription in receivers
        ]
    WebhookDelivery.objects.bulk_create(deliveries)
    ids = [delivery.pk for delivery in deliveries]
    transaction.on_commit(lambda: enqueue(ids))
    return deliveries


def _receives(subscription: WebhookSubscription, *, team_id: int | None, portfolio_wide: bool) -> bool:
    """Whole-portfolio subscriptions receive every event; a team's, its own records' events only."""
    if subscription.team_id is None:
        return True
    return not portfolio_wide and subscription.team_id == team_id


def _represent(subjects: list[Subject]) -> list[dict[str, Any]]:
    """Each subject as the API shows it, read again in bulk with what its serializer needs."""
    represented: dict[int, dict[str, Any]] = {}
    by_model: dict[type[models.Model], list[tuple[int, models.Model]]] = {}
    for position, subject in enumerate(subjects):
        if isinstance(subject, dict):
            represented[position] = subject
        else:
            by_model.setdefault(type(subject), []).append((position, subject))
    for model, rows in by_model.items():
        serializer_class, related = PAYLOADS[model]
        fresh: dict[int, models.Model] = {}
        pks = [instance.pk for _position, instance in rows]
        for start in range(0, len(pks), _LOOKUP_CHUNK_SIZE):
            chunk = pks[start : start + _LOOKUP_CHUNK_SIZE]
            fresh.update((row.pk, row) for row in model.objects.select_related(*related).filter(pk__in=chunk))
        for position, instance in rows:
            represented[position] = dict(serializer_class(fresh.get(instance.pk, instance)).data)
    return [represented[position] for position in range(len(subjects))]


def enqueue(delivery_ids: Iterable[int]) -> None:
    """Queue deliveries; a broker that cannot take them leaves them to the sweep."""
    for delivery_id in delivery_ids:
        if not enqueue_task(DELIVER_TASK, delivery_id):
            return


def countdown_limit_seconds() -> float:
    """The longest retry delay queued with a countdown; longer ones wait for the sweep.

    Half the broker's visibility timeout: a countdown task is held unacknowledged, and
    one held longer than the timeout is handed out again, and again.
    """
    visibility_timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    return visibility_timeout / 2


def requeue_due_deliveries(*, grace_seconds: float = SWEEP_GRACE_SECONDS, limit: int = 1000) -> int:
    """The sweep: queue open deliveries whose attempt is due.

    A retry is queued as soon as it is due, since long backoffs are scheduled only here
    (a short one queued with a countdown may be queued twice: the claim sends it once).
    A first attempt is left ``grace_seconds`` to its own enqueue.
    """
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=grace_seconds)
    ids = list(
        WebhookDelivery.objects.filter(
            models.Q(status=Status.PENDING, next_attempt_at__lte=cutoff)
            | models.Q(status=Status.FAILED, next_attempt_at__lte=now)
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    enqueue(ids)
    return len(ids)


@transaction.atomic
def redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivered or abandoned event again, as a new delivery with the same event id."""
    if delivery.status in WebhookDelivery.OPEN:
        raise ValidationError({"status": _("This delivery is still being attempted.")})
    if not delivery.subscription.active:
        raise ValidationError({"subscription": _("The subscription is disabled: turn it back on first.")})
    copy = WebhookDelivery.objects.create(
        subscription=delivery.subscription,
        event_type=delivery.event_type,
        event_id=delivery.event_id,
        payload=delivery.payload,
        next_attempt_at=timezone.now(),
    )
    transaction.on_commit(lambda: enqueue([copy.pk]))
    return copy


# --- Delivery ---------------------------------------------------------------------------------


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to one address checked beforehand, whatever the name resolves to now."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to one checked address, verifying the certificate against the URL's host name."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post(target: Target, *, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST to the first of the target's addresses that takes the connection; redirects are not followed."""
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    error = ""
    for address in target.addresses:
        connection = connection_class(target.host, target.port, address=address, timeout=TIMEOUT_SECONDS)
        try:
            connection.connect()
        except OSError as unreachable:  # Try the next address.
            connection.close()
            error = _describe_error(unreachable)
            continue
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read(ERROR_BODY_BYTES).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException) as failure:
            return Outcome(None, _describe_error(failure))
        finally:
            connection.close()
        if 200 <= response.status < 300:
            return Outcome(response.status, "")
        return Outcome(response.status, f"HTTP {response.status} {response.reason}" + (f": {answer}" if answer else ""))
    return Outcome(None, error)


def _describe_error(error: Exception) -> str:
    if isinstance(error, TimeoutError):
        return _("Timed out after %(seconds)s s.") % {"seconds": TIMEOUT_SECONDS}
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def body_of(delivery: WebhookDelivery) -> bytes:
    return json.dumps(delivery.payload, separators=(",", ":"), cls=DjangoJSONEncoder).encode()


def deliver(*, delivery_id: int) -> WebhookDelivery | None:
    """Make one attempt at a delivery that is due; safe to call again at any time.

    A delivered or abandoned delivery, one not yet due, or one another worker is sending
    is left alone, so a redelivered task never sends twice.
    """
    delivery = WebhookDelivery.objects.select_related("subscription").filter(pk=delivery_id).first()
    if delivery is None or delivery.status not in WebhookDelivery.OPEN:
        return delivery
    subscription = delivery.subscription
    if not subscription.active:
        WebhookDelivery.objects.filter(pk=delivery.pk, status__in=WebhookDelivery.OPEN).update(
            status=Status.ABANDONED, next_attempt_at=None, last_error=_("The subscription is disabled.")
        )
        delivery.refresh_from_db()
        return delivery
    now = timezone.now()
    # The claim: one worker at a time makes an attempt, and only once it is due.
    claimed = WebhookDelivery.objects.filter(
        pk=delivery.pk, status__in=WebhookDelivery.OPEN, next_attempt_at__lte=now
    ).update(attempts=models.F("attempts") + 1, next_attempt_at=now + datetime.timedelta(seconds=CLAIM_SECONDS))
    if not claimed:
        return delivery
    delivery.refresh_from_db()
    try:
        outcome = _attempt(delivery, subscription)
    except Exception as error:  # Unforeseen: counted as a failed attempt, so the delivery still ends.
        logger.exception("Webhook delivery %s failed unexpectedly.", delivery.pk)
        outcome = Outcome(None, f"{type(error).__name__}: {error}")
    _record(delivery, subscription, outcome)
    delivery.refresh_from_db()
    return delivery


def _attempt(delivery: WebhookDelivery, subscription: WebhookSubscription) -> Outcome:
    try:
        # Resolved and checked again: the name may point somewhere else since it was accepted.
        target = resolve_target(subscription.target_url)
    except TargetRefused as refusal:
        return Outcome(None, str(refusal))
    body = body_of(delivery)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Id": str(delivery.event_id),
        "X-Webhook-Event": delivery.event_type,
        "X-Webhook-Version": str(delivery.payload.get("version", PAYLOAD_VERSION)),
        "X-Webhook-Timestamp": str(timestamp),
        "X-Signature": sign(secret=subscription.secret, timestamp=timestamp, body=body),
    }
    return post(target, body=body, headers=headers)


def _record(delivery: WebhookDelivery, subscription: WebhookSubscription, outcome: Outcome) -> None:
    now = timezone.now()
    deliveries = WebhookDelivery.objects.filter(pk=delivery.pk)
    subscriptions = WebhookSubscription.objects.filter(pk=subscription.pk)
    if outcome.delivered:
        deliveries.update(
            status=Status.DELIVERED,
            delivered_at=now,
            next_attempt_at=None,
            last_status_code=outcome.status_code,
            last_error="",
        )
        subscriptions.exclude(consecutive_failures=0).update(consecutive_failures=0)
        return
    failure = {"last_status_code": outcome.status_code, "last_error": outcome.error[:2000]}
    if delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS:
        delay = backoff_seconds(delivery.attempts, base=settings.WEBHOOK_RETRY_BASE_SECONDS)
        deliveries.update(status=Status.FAILED, next_attempt_at=now + datetime.timedelta(seconds=delay), **failure)
        if delay > countdown_limit_seconds():
            return  # The sweep queues it when it is due.
        # A broker that cannot take it leaves it to the sweep, which queues it when it is due.
        enqueue_task(DELIVER_TASK, delivery.pk, countdown=delay)
        return
    with transaction.atomic():
        deliveries.update(status=Status.ABANDONED, next_attempt_at=None, **failure)
        subscriptions.update(consecutive_failures=models.F("consecutive_failures") + 1)
        subscriptions.filter(active=True, consecutive_failures__gte=settings.WEBHOOK_DISABLE_AFTER).update(
            active=False,
            disabled_reason=_(
                "Disabled on %(when)s: %(count)s deliveries in a row were abandoned after %(attempts)s attempts "
                "each. Last error: %(error)s. Fix the receiver, then turn the subscription back on."
            )
            % {
                "when": now.strftime("%Y-%m-%d %H:%M UTC"),
                "count": settings.WEBHOOK_DISABLE_AFTER,
                "attempts": settings.WEBHOOK_MAX_ATTEMPTS,
                "error": outcome.error[:500],
            },
        )
