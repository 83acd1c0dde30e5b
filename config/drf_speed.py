"""The API's speed layer: where REST framework's own code is replaced because it was measured too slow.

Each override keeps REST framework's answers and is kept only while ``manage.py bench``
shows it at least 1.3× faster than the code it replaces (its docstring gives the figure).
``STOCK`` names that code for every override, and ``stock()`` puts it back: the bench
measures both side by side, and ``tests/test_drf_speed_contract.py`` renders every
endpoint both ways and fails on any difference, so a REST framework upgrade that changes
what an override relies on fails a test instead of an answer.

Nothing here imports REST framework's views: the settings name these classes, and the
views module reads the settings while it loads.
"""

import copy
import functools
import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import connection
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions, mixins, serializers, throttling
from rest_framework.authtoken.models import Token
from rest_framework.response import Response
from rest_framework.settings import ISO_8601, api_settings

from config.middleware import client_address
from portfolio import selectors
from portfolio.models import MANAGERS_GROUP

# --- Token authentication ------------------------------------------------------------------------


class TokenAuthentication(authentication.TokenAuthentication):
    """REST framework's token authentication in one light query: the token's user, and
    whether that user is a portfolio manager (which scoping asks next).

    Every API request authenticates, and the ORM spends more building the token query
    (with its user) than the database spends answering it; the manager check would be
    a second query. Errors, keyword and header are REST framework's. ``manage.py bench``
    (20,000 use cases, PostgreSQL): authenticating a request and asking the manager check
    takes 511 µs against stock REST framework's 1,055 µs (0.48×).

    Failures are counted per client address (``TOKEN_FAILURES_PER_ADDRESS``, in the
    cache); past the allowance, a request with an ``Authorization`` header from that
    address is refused with 429 before its token is looked up, until the window ends,
    so a right guess fares no better than a wrong one. The refused addresses are also
    kept in the process, so a valid token costs no cache round trip; another process
    refuses the address at its next failure.
    """

    refused_addresses: ClassVar[dict[str, float]] = {}  # address: when its window ends

    def authenticate(self, request):
        if self.refused_addresses and request.META.get("HTTP_AUTHORIZATION"):
            self.refuse_while_over_allowance(request)
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            self.count_failure(request)
            raise

    def refuse_while_over_allowance(self, request) -> None:
        refused_until = self.refused_addresses.get(client_address(request))
        now = TokenFailureThrottle().timer()
        if refused_until is not None and now < refused_until:
            raise exceptions.Throttled(wait=refused_until - now)

    def count_failure(self, request) -> None:
        throttle = TokenFailureThrottle()
        if throttle.allow_request(request, None):
            return
        wait = throttle.wait() or 0.0
        refused = {address: until for address, until in list(self.refused_addresses.items()) if until > throttle.now}
        refused[client_address(request)] = throttle.now + wait
        TokenAuthentication.refused_addresses = refused
        raise exceptions.Throttled(wait=wait)

    @staticmethod
    @functools.cache
    def _sql() -> str:
        q = connection.ops.quote_name
        user, token = get_user_model()._meta, Token._meta
        is_manager = selectors.manager_check_sql(f"u.{q(user.pk.column)}")
        # Identifiers come from the models' metadata; values are bound.
        return (  # nosec B608
            f"SELECT u.*, {is_manager} AS is_manager FROM {q(user.db_table)} u JOIN {q(token.db_table)} t "
            f"ON t.{q(token.get_field('user').column)} = u.{q(user.pk.column)} WHERE t.{q(token.pk.column)} = %s"
        )

    def authenticate_credentials(self, key):
        found = list(get_user_model().objects.raw(self._sql(), [MANAGERS_GROUP, key]))
        if not found:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = found[0]
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        user._is_portfolio_manager = bool(user.is_manager)  # Read by selectors.is_portfolio_manager.
        # The token as REST framework gives it; its creation time is read only if asked for.
        token = Token.from_db(user._state.db, ["key", "user_id"], [key, user.pk])
        token.user = user
        return user, token


# --- Throttles -----------------------------------------------------------------------------------


