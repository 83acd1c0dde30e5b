"""REST framework glue shared by every API view."""

import datetime
import hashlib
import io
import itertools
import operator
import re
from decimal import Decimal

import django_filters
import django_filters.rest_framework
from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import QueryDict
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import exceptions, filters, parsers, serializers, status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings

from portfolio.governance import GateRefused


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
    elif isinstance(exc, TooManyFieldsSent):
        # Likewise for a form over DATA_UPLOAD_MAX_NUMBER_FIELDS or DATA_UPLOAD_MAX_NUMBER_FILES.
        exc = ParseError(_("The form has more than %(max)s fields.") % {"max": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS})
    elif isinstance(exc, TooManyFilesSent):
        exc = ParseError(_("The form has more than %(max)s files.") % {"max": settings.DATA_UPLOAD_MAX_NUMBER_FILES})
    return drf_exception_handler(exc, context)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"

    def __init__(self):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(_("The request body is larger than the %(limit)s bytes allowed.") % {"limit": limit})


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
