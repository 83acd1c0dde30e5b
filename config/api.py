"""REST framework glue shared by every API view."""

import datetime
import functools
import hashlib
import io
import itertools
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import django_filters
import django_filters.rest_framework
from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import authentication, exceptions, filters, parsers, serializers, status, throttling
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import ISO_8601, api_settings

from config.middleware import client_address
from portfolio import selectors
from portfolio.governance import GateRefused
from portfolio.models import MANAGERS_GROUP


def exception_handler(exc, context):
    # Imported here, not at the top: DRF's views module reads DEFAULT_PARSER_CLASSES, which
    # names this module's JSONParser, while it loads; a top-level import made this module
    # fail to import unless rest_framework.views happened to be loaded first.
    from rest_framework.views import exception_handler as drf_exception_handler

    # Services raise Django's ValidationError; the API answers it as a 400 with field errors.
    if isinstance(exc, DjangoValidationError):
        errors = as_serializer_error(exc)
        # Model-wide errors (constraints, clean()) read as a serializer's non-field errors.
        if NON_FIELD_ERRORS in errors:
            errors[api_settings.NON_FIELD_ERRORS_KEY] = errors.pop(NON_FIELD_ERRORS)
        exc = ValidationError(errors)
    elif isinstance(exc, GateRefused):
        # A refused stage gate is a conflict with the record's state, listing what blocks it.
        return Response(exc.as_data(), status=status.HTTP_409_CONFLICT)
    elif isinstance(exc, RequestDataTooBig):
        # Django would answer its HTML 400 page: a body over DATA_UPLOAD_MAX_MEMORY_SIZE.
        exc = PayloadTooLarge()
    return drf_exception_handler(exc, context)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"

    def __init__(self):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(_("The request body is larger than the %(limit)s bytes allowed.") % {"limit": limit})


class TokenAuthentication(authentication.TokenAuthentication):
    """REST framework's token authentication in one light query: the token's user, and
    whether that user is a portfolio manager (which scoping asks next).

    Every API request authenticates, and the ORM spends more building the token query
    (with its user) than the database spends answering it; the manager check would be
    a second query. Errors, keyword and header are REST framework's.

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
        refused = {address: until for address, until in list(self.refused_addresses.items()) if until > throttle.now}
        refused[client_address(request)] = throttle.window_ends_at
        TokenAuthentication.refused_addresses = refused
        raise exceptions.Throttled(wait=throttle.wait())

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


class WindowCountMixin:
    """A throttle that counts requests in fixed windows (a minute, at a rate "N/min").

    REST framework's throttles keep the time of every request in the window and read and
    write the whole list on each request: at the 20,000 a minute a busy sync client may
    send, that is over 100 KB through the cache per request. This keeps one counter per
    client and window, added and incremented atomically (in Redis too); ``Retry-After``
    is the time left in the window. The rate is read when a request is checked, not when
    the class is defined, so a changed ``DEFAULT_THROTTLE_RATES`` takes effect.
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


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The record changed since you read it: fetch it again and retry."
    default_code = "precondition_failed"


def etag_of(instance) -> str:
    """A row's version tag: its ``version`` counter, else its ``updated_at``, else a digest of its columns."""
    if hasattr(instance, "version"):
        return f'"{instance.pk}-{instance.version}"'
    if hasattr(instance, "updated_at"):
        stamp = instance.updated_at.isoformat()
    else:  # No change stamp: any change alters one of the columns.
        stamp = repr([getattr(instance, field.attname) for field in instance._meta.concrete_fields])
    # A version tag, not a secret: SHA-1 is fine for telling versions apart.
    return f'"{hashlib.sha1(f"{instance.pk}:{stamp}".encode(), usedforsecurity=False).hexdigest()[:16]}"'


def check_if_match(request, instance) -> None:
    """412 when the write's ``If-Match`` names another version of the record."""
    header = request.headers.get("If-Match")
    if header and header.strip() != "*" and etag_of(instance) not in [tag.strip() for tag in header.split(",")]:
        raise PreconditionFailed()


class ListFiltersMixin:
    """Query-parameter filters, search and ordering narrow lists only.

    A detail route finds its row by id in the scoped queryset; building the list's
    filter form there (REST framework's default) only costs time, about a fifth of a
    detail request.
    """

    def filter_queryset(self, queryset):
        if getattr(self, "detail", False):
            return queryset
        return super().filter_queryset(queryset)


