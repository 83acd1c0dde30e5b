"""Every API endpoint answers the same through the speed layer (``config.drf_speed``) as through
REST framework's own code (``drf_speed.stock()``): status, headers and body, byte for byte.

The endpoints come from the URL resolver: the list, detail and read-only extra routes of
every router-registered viewset are requested on their own; any other API view needs its
requests in ``OTHER_VIEWS``, and one without fails. So does a REST framework upgrade that
changes what an override relies on: how fields are derived, how tokens and throttles are
read, how a list page is serialized.
"""

import datetime
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework import authentication, throttling
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config import drf_speed
from config.serializers import ModelSerializer
from portfolio import governance, services
from portfolio.models import Membership, PortfolioSnapshot, RecomputeJob
from pricing.models import LanguageModel
from tests.factories import (
    ExchangeRateFactory,
    MembershipFactory,
    PriceFactory,
    UserFactory,
    WebhookDeliveryFactory,
    WebhookSubscriptionFactory,
)

pytestmark = pytest.mark.django_db

API_PREFIX = "api/v1/"
PRINCIPALS = ("manager", "member", "anonymous")
PASSWORD = "pw-for-tests"  # tests.factories.UserFactory's

# --- The routes, from the resolver ------------------------------------------------------------------


def _walk(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def api_views() -> dict[str, Any]:
    """URL name → view callback, for every REST framework view under /api/v1/."""
    return {
        pattern.name: pattern.callback
        for route, pattern in _walk(get_resolver().url_patterns)
        if route.startswith(API_PREFIX) and hasattr(pattern.callback, "cls")
    }


VIEWS = api_views()
ROUTER_VIEWS = sorted(name for name, view in VIEWS.items() if getattr(view, "actions", None))

# Views that are not router viewsets, and what to send them: (method, URL, data) from the world.
Request = tuple[str, str, dict | None]
OTHER_VIEWS: dict[str, Callable[[SimpleNamespace], list[Request]]] = {
    "portfolio-summary": lambda w: [
        ("get", reverse("api:portfolio-summary"), None),
        ("get", reverse("api:portfolio-summary") + "?currency=JPY", None),
    ],
    "portfolio-what-if": lambda w: [
        ("post", reverse("api:portfolio-what-if"), {"from_model": "openai/gpt-4o", "to_model": "meta/llama-3-70b"}),
        ("post", reverse("api:portfolio-what-if"), {"from_model": "openai/gpt-4o"}),
    ],
    "auth-token": lambda w: [
        ("post", reverse("api:auth-token"), {"username": w.member.username, "password": PASSWORD}),
        ("post", reverse("api:auth-token"), {"username": w.member.username, "password": "wrong"}),
    ],
    "auth-token-revoke": lambda w: [("delete", reverse("api:auth-token-revoke"), None)],
    "use-case-by-external-id": lambda w: [
        ("get", reverse("api:use-case-by-external-id", args=["support", "crm-1"]), None),
    ],
    # Refused rows only: an accepted row would be written, which is not what this compares.
    "use-case-bulk": lambda w: [
        ("post", reverse("api:use-case-bulk"), {"rows": [{"team": "support", "external_id": "a b", "title": ""}]}),
    ],
    "schema": lambda w: [("get", reverse("api:schema"), None)],
    "docs": lambda w: [("get", reverse("api:docs"), None)],
}


# --- The world -------------------------------------------------------------------------------------


@pytest.fixture
def world(team, other_team, member, outsider, manager, gpt4o, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    w = SimpleNamespace(member=member, manager=manager)
    lead = MembershipFactory(team=team, role=Membership.Role.LEAD, user=UserFactory(username="lena")).user
    traffic = {"requests_per_month": 1000, "avg_input_tokens": 100, "avg_output_tokens": 10, "status": "active"}
    ours = services.create_use_case(team=team, title="FAQ bot", external_id="crm-1", owner=member)
    theirs = services.create_use_case(team=other_team, title="Paper search", currency="JPY")
    for use_case in (ours, theirs):
        services.create_deployment(use_case=use_case, model=gpt4o, **traffic)
        services.create_poc(use_case=use_case, hypothesis="Deflects a third of tickets.")
        services.recompute_use_case(use_case_id=use_case.pk)
    llama = LanguageModel.objects.get(key="meta/llama-3-70b")
    PriceFactory(model=llama, team=team)
    PriceFactory(model=llama, team=other_team)
    ExchangeRateFactory(base="USD", quote="CHF", rate="0.9", as_of=datetime.date(2024, 1, 1))
    PortfolioSnapshot.objects.create(taken_on=datetime.date(2024, 1, 1))
    RecomputeJob.objects.create(reason="nightly")
    governance.evaluate_checklists(use_case_ids=[ours.pk, theirs.pk])
    governance.record_evidence(
        item=ours.checklist_items.get(template__code="eu-ai-literacy"),
        by=member,
        file=ContentFile(b"Trained in March.", name="training.txt"),
    )
    subscription = WebhookSubscriptionFactory(team=team, owner=lead)
    WebhookDeliveryFactory(subscription=subscription)
    WebhookDeliveryFactory(subscription=WebhookSubscriptionFactory(team=other_team))
    w.tokens = {"manager": Token.objects.create(user=manager).key, "member": Token.objects.create(user=member).key}
    return w


def client_of(world, principal: str) -> APIClient:
    token = world.tokens.get(principal)
    return APIClient(HTTP_AUTHORIZATION=f"Token {token}") if token else APIClient()


# --- Rendering both ways ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    json: Any
    content: bytes


def answer_of(response) -> Answer:
    if response.streaming:
        content = b"".join(response.streaming_content)
        response.close()
    else:
        content = response.content
    is_json = response.get("Content-Type", "").startswith("application/json") and content
    return Answer(response.status_code, dict(response.headers), json.loads(content) if is_json else None, content)


def send(client: APIClient, method: str, url: str, data: dict | None) -> Answer:
    """One request, undone afterwards: each request meets the same world and full allowances."""
    cache.clear()
    drf_speed.TokenAuthentication.refused_addresses.clear()
    savepoint = transaction.savepoint()
    try:
        return answer_of(getattr(client, method)(url, data, format="json"))
    finally:
        transaction.savepoint_rollback(savepoint)


def assert_same(fast: Answer, stock: Answer, request: str) -> None:
    assert fast.status == stock.status, request
    assert fast.json == stock.json, request
    assert fast.content == stock.content, request
    assert fast.headers == stock.headers, request


def both_ways(client: APIClient, method: str, url: str, data: dict | None = None) -> Answer:
    fast = send(client, method, url, data)
    with drf_speed.stock():
        stock = send(client, method, url, data)
    assert_same(fast, stock, f"{method.upper()} {url}")
    return fast


# --- Every endpoint --------------------------------------------------------------------------------


def test_every_api_view_is_requested():
    others = sorted(name for name in VIEWS if name not in ROUTER_VIEWS)
    assert sorted(set(others) - set(OTHER_VIEWS)) == [], "API views without requests in OTHER_VIEWS"
    assert sorted(set(OTHER_VIEWS) - set(others)) == [], "OTHER_VIEWS names views that no longer exist"


def _lookup(view, row: dict) -> dict[str, Any]:
    viewset = view.cls
    shown_as = "id" if viewset.lookup_field == "pk" else viewset.lookup_field
    assert shown_as in row, f"{viewset.__name__}: its list does not show {shown_as}"
    return {viewset.lookup_url_kwarg or viewset.lookup_field: row[shown_as]}


@pytest.mark.parametrize("name", [name for name in ROUTER_VIEWS if "list" in VIEWS[name].actions.values()])
def test_a_viewsets_routes_answer_as_rest_framework_does(name, world):
    basename = VIEWS[name].initkwargs["basename"]
    url = reverse(f"api:{name}")
    rows = both_ways(client_of(world, "manager"), "get", url).json
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert rows, f"{url} lists nothing: give the world a row of it"
    # Detail routes (the detail and its read-only extra actions), at the first and last row.
    detail_routes = [
        other
        for other in ROUTER_VIEWS
        if VIEWS[other].initkwargs["basename"] == basename
        and VIEWS[other].initkwargs.get("detail")
        and "get" in VIEWS[other].actions
    ]
    assert f"{basename}-detail" in detail_routes
    urls = [url, f"{url}?page_size=1", f"{url}?page_size=1&page=2"]
    urls += [
        reverse(f"api:{route}", kwargs=_lookup(VIEWS[route], row))
        for route in detail_routes
        for row in rows[:1] + rows[1:][-1:]
    ]
    for principal in PRINCIPALS:
        client = client_of(world, principal)
        for each in urls:
            both_ways(client, "get", each)
        # What a create refuses, and to whom: validation runs through the derived fields.
        fast = send(client, "post", url, {})
        if fast.status >= 300:  # A create that needs no body wrote a row: nothing refused to compare.
            with drf_speed.stock():
                assert_same(fast, send(client, "post", url, {}), f"POST {url} as {principal}")


@pytest.mark.parametrize("name", sorted(OTHER_VIEWS))
def test_other_views_answer_as_rest_framework_does(name, world):
    for principal in PRINCIPALS:
        for method, url, data in OTHER_VIEWS[name](world):
            both_ways(client_of(world, principal), method, url, data)


def test_refused_tokens_are_answered_as_rest_framework_does(world):
    inactive = UserFactory(username="gone", is_active=False)
    headers = ["Token", "Token two parts", f"Token {'0' * 40}", f"Token {Token.objects.create(user=inactive).key}"]
    for header in headers:
        answer = both_ways(APIClient(HTTP_AUTHORIZATION=header), "get", reverse("api:use-case-list"))
        assert answer.status == 401


@pytest.mark.parametrize(
    ("scope", "principal", "method", "url", "data"),
    [
        pytest.param("token", "member", "get", "/api/v1/use-cases/", None, id="token"),
        pytest.param("user", "member", "get", "/api/v1/teams/", None, id="user"),
        pytest.param(
            "anon", "anonymous", "post", "/api/v1/auth/token/", {"username": "alice", "password": "wrong"}, id="anon"
        ),
        pytest.param("token_failures", "bad token", "get", "/api/v1/use-cases/", None, id="token_failures"),
    ],
)
def test_throttled_requests_are_answered_as_rest_framework_does(
    scope, principal, method, url, data, world, settings, monkeypatch
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], scope: "2/min"},
    }
    # At the start of a minute, both count the same wait: the whole minute.
    monkeypatch.setattr(throttling.SimpleRateThrottle, "timer", lambda self: 1_800_000_000.0)
    world.tokens["bad token"] = "0" * 40

    def answers() -> list[Answer]:
        cache.clear()
        drf_speed.TokenAuthentication.refused_addresses.clear()
        client = client_of(world, principal)
        return [answer_of(getattr(client, method)(url, data, format="json")) for _ in range(4)]

    fast = answers()
    with drf_speed.stock():
        stock = answers()
    assert [answer.status for answer in fast] == [answer.status for answer in stock]
    assert fast[-1].status == 429 and fast[-1].headers["Retry-After"] == "60"
    for ours, theirs in zip(fast, stock, strict=True):
        assert_same(ours, theirs, f"{method.upper()} {url} as {principal}")


