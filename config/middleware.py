"""Answers given before, or instead of, a view's: bad URLs, an unreachable database, a lockout;
and the lockout rules themselves."""

import logging
import math
import sys

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models import Sum
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults

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
        if not is_database_unavailable(exception):
            return None
        return database_unavailable_response(request, exception)


def is_database_unavailable(exception: BaseException | None) -> bool:
    """Whether a lost or refused database connection caused ``exception``, directly or as its cause."""
    seen = 0
    while exception is not None and seen < 10:
        if isinstance(exception, OperationalError | InterfaceError):
            return True
        exception, seen = exception.__cause__ or exception.__context__, seen + 1
    return False


def database_unavailable_response(request, exception: BaseException) -> HttpResponse:
    logger.warning("Database unavailable for %s %s: %s", request.method, request.path, exception)
    if wants_json(request):
        response = JsonResponse({"detail": "The database is unavailable; retry in a few seconds."}, status=503)
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response


def server_error(request):
    """``handler500``: a database outage met outside a view (in a middleware, or while the
    response is finished) is the same 503 as one met in a view; anything else is Django's 500."""
    exception = sys.exc_info()[1]
    if is_database_unavailable(exception):
        return database_unavailable_response(request, exception)
    return defaults.server_error(request)


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
        context = {"minutes": math.ceil(seconds / 60), "address": getattr(request, "address_locked_out", False)}
        response = HttpResponse(render_to_string("registration/locked_out.html", context, request=request), status=429)
    response["Retry-After"] = str(seconds)
    return response


class LockoutHandler(AxesDatabaseHandler):
    """django-axes' database handler, also locking a whole address out after
    ``LOGIN_FAILURES_PER_ADDRESS`` failed logins within the cool-off, whatever the usernames.

    Axes counts per username and address, so trying one password on many usernames
    (password spraying) is never locked out by it. The address's failures are axes' own
    records summed, so every process sees them and ``axes_reset_ip`` lifts the lockout.
    A success resets only its own username's count, so one valid account cannot clear it.
    Sets ``request.address_locked_out`` when the address, not the username, is the reason.
    """

    def is_locked(self, request, credentials=None):
        if super().is_locked(request, credentials):
            return True
        request.address_locked_out = self.address_failures(request) >= settings.LOGIN_FAILURES_PER_ADDRESS
        return request.address_locked_out

    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request, **kwargs)
        # Refused already (axes recorded nothing), whitelisted (never locked), or locked per username.
        if request is None or request.axes_locked_out or self.is_whitelisted(request, credentials):
            return
        if self.address_failures(request) >= settings.LOGIN_FAILURES_PER_ADDRESS:
            request.axes_locked_out = request.address_locked_out = True
            request.axes_credentials = credentials
            username = get_client_username(request, credentials)
            user_locked_out.send("axes", request=request, username=username, ip_address=request.axes_ip_address)

    @staticmethod
    def address_failures(request) -> int:
        attempts = AccessAttempt.objects.filter(
            ip_address=request.axes_ip_address, attempt_time__gte=get_cool_off_threshold(request)
        )
        return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