def refresh_keeping_relations(instance) -> None:
    """``refresh_from_db``, keeping the related rows already loaded that the row still points to.

    Django forgets them on refresh, and showing the record would read each one again.
    """
    loaded = [
        (field, field.get_cached_value(instance))
        for field in instance._meta.concrete_fields
        if field.is_relation and field.is_cached(instance)
    ]
    instance.refresh_from_db()
    for field, related in loaded:
        if getattr(instance, field.attname) == (None if related is None else related.pk):
            field.set_cached_value(instance, related)


class ETagMixin:
    """``ETag`` on detail and write responses; ``If-Match`` honoured on writes."""

    def retrieve(self, request, *args, **kwargs):
        instance = self.get_object()
        response = Response(self.get_serializer(instance).data)
        response["ETag"] = etag_of(instance)
        return response

    def written(self, instance, *, serializer=None, created: bool = False) -> Response:
        """The stored record after a write, shown by the serializer that validated it, if given."""
        refresh_keeping_relations(instance)
        if serializer is None:
            serializer = self.get_serializer(instance)
        else:
            serializer.instance = instance
        response = Response(serializer.data, status=201 if created else 200)
        response["ETag"] = etag_of(instance)
        return response


class Pagination(PageNumberPagination):
    """Page numbers, with ``page`` and ``page_size`` whole numbers from 1 as the schema says.

    REST framework answers a ``page`` that is not a number (``last`` aside) with a 404 and
    ignores a ``page_size`` it cannot read; both are a 400 naming the parameter here. A page
    past the last is still a 404, and a ``page_size`` over the maximum gives the maximum.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        size = self.whole_number(request, self.page_size_query_param)
        return self.page_size if size is None else min(size, self.max_page_size)

    def get_page_number(self, request, paginator):
        number = self.whole_number(request, self.page_query_param)
        return 1 if number is None else number

    @staticmethod
    def whole_number(request, name: str) -> int | None:
        value = request.query_params.get(name)
        if value is None:
            return None
        try:
            return serializers.IntegerField(min_value=1).run_validation(value)
        except ValidationError as exc:
            raise ValidationError({name: exc.detail}) from None

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] in (self.page_query_param, self.page_size_query_param):
                parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Results per page: {self.page_size} by default, at most {self.max_page_size} "
                    f"(a larger number gives {self.max_page_size})."
                )
        return parameters


class FilterSet(django_filters.rest_framework.FilterSet):
    """A filter set whose form class is built once per class.

    django-filter builds the form class, labels and fields of every filter, on each
    request: a few milliseconds per list. It depends on the class alone unless a filter
    chooses among rows by request (a callable ``queryset``); such a set is built per
    request as before.
    """

    def get_form_class(self):
        cls = type(self)
        form_class = cls.__dict__.get("_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            if not any(callable(getattr(filter_, "queryset", None)) for filter_ in self.filters.values()):
                cls._form_class = form_class
        return form_class


class FilterBackend(django_filters.rest_framework.DjangoFilterBackend):
    """django-filter, left out when the request names none of the view's filters.

    Most list requests are plain pages: they cost no filter form, no validation and no
    copy of the filters. A request naming any filter is filtered, and refused with a 400
    on a bad value, as before.

    An empty value is a bad value too unless the filter takes free text: django-filter
    reads ``updated_since=`` or ``stage=`` as no filter at all, where the schema (a time,
    a choice) allows no empty value. An empty text filter still means "any".
    """

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None or request.query_params.keys().isdisjoint(filterset_class.base_filters):
            return queryset
        return super().filter_queryset(request, queryset, view)

    def get_filterset(self, request, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        if filterset is None:
            return None
        for name, filter_ in filterset.filters.items():
            if request.query_params.get(name) == "" and not issubclass(filter_.field_class, forms.CharField):
                filterset.form.add_error(name, _("This field may not be blank."))
        return filterset


class IdFilter(django_filters.NumberFilter):
    """Filters by a row's id: a whole number within the id column's range, else a 400.

    Not a choice among rows: another team's id filters to nothing, as an id that does not
    exist does, so the answer tells nothing about other teams' records.
    """

    field_class = forms.IntegerField

    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=2**63 - 1, **kwargs)


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


class RefuseNulMixin:
    """Refuses text holding NUL characters, which PostgreSQL cannot store, with a 400.

    Checked once on the parsed body, so no field (a slug looked up in the database, a
    key of a JSON object) can carry one to the database. Uploaded files are not text.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        data = parsed.data if isinstance(parsed, parsers.DataAndFiles) else parsed
        if _has_nul(dict(data.lists()) if isinstance(data, QueryDict) else data):
            raise ParseError("Text may not contain NUL (\\u0000) characters.")
        return parsed


