"""Who may do what on every route of the API, generated from the URL resolver.

Every route under ``/api/v1/`` (but the auth, schema and docs routes, tested at the
end) is requested by every principal for every action the route offers. A route
without a row in ``MATRIX`` fails: a new endpoint is not done until its row is written.

Each route and action is one test, run against a fresh world: two teams, "support"
(the record's team) and "research" (another team), with one record of each kind in
each. The principals take turns, a savepoint undoing each one's writes before the next.
Detail requests target support's record, so for a member of research it is another
team's record. Lists are checked by ids: nobody sees another team's rows.
"""

import datetime
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.generics import GenericAPIView
from rest_framework.test import APIClient

from portfolio import governance, services
from portfolio import selectors as portfolio_selectors
from portfolio.models import Membership, PortfolioSnapshot, RecomputeJob
from pricing import selectors as pricing_selectors
from pricing.models import LanguageModel
from tests.factories import (
    ExchangeRateFactory,
    MembershipFactory,
    PriceFactory,
    UserFactory,
    WebhookDeliveryFactory,
    WebhookSubscriptionFactory,
    make_manager,
)

pytestmark = pytest.mark.django_db

API_PREFIX = "api/v1/"
# Tested on their own at the end of this module.
OWN_TESTS = {"auth-token", "auth-token-revoke", "schema", "docs"}

PRINCIPALS = ("anonymous", "member", "lead", "outsider", "manager", "admin", "revoked")
# "member" and "lead" belong to the record's team; "outsider" is a member of another
# team; "manager" is in the portfolio managers group; "admin" is a superuser in no
# team; "revoked" sends a token that has been revoked.

# Actions of a router's list and detail routes (all of them, so refused methods are
# asserted too); an extra @action route and a plain APIView offer the methods they map.
LIST_ACTIONS = ("list", "create")
DETAIL_ACTIONS = ("retrieve", "update", "delete")
METHOD_OF = {"list": "get", "retrieve": "get", "create": "post", "update": "patch", "upsert": "put", "delete": "delete"}
ACTION_OF_METHOD = {"get": "retrieve", "post": "create", "put": "upsert", "patch": "update", "delete": "delete"}


def expect(*statuses: int) -> dict[str, int]:
    assert len(statuses) == len(PRINCIPALS)
    return dict(zip(PRINCIPALS, statuses, strict=True))