class WindowCountMixin:
    """A throttle that counts requests in fixed windows (a minute, at a rate "N/min").

    REST framework's throttles keep the time of every request in the window and read and
    write the whole list on each request: at the 20,000 a minute a busy sync client may
    send, that is over 100 KB through the cache per request. This keeps one counter per
    client and window, added and incremented atomically (in Redis too); ``Retry-After``
    is the time left in the window. ``manage.py bench`` (20,000 use cases, PostgreSQL):
    a request's throttle checks, over a client's first 2,000 requests in a minute, take
    27 µs against stock REST framework's 84 µs (0.32×).

    The rate is read when a request is checked, not when the class is defined, so a
    changed ``DEFAULT_THROTTLE_RATES`` takes effect (stock REST framework's counting
    reads it this way too under ``stock()``).
    """

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends_at = (window + 1) * self.duration
        counter = f"{self.key}:{window}"
        if self.cache.add(counter, 1, timeout=self.duration + 1):
            return True
        try:
            count = self.cache.incr(counter)
        except ValueError:  # Expired between the two calls: this is its window's first request.
            self.cache.set(counter, 1, timeout=self.duration + 1)
            count = 1
        return count <= self.num_requests

    def wait(self):
        return max(self.window_ends_at - self.now, 0)


class AnonRateThrottle(WindowCountMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(WindowCountMixin, throttling.UserRateThrottle):
    pass


class TokenRateThrottle(WindowCountMixin, throttling.SimpleRateThrottle):
    """Counts the requests made with each API token (a session is counted per user only)."""

    scope = "token"

    def get_cache_key(self, request, view):
        key = getattr(request.auth, "key", None)
        if key is None:
            return None
        # The token itself never goes into the cache: a digest of it does.
        return self.cache_format % {"scope": self.scope, "ident": hashlib.sha256(key.encode()).hexdigest()}


class TokenFailureThrottle(WindowCountMixin, throttling.SimpleRateThrottle):
    """Counts failed token authentications per client address; ``TokenAuthentication`` consults it."""

    scope = "token_failures"

    def get_cache_key(self, request, view):
        address = client_address(request)
        return None if address is None else self.cache_format % {"scope": self.scope, "ident": address}


# --- Model serializer fields ---------------------------------------------------------------------


def _copy(field: serializers.Field) -> serializers.Field:
    """A field for one serializer instance, from the class's derived field.

    A plain field is copied shallowly: binding and per-instance changes (``read_only``, a
    scoped ``queryset``) assign attributes, which land on the copy. A field that holds
    other fields (a nested serializer, a list's ``child``, a to-many relation) is copied
    deeply, as REST framework does, since binding reaches into what it holds.
    """
    if isinstance(field, serializers.BaseSerializer) or hasattr(field, "child") or hasattr(field, "child_relation"):
        return copy.deepcopy(field)
    return copy.copy(field)


class ModelSerializer(serializers.ModelSerializer):
    """A ``ModelSerializer`` that derives its fields from the model once per class.

    REST framework derives every field from the model on each instantiation (labels,
    validators, choices, relations), then deep-copies each one, which is most of what a
    detail request costs. What it derives depends on the class alone, so it is built once
    and each instance gets its own copies, which it may change freely. ``manage.py bench``
    (20,000 use cases, PostgreSQL): showing one use case as a detail does takes 251 µs
    against stock REST framework's 1,144 µs (0.22×).
    """

    def get_fields(self):
        cls = type(self)
        # Looked up in the class's own namespace: a subclass never takes its parent's fields.
        fields = cls.__dict__.get("_derived_fields")
        if fields is None:
            fields = super().get_fields()
            cls._derived_fields = fields
        return {name: _copy(field) for name, field in fields.items()}


# --- List pages from value tuples ----------------------------------------------------------------

# Fields whose representation of a column value is the value itself (str(), int(), bool()).
_PLAIN_FIELDS = (serializers.CharField, serializers.IntegerField, serializers.BooleanField, serializers.ChoiceField)


@dataclass(frozen=True)
class ValuesRepresentation:
    """Rows of ``values_list(*columns)`` shown exactly as a ``ModelSerializer`` shows the instances.

    A list page of hundreds of rows spends most of its time building model instances and
    running every field's ``to_representation``; reading tuples and converting only the
    decimals and datetimes gives the same JSON at a fraction of the cost. Only field kinds
    whose output is reproduced exactly are accepted: ``of()`` answers ``None`` for any
    other serializer, and the view keeps the serializer. ``manage.py bench`` (20,000 use
    cases, PostgreSQL): a use case list page of 50 takes 8.2 ms against stock
    REST framework's 12.2 ms (0.67×).
    """

    names: tuple[str, ...]
    columns: tuple[str, ...]
    decimals: tuple[int, ...]  # positions of decimals stored with the serializer's places
    datetimes: tuple[tuple[int, serializers.DateTimeField], ...]

    @classmethod
    @functools.cache
    def of(cls, serializer_class: type[serializers.ModelSerializer]) -> "ValuesRepresentation | None":
        model = serializer_class.Meta.model
        names, columns, decimals, datetimes = [], [], [], []
        for name, field in serializer_class().fields.items():
            if field.write_only:
                continue
            source = field.source.replace(".", "__")
            if isinstance(field, serializers.SlugRelatedField):
                column = f"{source}__{field.slug_field}"
            elif isinstance(field, serializers.DecimalField):
                try:
                    places = model._meta.get_field(source).decimal_places
                except (FieldDoesNotExist, AttributeError):
                    return None
                as_string = getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING)
                if not as_string or field.localize or field.normalize_output or places != field.decimal_places:
                    return None
                column = source
                decimals.append(len(names))
            elif isinstance(field, serializers.DateTimeField):
                if str(getattr(field, "format", api_settings.DATETIME_FORMAT)).lower() != ISO_8601:
                    return None
                column = source
                datetimes.append((len(names), field))
            elif (
                isinstance(field, serializers.ListField)
                and isinstance(field.child, _PLAIN_FIELDS)
                or isinstance(field, _PLAIN_FIELDS)
                and not isinstance(field, serializers.MultipleChoiceField)
            ):
                column = source
            else:
                return None
            names.append(name)
            columns.append(column)
        return cls(tuple(names), tuple(columns), tuple(decimals), tuple(datetimes))

    def rows_of(self, queryset: QuerySet) -> "_CountedRows":
        """What to paginate: counted as ``queryset`` (no joins), sliced as its value tuples."""
        return _CountedRows(queryset, queryset.values_list(*self.columns))

    def represent(self, rows: Iterable[tuple]) -> list[dict[str, Any]]:
        zones = [
            (position, field, field.timezone if hasattr(field, "timezone") else field.default_timezone())
            for position, field in self.datetimes
        ]
        represented = []
        for row in rows:
            values = list(row)
            for position in self.decimals:
                # The column's scale is the serializer's places: str() is DRF's quantized f-format.
                if values[position] is not None:
                    values[position] = str(values[position])
            for position, field, zone in zones:
                value = values[position]
                if value is None:
                    continue
                if zone is None or value.tzinfo is None:
                    values[position] = field.to_representation(value)
                    continue
                value = value.astimezone(zone).isoformat()
                values[position] = value[:-6] + "Z" if value.endswith("+00:00") else value
            represented.append(dict(zip(self.names, values, strict=True)))
        return represented