# A JSON string (closed, or running to the end of the text), or a run of characters that are
# neither brackets nor quotes: removing every such match leaves the brackets outside strings.
_NOT_BRACKETS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[^"\[\]{}]+', re.DOTALL)
# Opening brackets count 2 and closing ones 0: the running sum less the brackets seen is the depth.
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether JSON text nests arrays and objects more than ``limit`` deep, brackets in strings aside.

    Found without parsing and without a Python step per character: a parser recurses per
    level and exhausts the stack on a body a few kilobytes long (a RecursionError, so a 500).
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKETS.sub("", text).encode("ascii")
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return False
    depths = map(operator.sub, itertools.accumulate(brackets.translate(_DEPTH_STEPS)), itertools.count(1))
    return max(depths) > limit


class JSONParser(RefuseNulMixin, parsers.JSONParser):
    """REST framework's JSON parser; a body nested deeper than ``API_MAX_JSON_DEPTH`` is a 400, found before parsing."""

    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read()
        encoding = parsers.get_encoding(parser_context or {})
        # Replacing undecodable bytes is safe: the parser refuses such a body before it reads any of it.
        limit = settings.API_MAX_JSON_DEPTH
        if json_depth_exceeds(body.decode(encoding, errors="replace"), limit):
            raise ParseError(_("JSON nested deeper than %(max)s levels.") % {"max": limit})
        return super().parse(io.BytesIO(body), media_type, parser_context)


class FormParser(RefuseNulMixin, parsers.FormParser):
    pass


class MultiPartParser(RefuseNulMixin, parsers.MultiPartParser):
    pass


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            # ISO 8601 allows offsets PostgreSQL refuses (beyond ±15:59): compare in UTC.
            return value.astimezone(datetime.UTC)
        except OverflowError:  # Before the year 1, once in UTC.
            raise forms.ValidationError("Give a time between the years 1 and 9999.", code="invalid") from None


class UpdatedSinceFilter(django_filters.IsoDateTimeFilter):
    """``updated_since``: the rows changed at or after an ISO 8601 time, for incremental pulls."""

    field_class = UtcIsoDateTimeField

    def __init__(self, *, field_name: str = "updated_at", **kwargs):
        super().__init__(field_name=field_name, lookup_expr="gte", **kwargs)


class OrderingFilter(filters.OrderingFilter):
    """DRF's ``ordering``, with the fields each list sorts by written into the schema."""

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        fields = getattr(view, "ordering_fields", None)
        if not isinstance(fields, list | tuple):
            return parameters
        for parameter in parameters:
            if parameter["name"] == self.ordering_param:
                parameter["description"] = (
                    f"Sort by {', '.join(fields)}; a leading - sorts descending, and a comma separates "
                    "several fields (e.g. -updated_at,title)."
                )
        return parameters


# Fields whose representation of a column value is the value itself (str(), int(), bool()).
_PLAIN_FIELDS = (serializers.CharField, serializers.IntegerField, serializers.BooleanField, serializers.ChoiceField)


@dataclass(frozen=True)
class ValuesRepresentation:
    """Rows of ``values_list(*columns)`` shown exactly as a ``ModelSerializer`` shows the instances.

    A list page of hundreds of rows spends most of its time building model instances and
    running every field's ``to_representation``; reading tuples and converting only the
    decimals and datetimes gives the same JSON at a fraction of the cost. Only field kinds
    whose output is reproduced exactly are accepted: ``of()`` answers ``None`` for any
    other serializer, and the view keeps the serializer.
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


def decimals_as_strings(value):
    """Money in hand-built responses reads as strings, as serializer fields render it."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: decimals_as_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [decimals_as_strings(item) for item in value]
    return value


class ReadOnlyURLFieldExtension(OpenApiSerializerFieldExtension):
    """Documents a read-only URL as "a URI or the empty string".

    A ``URLField(blank=True)`` answers ``""`` when no URL is known, which OpenAPI's ``uri``
    format alone refuses. Writable fields say so already (``allow_blank``), but read-only
    ones lose that flag. Registered on import: the API views import this module.
    """

    target_class = "rest_framework.fields.URLField"

    def map_serializer_field(self, auto_schema, direction):
        if not self.target.read_only:
            return auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        return {"anyOf": [{"type": "string", "format": "uri"}, {"type": "string", "maxLength": 0}]}