# Expected status per route (URL name), action and principal.
# fmt: off
MATRIX: dict[str, dict[str, dict[str, int]]] = {
    #                                   anonymous member lead outsider manager admin revoked
    "team-list": {
        "list":                   expect(401, 200, 200, 200, 200, 200, 401),
        "create":                 expect(401, 403, 403, 403, 201, 201, 401),
    },
    "team-detail": {
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
        "update":                 expect(401, 403, 403, 403, 200, 200, 401),
        # Support still has use cases, so even a manager is refused with a reason.
        "delete":                 expect(401, 403, 403, 403, 400, 400, 401),
    },
    "membership-list": {
        "list":                   expect(401, 200, 200, 200, 200, 200, 401),
        "create":                 expect(401, 403, 201, 403, 201, 201, 401),
    },
    "membership-detail": {
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
        "update":                 expect(401, 403, 200, 403, 200, 200, 401),
        "delete":                 expect(401, 403, 204, 403, 204, 204, 401),
    },
    "use-case-list": {
        "list":                   expect(401, 200, 200, 200, 200, 200, 401),
        # Another team reads as an unknown team: a 400 on the "team" field.
        "create":                 expect(401, 201, 201, 400, 201, 201, 401),
    },
    "use-case-detail": {
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
        "update":                 expect(401, 200, 200, 404, 200, 200, 401),
        "delete":                 expect(401, 204, 204, 404, 204, 204, 401),
    },
    "use-case-by-external-id": {
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
        "upsert":                 expect(401, 200, 200, 404, 200, 200, 401),
    },
    "use-case-bulk": {
        "create":                 expect(401, 200, 200, 400, 200, 200, 401),
    },
    "deployment-list": {
        "list":                   expect(401, 200, 200, 200, 200, 200, 401),
        "create":                 expect(401, 201, 201, 400, 201, 201, 401),
    },
    "deployment-detail": {
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
        "update":                 expect(401, 200, 200, 404, 200, 200, 401),
        "delete":                 expect(401, 204, 204, 404, 204, 204, 401),
    },
    "poc-list": {
        "list":                   expect(401, 200, 200, 200, 200, 200, 401),
        "create":                 expect(401, 201, 201, 400, 201, 201, 401),
    },
    "poc-detail": {
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
        "update":                 expect(401, 200, 200, 404, 200, 200, 401),
        "delete":                 expect(401, 204, 204, 404, 204, 204, 401),
    },
    "cost-snapshot-list": {
        "list":                   expect(401, 200, 200, 200, 200, 200, 401),
        "create":                 expect(401, 405, 405, 405, 405, 405, 401),
    },
    "cost-snapshot-detail": {
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
        "update":                 expect(401, 405, 405, 405, 405, 405, 401),
        "delete":                 expect(401, 405, 405, 405, 405, 405, 401),
    },
    "portfolio-summary": {
        "retrieve":               expect(401, 200, 200, 200, 200, 200, 401),
    },
    "portfolio-what-if": {
        "create":                 expect(401, 200, 200, 200, 200, 200, 401),
    },
    "snapshot-list": {
        "list":                   expect(401, 403, 403, 403, 200, 200, 401),
        "create":                 expect(401, 403, 403, 403, 405, 405, 401),
    },
    "snapshot-detail": {
        "retrieve":               expect(401, 403, 403, 403, 200, 200, 401),
        "update":                 expect(401, 403, 403, 403, 405, 405, 401),
        "delete":                 expect(401, 403, 403, 403, 405, 405, 401),
    },
    "job-list": {
        "list":                   expect(401, 403, 403, 403, 200, 200, 401),
        "create":                 expect(401, 403, 403, 403, 201, 201, 401),
    },
    "job-detail": {
        "retrieve":               expect(401, 403, 403, 403, 200, 200, 401),
        "update":                 expect(401, 403, 403, 403, 405, 405, 401),
        "delete":                 expect(401, 403, 403, 403, 405, 405, 401),
    },
    "model-list": {
        "list":                   expect(401, 200, 200, 200, 200, 200, 401),
        "create":                 expect(401, 405, 405, 405, 405, 405, 401),
    },
    "model-detail": {
        "retrieve":               expect(401, 200, 200, 200, 200, 200, 401),
        "update":                 expect(401, 405, 405, 405, 405, 405, 401),
        "delete":                 expect(401, 405, 405, 405, 405, 405, 401),
    },
    # Prices and rates are added, never edited: a refused role answers 403 before the 405.
    "price-list": {
        "list":                   expect(401, 200, 200, 200, 200, 200, 401),
        "create":                 expect(401, 403, 403, 403, 201, 201, 401),
    },
    "price-detail": {
        # Support's contract price: another team's business.
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
        "update":                 expect(401, 403, 403, 403, 405, 405, 401),
        "delete":                 expect(401, 403, 403, 403, 405, 405, 401),
    },
    "exchange-rate-list": {
        "list":                   expect(401, 200, 200, 200, 200, 200, 401),
        "create":                 expect(401, 403, 403, 403, 201, 201, 401),
    },
    "exchange-rate-detail": {
        "retrieve":               expect(401, 200, 200, 200, 200, 200, 401),
        "update":                 expect(401, 403, 403, 403, 405, 405, 401),
        "delete":                 expect(401, 403, 403, 403, 405, 405, 401),
    },
    # Governance: items are read and PATCHed (evidence by members, waivers by managers:
    # the waiver refusal is in tests/portfolio/test_governance_api.py), never created or deleted.
    "checklist-item-list": {
        "list":                   expect(401, 200, 200, 200, 200, 200, 401),
        "create":                 expect(401, 405, 405, 405, 405, 405, 401),
    },
    "checklist-item-detail": {
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
        "update":                 expect(401, 200, 200, 404, 200, 200, 401),
        "delete":                 expect(401, 405, 405, 405, 405, 405, 401),
    },
    # Audit trails and the evidence download are read-only.
    "checklist-item-history": {
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
    },
    "checklist-item-evidence-file": {
        # Support's item carries a small evidence file.
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
    },
    "use-case-history": {
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
    },
    "deployment-history": {
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
    },
    "price-history": {
        # Support's contract price, like price-detail.
        "retrieve":               expect(401, 200, 200, 404, 200, 200, 401),
    },
    # Webhooks: managers (whole portfolio, any team) and team leads (their team) only;
    # plain members are refused outright, whichever team. A lead of another team gets 404
    # for support's subscription (tests/portfolio/test_webhooks.py).
    "webhook-list": {
        "list":                   expect(401, 403, 200, 403, 200, 200, 401),
        "create":                 expect(401, 403, 201, 403, 201, 201, 401),
    },
    "webhook-detail": {
        "retrieve":               expect(401, 403, 200, 403, 200, 200, 401),
        "update":                 expect(401, 403, 200, 403, 200, 200, 401),
        "delete":                 expect(401, 403, 204, 403, 204, 204, 401),
    },
    # The delivery log is read-only; a delivered or abandoned event can be sent again.
    "webhook-delivery-list": {
        "list":                   expect(401, 403, 200, 403, 200, 200, 401),
        "create":                 expect(401, 403, 405, 403, 405, 405, 401),
    },
    "webhook-delivery-detail": {
        "retrieve":               expect(401, 403, 200, 403, 200, 200, 401),
        "update":                 expect(401, 403, 405, 403, 405, 405, 401),
        "delete":                 expect(401, 403, 405, 403, 405, 405, 401),
    },
    "webhook-delivery-redeliver": {
        "create":                 expect(401, 403, 201, 403, 201, 201, 401),
    },
}
# fmt: on

