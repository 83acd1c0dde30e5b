"""Web security: login lockout, API throttling, CSRF on every route, CSP, secure cookies and headers,
a clear 503 when the database is unreachable, and ``check --deploy`` clean with production settings.

What a browser does with hostile input is in ``tests/browser/test_security.py``.
"""

import datetime
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern
from rest_framework import throttling
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "pw-for-tests"
LOGIN = "/accounts/login/"
TOKEN = "/api/v1/auth/token/"


# --- Login lockout (django-axes) -------------------------------------------------------------


def fail_logins(client, url: str, username: str, times: int, **extra) -> list:
    return [client.post(url, {"username": username, "password": "wrong"}, **extra) for _ in range(times)]


def test_the_login_page_locks_a_username_out_of_an_address_after_five_failures(member, settings):
    client = Client()
    answers = fail_logins(client, LOGIN, member.username, 5)

    assert [answer.status_code for answer in answers] == [200, 200, 200, 200, 429]
    locked = answers[-1]
    assert locked["Retry-After"] == "900"  # 15 minutes.
    assert "Too many failed logins" in locked.content.decode()
    # Even the right password is refused while the lockout lasts.
    assert client.post(LOGIN, {"username": member.username, "password": PASSWORD}).status_code == 429
    # Another address, and another user from this address, are not locked out.
    elsewhere = Client(REMOTE_ADDR="10.9.9.9")
    assert elsewhere.post(LOGIN, {"username": member.username, "password": PASSWORD}).status_code == 302
    other = UserFactory(username="dora")
    assert client.post(LOGIN, {"username": other.username, "password": PASSWORD}).status_code == 302


def test_the_token_endpoint_locks_out_with_a_json_429(member):
    client = APIClient()
    answers = fail_logins(client, TOKEN, member.username, 5, format="json")

    assert [answer.status_code for answer in answers] == [400, 400, 400, 400, 429]
    assert answers[-1].json() == {"detail": "Too many failed logins: try again in 15 minutes."}
    assert answers[-1]["Retry-After"] == "900"
    assert client.post(TOKEN, {"username": member.username, "password": PASSWORD}, format="json").status_code == 429


def test_a_lockout_ends_after_the_cool_off_and_a_success_resets_the_count(member, settings):
    settings.AXES_COOLOFF_TIME = datetime.timedelta(seconds=1)
    client = APIClient()
    assert fail_logins(client, TOKEN, member.username, 5)[-1].status_code == 429
    time.sleep(1.2)

    assert client.post(TOKEN, {"username": member.username, "password": PASSWORD}).status_code == 200
    # The success reset the count: four more failures do not lock out again.
    assert [a.status_code for a in fail_logins(client, TOKEN, member.username, 4)] == [400] * 4


def test_the_lockout_keys_on_the_forwarded_address_only_behind_trusted_proxies(member, settings):
    forged = {"HTTP_X_FORWARDED_FOR": "203.0.113.7"}
    fail_logins(Client(), LOGIN, member.username, 5, **forged)
    # Direct (no trusted proxy): the header is ignored, so the lockout is on REMOTE_ADDR.
    assert Client().post(LOGIN, {"username": member.username, "password": PASSWORD}).status_code == 429

    settings.TRUSTED_PROXY_COUNT = 1
    behind_proxy = Client(HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert behind_proxy.post(LOGIN, {"username": member.username, "password": PASSWORD}).status_code == 302


# --- API throttling --------------------------------------------------------------------------


@pytest.fixture
def rates(settings, monkeypatch):
    # Counted per minute window: the clock stands still mid-window, so no test straddles two.
    now = 1_800_000_030.0
    monkeypatch.setattr(throttling.SimpleRateThrottle, "timer", lambda self: now)

    def set_rates(**rates: str):
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"anon": "1000/min", "user": "1000/min", "token": "1000/min", **rates},
        }

    return set_rates


def test_a_token_is_throttled_with_retry_after(member, rates):
    rates(token="3/min")
    client = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=member).key}")

    statuses = [client.get("/api/v1/teams/").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    throttled = client.get("/api/v1/teams/")
    assert 0 < int(throttled["Retry-After"]) <= 60
    # Another user's token has its own allowance.
    other = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=UserFactory()).key}")
    assert other.get("/api/v1/teams/").status_code == 200


