"""Answers given before, or instead of, a view's: bad URLs, an unreachable database, a lockout."""

import logging
import math

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# Seconds a client is asked to wait before retrying while the database is unreachable.
DATABASE_RETRY_AFTER = 5


def wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def refuse_nul_characters(get_response):
    """Answers 400 to a URL holding NUL characters (``%00``), in its path or its query.

    PostgreSQL refuses NUL in text, so a path parameter or filter carrying one would fail
    in the database; no valid request has one. (The API's parsers refuse it in bodies.)
    """

    def middleware(request):
        texts = [request.path, *(text for key, values in request.GET.lists() for text in (key, *values))]
        if any("\x00" in text for text in texts):
            return JsonResponse({"detail": "The URL may not contain NUL (%00) characters."}, status=400)
        return get_response(request)

    return middleware


class DatabaseUnavailableMiddleware:
    """Answers 503 with ``Retry-After`` when the database cannot be reached (restart, failover).

    The connection errors (``OperationalError``, ``InterfaceError``) would otherwise be a
    500 and an error report for what is a transient outage. The HTML page is rendered
    without the request, so no context processor touches the database.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("Database unavailable for %s %s: %s", request.method, request.path, exception)
        if wants_json(request):
            response = JsonResponse({"detail": "The database is unavailable; retry in a few seconds."}, status=503)
        else:
            response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response


def client_address(request) -> str | None:
    """The client's address: REMOTE_ADDR, or the X-Forwarded-For entry our own proxies added."""
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if proxies and forwarded:
        return forwarded[-min(proxies, len(forwarded))]
    return request.META.get("REMOTE_ADDR")


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out login: 429 with ``Retry-After``, JSON for the API."""
    seconds = math.ceil(settings.AXES_COOLOFF_TIME.total_seconds())
    detail = f"Too many failed logins: try again in {math.ceil(seconds / 60)} minutes."
    if wants_json(request):
        response = JsonResponse({"detail": detail}, status=429)
    else:
        response = HttpResponse(
            render_to_string("registration/locked_out.html", {"minutes": math.ceil(seconds / 60)}, request=request),
            status=429,
        )
    response["Retry-After"] = str(seconds)
    return response