# Which of support's and research's rows a list shows each principal.
SEES = {
    "member": {"ours"},
    "lead": {"ours"},
    "outsider": {"theirs"},
    "manager": {"ours", "theirs"},
    "admin": {"ours", "theirs"},
}


def ids(body: dict) -> set:
    return {row["id"] for row in body["results"]}


@dataclass(frozen=True)
class Target:
    """How to request a route in the world: its URL, a valid body, and its scoped rows."""

    url: Callable[[Any], str]
    body: Callable[[Any], dict] = lambda w: {}
    # (support's row, research's row) as ``seen`` reports them, for scoped lists.
    rows: Callable[[Any], tuple] | None = None
    seen: Callable[[dict], set] = ids


TARGETS: dict[str, Target] = {
    "team-list": Target(
        lambda w: "/api/v1/teams/",
        body=lambda w: {"name": "Legal", "slug": "legal"},
        rows=lambda w: (w.team.pk, w.other_team.pk),
    ),
    "team-detail": Target(lambda w: "/api/v1/teams/support/", body=lambda w: {"name": "Support desk"}),
    "membership-list": Target(
        lambda w: "/api/v1/memberships/",
        body=lambda w: {"team": "support", "user": w.newcomer.username},
        rows=lambda w: (w.our_membership.pk, w.their_membership.pk),
    ),
    "membership-detail": Target(
        lambda w: f"/api/v1/memberships/{w.our_membership.pk}/", body=lambda w: {"role": "lead"}
    ),
    "use-case-list": Target(
        lambda w: "/api/v1/use-cases/",
        body=lambda w: {"team": "support", "title": "Triage"},
        rows=lambda w: (w.ours.pk, w.theirs.pk),
    ),
    "use-case-detail": Target(lambda w: f"/api/v1/use-cases/{w.ours.pk}/", body=lambda w: {"title": "FAQ bot v2"}),
    "use-case-by-external-id": Target(
        lambda w: "/api/v1/use-cases/by-external-id/support/crm-1/", body=lambda w: {"title": "FAQ bot v2"}
    ),
    "use-case-bulk": Target(
        lambda w: "/api/v1/use-cases/bulk/",
        body=lambda w: {"rows": [{"team": "support", "external_id": "crm-2", "title": "Routing"}]},
    ),
    "deployment-list": Target(
        lambda w: "/api/v1/deployments/",
        body=lambda w: {"use_case": w.ours.pk, "model": "meta/llama-3-70b"},
        rows=lambda w: (w.our_deployment.pk, w.their_deployment.pk),
    ),
    "deployment-detail": Target(
        lambda w: f"/api/v1/deployments/{w.our_deployment.pk}/", body=lambda w: {"requests_per_month": 10}
    ),
    "poc-list": Target(
        lambda w: "/api/v1/pocs/",
        body=lambda w: {"use_case": w.ours.pk, "hypothesis": "Halves handling time."},
        rows=lambda w: (w.our_poc.pk, w.their_poc.pk),
    ),
    "poc-detail": Target(lambda w: f"/api/v1/pocs/{w.our_poc.pk}/", body=lambda w: {"status": "running"}),
    "cost-snapshot-list": Target(
        lambda w: "/api/v1/cost-snapshots/", rows=lambda w: (w.our_cost_snapshot.pk, w.their_cost_snapshot.pk)
    ),
    "cost-snapshot-detail": Target(lambda w: f"/api/v1/cost-snapshots/{w.our_cost_snapshot.pk}/"),
    "portfolio-summary": Target(
        lambda w: "/api/v1/portfolio/summary/",
        rows=lambda w: ("support", "research"),
        seen=lambda body: set(body["by_team"]),
    ),
    "portfolio-what-if": Target(
        lambda w: "/api/v1/portfolio/what-if/",
        body=lambda w: {"from_model": "openai/gpt-4o", "to_model": "meta/llama-3-70b"},
        rows=lambda w: (w.ours.pk, w.theirs.pk),
        seen=lambda body: {row["id"] for row in body["affected_use_cases"]},
    ),
    "snapshot-list": Target(lambda w: "/api/v1/snapshots/"),
    "snapshot-detail": Target(lambda w: f"/api/v1/snapshots/{w.snapshot.pk}/"),
    "job-list": Target(lambda w: "/api/v1/jobs/"),
    "job-detail": Target(lambda w: f"/api/v1/jobs/{w.job.pk}/", body=lambda w: {"reason": "x"}),
    "model-list": Target(lambda w: "/api/v1/models/", body=lambda w: {"key": "x/y"}),
    "model-detail": Target(lambda w: "/api/v1/models/openai/gpt-4o/", body=lambda w: {"display_name": "x"}),
    "price-list": Target(
        lambda w: "/api/v1/prices/",
        body=lambda w: {
            "model": "openai/gpt-4o",
            "input_per_million": "2.00",
            "output_per_million": "8.00",
            "currency": "USD",
            "effective_from": "2030-01-01",
        },
        rows=lambda w: (w.our_price.pk, w.their_price.pk),
    ),
    "price-detail": Target(lambda w: f"/api/v1/prices/{w.our_price.pk}/", body=lambda w: {"input_per_million": "1"}),
    "exchange-rate-list": Target(
        lambda w: "/api/v1/exchange-rates/",
        body=lambda w: {"base": "EUR", "quote": "USD", "rate": "1.08", "as_of": "2030-01-01"},
    ),
    "exchange-rate-detail": Target(lambda w: f"/api/v1/exchange-rates/{w.rate.pk}/", body=lambda w: {"rate": "1"}),
    "checklist-item-list": Target(
        lambda w: "/api/v1/checklist-items/", rows=lambda w: (w.our_item.pk, w.their_item.pk)
    ),
    "checklist-item-detail": Target(
        lambda w: f"/api/v1/checklist-items/{w.our_item.pk}/", body=lambda w: {"evidence_text": "Training log."}
    ),
    "checklist-item-history": Target(lambda w: f"/api/v1/checklist-items/{w.our_item.pk}/history/"),
    "checklist-item-evidence-file": Target(lambda w: f"/api/v1/checklist-items/{w.our_item.pk}/evidence-file/"),
    "use-case-history": Target(lambda w: f"/api/v1/use-cases/{w.ours.pk}/history/"),
    "deployment-history": Target(lambda w: f"/api/v1/deployments/{w.our_deployment.pk}/history/"),
    "price-history": Target(lambda w: f"/api/v1/prices/{w.our_price.pk}/history/"),
    "webhook-list": Target(
        # A public address by number: accepted without a DNS lookup, and nothing is sent in a test.
        lambda w: "/api/v1/webhooks/",
        body=lambda w: {"team": "support", "target_url": "https://93.184.215.14/hooks", "events": ["use_case.created"]},
        rows=lambda w: (w.our_subscription.pk, w.their_subscription.pk),
    ),
    "webhook-detail": Target(
        lambda w: f"/api/v1/webhooks/{w.our_subscription.pk}/", body=lambda w: {"description": "CMDB sync"}
    ),
    "webhook-delivery-list": Target(
        lambda w: "/api/v1/webhook-deliveries/", rows=lambda w: (w.our_delivery.pk, w.their_delivery.pk)
    ),
    "webhook-delivery-detail": Target(lambda w: f"/api/v1/webhook-deliveries/{w.our_delivery.pk}/"),
    "webhook-delivery-redeliver": Target(lambda w: f"/api/v1/webhook-deliveries/{w.our_delivery.pk}/redeliver/"),
}