def test_a_user_is_throttled_across_session_and_token(member, rates):
    rates(user="3/min")
    session = APIClient()
    session.force_login(member)
    token = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=member).key}")

    statuses = [
        session.get("/api/v1/teams/").status_code,
        token.get("/api/v1/teams/").status_code,
        session.get("/api/v1/teams/").status_code,
        token.get("/api/v1/teams/").status_code,
    ]

    assert statuses == [200, 200, 200, 429]
    assert "Retry-After" in token.get("/api/v1/teams/")


def test_the_allowance_comes_back_with_the_next_window(member, rates, monkeypatch):
    rates(token="2/min")
    client = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=member).key}")
    assert [client.get("/api/v1/teams/").status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/api/v1/teams/")["Retry-After"] == "30"  # Half the minute is left.

    monkeypatch.setattr(throttling.SimpleRateThrottle, "timer", lambda self: 1_800_000_060.0)
    assert [client.get("/api/v1/teams/").status_code for _ in range(3)] == [200, 200, 429]


def test_token_requests_are_throttled_per_address_whatever_the_username(rates):
    rates(anon="2/min")
    statuses = [APIClient().post(TOKEN, {"username": f"guess{n}", "password": "x"}).status_code for n in range(3)]
    assert statuses == [400, 400, 429]
    assert APIClient(REMOTE_ADDR="10.1.2.3").post(TOKEN, {"username": "guess", "password": "x"}).status_code == 400


def test_default_rates_leave_room_for_the_load_test(settings):
    # The load test sends well over 100 requests/s from one token for a minute.
    for scope in ("user", "token"):
        count, period = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope].split("/")
        assert period.startswith("m") and int(count) >= 10_000


# --- CSRF on every route -------------------------------------------------------------------

SAMPLES = {"int": "1", "str": "x", "slug": "x", "path": "x", "uuid": "00000000-0000-0000-0000-000000000000"}
# Regex routes (the routers' and the admin's): the first of these each group accepts.
REGEX_SAMPLES = ("1", "portfolio", "openai/gpt-4o", "x")


def regex_sample(group: re.Match) -> str:
    return next(sample for sample in REGEX_SAMPLES if re.fullmatch(group.group(2), sample))


def concrete_paths(resolver: URLResolver | None = None, prefix: str = "") -> list[str]:
    """One request path for every route of the URL configuration, its parameters filled in."""
    paths = []
    for entry in (resolver or get_resolver()).url_patterns:
        pattern = entry.pattern
        if isinstance(pattern, RoutePattern):
            part = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: SAMPLES[m.group(1) or "str"], str(pattern))
        else:
            assert isinstance(pattern, RegexPattern)
            part = re.sub(r"\(\?P<(\w+)>([^)]*)\)", regex_sample, pattern.regex.pattern)
            part = part.lstrip("^").rstrip("$").replace("\\", "")
        if isinstance(entry, URLResolver):
            paths += concrete_paths(entry, prefix + part)
        else:
            assert isinstance(entry, URLPattern)
            paths.append("/" + prefix + part)
    return sorted(set(paths))


def test_every_route_refuses_a_post_without_the_csrf_token():
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    paths = concrete_paths()
    assert len(paths) > 100  # The UI, the API and the admin.
    for path in paths:
        resolve(path)  # Every sample path reaches a route.
    session = Client(enforce_csrf_checks=True)
    session.force_login(admin)
    anonymous = Client(enforce_csrf_checks=True)

    open_to_forgery = {}
    for path in paths:
        # Django refuses before any view runs (DRF's session authentication for API views).
        statuses = {"signed in": session.post(path).status_code}
        if not path.startswith("/api/"):  # An anonymous API request has no session to forge.
            statuses["anonymous"] = anonymous.post(path).status_code
        if set(statuses.values()) != {403}:
            open_to_forgery[path] = statuses

    assert open_to_forgery == {}