# --- The switch itself -----------------------------------------------------------------------------


def _model_serializers(base: type) -> Iterator[type]:
    """The API's model serializers: every subclass of ``base`` with a model (a ``Meta``)."""
    for subclass in base.__subclasses__():
        if hasattr(subclass, "Meta") and subclass.__module__.partition(".")[0] in ("config", "portfolio", "pricing"):
            yield subclass
        yield from _model_serializers(subclass)


@pytest.mark.parametrize(
    "serializer_class", sorted(set(_model_serializers(ModelSerializer)), key=str), ids=lambda cls: cls.__name__
)
def test_every_model_serializer_derives_rest_frameworks_fields(serializer_class):
    # Every argument of every field (validators, limits, choices, read-only), not only what a page shows.
    fast = repr(serializer_class())
    with drf_speed.stock():
        stock = repr(serializer_class())
    assert fast == stock


def test_stock_puts_rest_frameworks_code_back_and_ours_after():
    ours = {(owner, name): owner.__dict__[name] for entries in drf_speed.STOCK.values() for owner, name, _ in entries}
    with drf_speed.stock():
        for entries in drf_speed.STOCK.values():
            for owner, name, original in entries:
                assert getattr(owner, name) is original
        assert drf_speed.TokenAuthentication.authenticate_credentials is (
            authentication.TokenAuthentication.authenticate_credentials
        )
    assert all(owner.__dict__[name] is function for (owner, name), function in ours.items())