# --- The routes, from the resolver ------------------------------------------------------------


def _walk(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def api_routes() -> dict[str, tuple[type, tuple[str, ...]]]:
    """URL name → (view class, actions) for every route under /api/v1/."""
    routes = {}
    for route, pattern in _walk(get_resolver().url_patterns):
        view = getattr(pattern.callback, "cls", None)
        if not route.startswith(API_PREFIX) or view is None:
            continue
        mapped = getattr(pattern.callback, "actions", None) or {}
        if "list" in mapped.values():
            actions = LIST_ACTIONS
        elif "retrieve" in mapped.values():
            actions = DETAIL_ACTIONS
        elif mapped:  # A viewset's extra action (@action): the methods it maps.
            actions = tuple(ACTION_OF_METHOD[method] for method in ACTION_OF_METHOD if method in mapped)
        else:
            actions = tuple(ACTION_OF_METHOD[method] for method in ACTION_OF_METHOD if hasattr(view, method))
        routes[pattern.name] = (view, actions)
    return routes


ROUTES = api_routes()
CASES = [
    pytest.param(name, action, id=f"{name}-{action}")
    for name, (_view, actions) in sorted(ROUTES.items())
    if name not in OWN_TESTS
    for action in actions
]


# --- The world ---------------------------------------------------------------------------------


@pytest.fixture
def world(team, other_team, gpt4o, settings, tmp_path):
    w = SimpleNamespace(team=team, other_team=other_team)
    w.member = MembershipFactory(team=team, user=UserFactory(username="alice")).user
    w.lead = MembershipFactory(team=team, role=Membership.Role.LEAD, user=UserFactory(username="lena")).user
    w.outsider = MembershipFactory(team=other_team, user=UserFactory(username="bob")).user
    w.manager = make_manager(username="carol")
    w.admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    w.newcomer = UserFactory(username="dave")
    w.our_membership = Membership.objects.get(user=w.member)
    w.their_membership = Membership.objects.get(user=w.outsider)

    traffic = {"requests_per_month": 1000, "avg_input_tokens": 100, "avg_output_tokens": 10, "status": "active"}
    w.ours = services.create_use_case(team=team, title="FAQ bot", external_id="crm-1")
    w.theirs = services.create_use_case(team=other_team, title="Paper search", external_id="crm-1")
    w.our_deployment = services.create_deployment(use_case=w.ours, model=gpt4o, **traffic)
    w.their_deployment = services.create_deployment(use_case=w.theirs, model=gpt4o, **traffic)
    w.our_poc = services.create_poc(use_case=w.ours, hypothesis="Deflects a third of tickets.")
    w.their_poc = services.create_poc(use_case=w.theirs, hypothesis="Finds papers faster.")
    services.recompute_use_case(use_case_id=w.ours.pk)
    services.recompute_use_case(use_case_id=w.theirs.pk)
    w.our_cost_snapshot = w.ours.cost_snapshots.get()
    w.their_cost_snapshot = w.theirs.cost_snapshots.get()

    contract_model = LanguageModel.objects.get(key="meta/llama-3-70b")
    w.our_price = PriceFactory(model=contract_model, team=team)
    w.their_price = PriceFactory(model=contract_model, team=other_team)
    w.rate = ExchangeRateFactory(base="USD", quote="CHF", rate="0.9", as_of=datetime.date(2024, 1, 1))
    w.snapshot = PortfolioSnapshot.objects.create(taken_on=datetime.date(2024, 1, 1))
    w.job = RecomputeJob.objects.create(reason="nightly")
    settings.MEDIA_ROOT = tmp_path
    governance.evaluate_checklists(use_case_ids=[w.ours.pk, w.theirs.pk])
    w.our_item = governance.record_evidence(
        item=w.ours.checklist_items.get(template__code="eu-ai-literacy"),
        by=w.member,
        file=ContentFile(b"Trained in March.", name="training.txt"),
    )
    w.their_item = w.theirs.checklist_items.get(template__code="eu-ai-literacy")
    w.our_subscription = WebhookSubscriptionFactory(team=team, owner=w.lead)
    w.their_subscription = WebhookSubscriptionFactory(team=other_team)
    w.our_delivery = WebhookDeliveryFactory(subscription=w.our_subscription)
    w.their_delivery = WebhookDeliveryFactory(subscription=w.their_subscription)

    revoked = Token.objects.create(user=MembershipFactory(team=team).user)
    revoked.delete()
    w.tokens = {"anonymous": None, "revoked": revoked.key}
    for principal in ("member", "lead", "outsider", "manager", "admin"):
        w.tokens[principal] = Token.objects.create(user=getattr(w, principal)).key
    return w


def client_of(world, principal: str) -> APIClient:
    token = world.tokens[principal]
    return APIClient(HTTP_AUTHORIZATION=f"Token {token}") if token else APIClient()


# --- The matrix --------------------------------------------------------------------------------


def test_every_route_has_a_row_and_every_row_a_route():
    tested = set(ROUTES) - OWN_TESTS
    assert sorted(tested - set(MATRIX)) == [], "routes without a row in MATRIX"
    assert sorted(set(MATRIX) - tested) == [], "rows in MATRIX for routes that no longer exist"
    for name in tested & set(MATRIX):
        assert set(MATRIX[name]) == set(ROUTES[name][1]), f"{name}: MATRIX actions differ from the route's"
        assert name in TARGETS, f"{name} has no TARGET to request it with"


@pytest.mark.parametrize(("name", "action"), CASES)
def test_permission_matrix(name, action, world):
    expected = MATRIX.get(name, {}).get(action)
    if expected is None or name not in TARGETS:
        pytest.fail(f"No row for {action} on {name} in MATRIX and TARGETS: write the route's permissions down.")
    target = TARGETS[name]
    method = METHOD_OF[action]
    data = target.body(world) if method in ("post", "put", "patch") else None

    statuses, shown, without_etag = {}, {}, []
    for principal in PRINCIPALS:
        # Each principal meets the world as it was: a delete by one is undone for the next.
        savepoint = transaction.savepoint()
        response = getattr(client_of(world, principal), method)(target.url(world), data, format="json")
        statuses[principal] = response.status_code
        if response.status_code == 200 and target.rows is not None and principal in SEES:
            seen = target.seen(response.json())
            shown[principal] = {
                label for label, row in zip(("ours", "theirs"), target.rows(world), strict=True) if row in seen
            }
        if response.status_code == 200 and name.endswith("-detail") and not response.has_header("ETag"):
            without_etag.append(principal)
        transaction.savepoint_rollback(savepoint)

    assert statuses == expected
    assert shown == {principal: SEES[principal] for principal in shown}
    assert without_etag == [], "every detail answers with an ETag"


# --- Every view reads through a selector ----------------------------------------------------------

SELECTOR_MODULES = (portfolio_selectors, pricing_selectors)


def _selector_calls(view: type) -> list[tuple[ModuleType | None, str]]:
    source = inspect.getsource(view.get_queryset)
    module = inspect.getmodule(view)
    return [(vars(module).get(alias), name) for alias, name in re.findall(r"(\w*selectors)\.(\w+)\(", source)]


@pytest.mark.parametrize(
    "view", sorted({view for view, _ in ROUTES.values() if issubclass(view, GenericAPIView)}, key=str), ids=str
)
def test_every_api_view_queries_through_a_selector(view):
    assert view.get_queryset is not GenericAPIView.get_queryset, f"{view.__name__} has no get_queryset"
    source = inspect.getsource(view.get_queryset)
    assert ".objects" not in source, f"{view.__name__}.get_queryset reads a manager directly"
    calls = _selector_calls(view)
    assert calls, f"{view.__name__}.get_queryset calls no selector"
    for module, name in calls:
        assert module in SELECTOR_MODULES and callable(getattr(module, name, None)), (view, name)


# --- Auth, schema and docs ---------------------------------------------------------------------


def test_own_tests_cover_routes_that_exist():
    assert set(ROUTES) >= OWN_TESTS


def test_token_is_issued_for_good_credentials_only(world):
    world.member.set_password("pw-for-tests")
    world.member.save()
    client = APIClient()
    issued = client.post("/api/v1/auth/token/", {"username": "alice", "password": "pw-for-tests"}, format="json")
    assert issued.status_code == 200 and issued.json()["token"] == world.tokens["member"]
    assert client.post("/api/v1/auth/token/", {"username": "alice", "password": "nope"}).status_code == 400
    assert client.get("/api/v1/auth/token/").status_code == 405


def test_revoking_a_token_locks_it_out(world):
    assert client_of(world, "anonymous").delete("/api/v1/auth/token/revoke/").status_code == 401
    assert client_of(world, "revoked").delete("/api/v1/auth/token/revoke/").status_code == 401
    member = client_of(world, "member")
    assert member.delete("/api/v1/auth/token/revoke/").status_code == 204
    assert member.get("/api/v1/use-cases/").status_code == 401
    assert client_of(world, "lead").get("/api/v1/use-cases/").status_code == 200  # other tokens live on


def test_schema_and_docs_are_public_and_served_locally():
    client = APIClient()
    schema = client.get("/api/v1/schema/")
    docs = client.get("/api/v1/docs/")
    assert schema.status_code == 200 and b"openapi: 3" in schema.content
    assert docs.status_code == 200
    # The machines are offline: the docs page loads Swagger UI from our static files.
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs.content
    assert b"cdn.jsdelivr.net" not in docs.content