def test_the_same_post_with_the_token_goes_through(member):
    client = Client(enforce_csrf_checks=True)
    client.get(LOGIN)
    answer = client.post(
        LOGIN,
        {"username": member.username, "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
    )
    assert answer.status_code == 302


# --- Content-Security-Policy and headers -------------------------------------------------------


def csp_of(response) -> dict[str, list[str]]:
    return {
        directive.split()[0]: directive.split()[1:]
        for directive in response["Content-Security-Policy"].split(";")
        if directive.strip()
    }


def test_pages_allow_only_our_own_scripts_styles_and_images(manager, client):
    client.force_login(manager)
    for path in ("/accounts/login/", "/use-cases/", "/dashboard/", "/catalogue/"):
        policy = csp_of(client.get(path))
        assert policy["default-src"] == ["'none'"]
        for directive in ("script-src", "style-src", "img-src", "font-src", "connect-src", "form-action"):
            assert policy[directive] == ["'self'"], (path, directive)
        assert policy["frame-ancestors"] == policy["object-src"] == policy["base-uri"] == ["'none'"]


def test_the_api_docs_page_widens_the_policy_for_inline_images_and_styles_only(client, manager):
    client.force_login(manager)
    policy = csp_of(client.get("/api/v1/docs/"))
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["script-src"] == ["'self'"]
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.IGNORECASE), "inline script"),
    (re.compile(r"<style\b", re.IGNORECASE), "style element"),
    (re.compile(r"\sstyle\s*=", re.IGNORECASE), "style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.IGNORECASE), "event handler attribute"),
    (re.compile(r"javascript:", re.IGNORECASE), "javascript: URL"),
]


def test_templates_hold_no_inline_script_or_style():
    found = [
        f"{template.relative_to(ROOT)}: {what}"
        for template in sorted((ROOT / "templates").rglob("*.html"))
        for pattern, what in INLINE
        if pattern.search(template.read_text())
    ]
    assert found == []


def test_cookies_are_secure_and_https_is_enforced(member, settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client()
    assert client.get(LOGIN).status_code == 301  # Plain HTTP is redirected.

    answer = client.post(LOGIN, {"username": member.username, "password": PASSWORD}, secure=True)

    assert answer.status_code == 302
    session = answer.cookies["sessionid"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"
    assert client.cookies["csrftoken"]["secure"]
    assert answer["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert answer["X-Frame-Options"] == "DENY"
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert answer["Referrer-Policy"] == "same-origin"


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SECURE_", "ALLOWED_", "CSRF_"))
    } | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "portfolio.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://portfolio.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


# --- The database unreachable ------------------------------------------------------------------


@pytest.fixture
def database_down():
    with mock.patch("portfolio.selectors.visible_use_cases", side_effect=OperationalError("connection refused")):
        yield


def test_the_api_answers_503_json_when_the_database_is_unreachable(member, database_down):
    client = APIClient()
    client.force_authenticate(member)
    answer = client.get("/api/v1/use-cases/")
    assert answer.status_code == 503
    assert answer.json() == {"detail": "The database is unavailable; retry in a few seconds."}
    assert answer["Retry-After"] == "5"


def test_a_page_answers_503_html_when_the_database_is_unreachable(member, client, database_down):
    client.force_login(member)
    answer = client.get("/use-cases/")
    assert answer.status_code == 503
    assert "Temporarily unavailable" in answer.content.decode()
    assert answer["Retry-After"] == "5"


def failing_middleware(get_response):
    def middleware(request):
        raise OperationalError("server closed the connection unexpectedly")

    return middleware


def test_an_outage_met_in_a_middleware_answers_503_not_500(member, settings):
    # Only a view's exceptions reach process_exception; handler500 sees every other one.
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.test_security.failing_middleware"]
    client = Client(raise_request_exception=False)
    client.force_login(member)
    page = client.get("/use-cases/")
    assert page.status_code == 503 and page["Retry-After"] == "5"
    assert "Temporarily unavailable" in page.content.decode()
    api = client.get("/api/v1/use-cases/")
    assert api.status_code == 503
    assert api.json() == {"detail": "The database is unavailable; retry in a few seconds."}


def test_other_errors_outside_a_view_are_still_a_500(member, settings, monkeypatch):
    def broken(get_response):
        def middleware(request):
            raise RuntimeError("a bug")

        return middleware

    monkeypatch.setattr("tests.test_security.failing_middleware", broken)
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.test_security.failing_middleware"]
    client = Client(raise_request_exception=False)
    assert client.get("/use-cases/").status_code == 500
