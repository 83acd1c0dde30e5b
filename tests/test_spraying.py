"""Guessing across accounts from one address: failed logins over many usernames (password
spraying) on the three login surfaces, and wrong API tokens.

The per-username lockout is in ``tests/test_security.py``.
"""

import secrets

import pytest
from django.test import Client
from rest_framework import throttling
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config.drf_speed import TokenFailureThrottle

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests"
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
TOKEN = "/api/v1/auth/token/"
SPRAYED = [f"user{n}" for n in range(40)]


def spray(client, url: str, **extra) -> list:
    return [client.post(url, {"username": name, "password": "Summer2025!"}, **extra) for name in SPRAYED]


# --- Failed logins per address ---------------------------------------------------------------


@pytest.mark.parametrize(("url", "refused"), [(LOGIN, 200), (ADMIN_LOGIN, 200), (TOKEN, 400)])
def test_spraying_usernames_locks_the_address_out_at_the_limit(settings, url, refused):
    answers = spray(Client(), url)

    assert settings.LOGIN_FAILURES_PER_ADDRESS == 20
    assert [answer.status_code for answer in answers] == [refused] * 19 + [429] * 21
    assert {answer["Retry-After"] for answer in answers[19:]} == {"900"}  # 15 minutes.


def test_the_web_lockout_page_says_the_address_is_blocked():
    locked = spray(Client(), LOGIN)[-1]

    assert "Logging in from your address is blocked for 15 minutes." in locked.content.decode()


def test_the_token_endpoint_answers_the_address_lockout_in_json():
    locked = spray(APIClient(), TOKEN, format="json")[-1]

    assert locked.json() == {"detail": "Too many failed logins: try again in 15 minutes."}


def test_a_locked_out_address_is_refused_even_the_right_password_and_others_are_not(member):
    spray(Client(), LOGIN)

    assert Client().post(LOGIN, {"username": member.username, "password": PASSWORD}).status_code == 429
    elsewhere = Client(REMOTE_ADDR="10.9.9.9")
    assert elsewhere.post(LOGIN, {"username": member.username, "password": PASSWORD}).status_code == 302
    assert Client(REMOTE_ADDR="10.9.9.9").post(LOGIN, {"username": "user0", "password": "x"}).status_code == 200


def test_failures_on_every_login_surface_add_up(settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 6
    client = APIClient()
    statuses = [
        client.post(url, {"username": f"{url}{n}", "password": "x"}).status_code
        for url in (LOGIN, ADMIN_LOGIN, TOKEN)
        for n in range(2)
    ]

    assert statuses == [200, 200, 200, 200, 400, 429]


def test_a_successful_login_does_not_clear_the_address_count(member, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 5
    client = Client()
    assert [client.post(LOGIN, {"username": f"user{n}", "password": "x"}).status_code for n in range(4)] == [200] * 4

    assert client.post(LOGIN, {"username": member.username, "password": PASSWORD}).status_code == 302
    # The success reset alice's own count only: the next failure is the address's fifth.
    assert Client().post(LOGIN, {"username": "user39", "password": "x"}).status_code == 429


def test_the_per_username_lockout_still_comes_first(member):
    answers = [Client().post(LOGIN, {"username": member.username, "password": "x"}) for _ in range(5)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 200, 429]
    assert "Logging in to this account from your address" in answers[-1].content.decode()


def test_behind_a_proxy_each_forwarded_address_has_its_own_count(settings, member):
    settings.TRUSTED_PROXY_COUNT = 1
    spray(Client(HTTP_X_FORWARDED_FOR="198.51.100.1"), LOGIN)

    neighbour = Client(HTTP_X_FORWARDED_FOR="198.51.100.2")
    assert neighbour.post(LOGIN, {"username": member.username, "password": PASSWORD}).status_code == 302


# --- Failed token authentications per address ------------------------------------------------


@pytest.fixture
def frozen_window(monkeypatch):
    # Counted per minute: the clock stands still mid-window, so no test straddles two.
    now = [1_800_000_030.0]
    monkeypatch.setattr(throttling.SimpleRateThrottle, "timer", lambda self: now[0])
    return now


def random_token_client(**extra) -> APIClient:
    return APIClient(HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}", **extra)


def test_wrong_tokens_are_refused_with_429_past_the_allowance(frozen_window):
    answers = [random_token_client().get("/api/v1/teams/") for _ in range(40)]

    assert [answer.status_code for answer in answers] == [401] * 30 + [429] * 10
    assert {answer["Retry-After"] for answer in answers[30:]} == {"30"}  # Half the minute is left.


def test_a_refused_address_is_refused_even_a_valid_token_until_the_window_ends(member, frozen_window):
    valid = Token.objects.create(user=member).key
    for _ in range(31):
        random_token_client().get("/api/v1/teams/")

    assert APIClient(HTTP_AUTHORIZATION=f"Token {valid}").get("/api/v1/teams/").status_code == 429
    elsewhere = APIClient(HTTP_AUTHORIZATION=f"Token {valid}", REMOTE_ADDR="10.9.9.9")
    assert elsewhere.get("/api/v1/teams/").status_code == 200
    frozen_window[0] += 60
    assert APIClient(HTTP_AUTHORIZATION=f"Token {valid}").get("/api/v1/teams/").status_code == 200


def test_a_signed_in_session_from_a_refused_address_is_unaffected(member, frozen_window):
    for _ in range(31):
        random_token_client().get("/api/v1/teams/")
    session = APIClient()
    session.force_login(member)

    assert session.get("/api/v1/teams/").status_code == 200


@pytest.mark.parametrize("header", ["Token", "Token two parts", "Token \xe9t\xe9"])
def test_malformed_token_headers_count_as_failures(settings, header, frozen_window):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "token_failures": "2/min"},
    }
    client = APIClient(HTTP_AUTHORIZATION=header)

    assert [client.get("/api/v1/teams/").status_code for _ in range(3)] == [401, 401, 429]


def test_a_valid_token_is_not_counted(member, monkeypatch):
    def counted(self, request, view):
        raise AssertionError("a valid token reached the failure count")

    monkeypatch.setattr(TokenFailureThrottle, "allow_request", counted)
    client = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=member).key}")

    assert client.get("/api/v1/teams/").status_code == 200


def test_the_default_allowance_is_thirty_a_minute(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token_failures"] == "30/min"