class _CountedRows:
    # The tuples' count would keep the joins their columns need; the model queryset's drops them.
    def __init__(self, queryset: QuerySet, rows: QuerySet):
        self.queryset, self.rows = queryset, rows

    @property
    def ordered(self) -> bool:
        return self.queryset.ordered

    def count(self) -> int:
        return self.queryset.count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index):
        return self.rows[index]


class ValuesListMixin:
    """A list view whose pages are read as tuples and shown as its serializer shows them
    (``ValuesRepresentation``); a serializer it cannot reproduce keeps REST framework's list."""

    def list(self, request, *args, **kwargs):
        rows = ValuesRepresentation.of(self.get_serializer_class())
        if rows is None:
            return super().list(request, *args, **kwargs)
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(rows.rows_of(queryset))
        if page is None:
            return Response(rows.represent(queryset.values_list(*rows.columns)))
        return self.get_paginated_response(rows.represent(page))


# --- REST framework's own code, for comparison ---------------------------------------------------

# Override: (class, attribute, REST framework's code for that attribute) for each it replaces.
STOCK: dict[str, tuple[tuple[type, str, Any], ...]] = {
    "token authentication": (
        (TokenAuthentication, "authenticate_credentials", authentication.TokenAuthentication.authenticate_credentials),
    ),
    "throttles": (
        (WindowCountMixin, "allow_request", throttling.SimpleRateThrottle.allow_request),
        (WindowCountMixin, "wait", throttling.SimpleRateThrottle.wait),
    ),
    "serializer fields": ((ModelSerializer, "get_fields", serializers.ModelSerializer.get_fields),),
    "list values": ((ValuesListMixin, "list", mixins.ListModelMixin.list),),
}


@contextmanager
def stock(*overrides: str) -> Iterator[None]:
    """REST framework's own code in place of the named overrides (all of them by default), in this process.

    For the bench and the contract test only: it changes classes every thread shares.
    """
    replaced = [
        (owner, name, owner.__dict__[name]) for override in overrides or STOCK for owner, name, _ in STOCK[override]
    ]
    try:
        for override in overrides or STOCK:
            for owner, name, original in STOCK[override]:
                setattr(owner, name, original)
        yield
    finally:
        for owner, name, ours in replaced:
            setattr(owner, name, ours)
