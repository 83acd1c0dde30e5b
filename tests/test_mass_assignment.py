"""Mass assignment: no write endpoint lets a client set a field it may only read.

Every write route of the API (from the URL resolver) is probed twice on twin records:
once with a valid body, once with the same body plus every read-only field of the
route's serializer set to a foreign value (another team, another id, a far-off time,
made-up figures). The twins must end up alike in every read-only field; the fields that
differ between any two records (ids, timestamps) must simply not hold the foreign value.
A write route without a row in ``CASES`` fails: a new endpoint is probed before it ships.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework import serializers
from rest_framework.test import APIClient

from portfolio import governance, services
from portfolio.api.serializers import UpdateChecklistItemSerializer
from portfolio.models import ChecklistItem, Membership
from tests.factories import (
    DeploymentFactory,
    MembershipFactory,
    ProofOfConceptFactory,
    TeamFactory,
    UserFactory,
    WebhookDeliveryFactory,
    WebhookSubscriptionFactory,
    make_manager,
)

pytestmark = pytest.mark.django_db

WRITES = ("post", "put", "patch")
# Write routes that store no client-supplied record.
NOT_RECORDS = {
    ("auth-token", "post"): "credentials in, a token out",
    ("portfolio-what-if", "post"): "a projection: changes nothing",
}
# Read-only fields that differ between any two records: they must only not be the foreign value.
DISTINCT = {
    "id",
    "created_at",
    "updated_at",
    "computed_at",
    "taken_at",
    "started_at",
    "finished_at",
    "recorded_at",
    "delivered_at",
    "next_attempt_at",
    "event_id",
    "secret",
}
FOREIGN_TIME = "2001-02-03T04:05:06Z"
FOREIGN_ID = 987_654_321


@dataclass
class World:
    team: Any
    other_team: Any
    manager: Any
    gpt4o: Any
    use_case: Any = None
    other_use_case: Any = None


@dataclass(frozen=True)
class Case:
    # Twin records to write to (None: the route creates), given the world and a twin number.
    target: Callable[[World, int], Any] | None
    url: Callable[[World, Any], str]
    body: Callable[[World, int], dict[str, Any]]
    # The stored record, as the API shows it, given the world, the target and the response.
    shown: Callable[[World, Any, Any], str]
    # Input fields the view takes besides its serializer's writable ones.
    also_writable: frozenset[str] = field(default_factory=frozenset)
    # Read-only fields that legitimately differ between the twins.
    differ: frozenset[str] = field(default_factory=frozenset)
    # The serializer whose read-only fields are probed, when not the view's.
    serializer: type[serializers.Serializer] | None = None


def detail(name: str, key: str = "pk"):
    return lambda world, target, response: reverse(
        f"api:{name}-detail",
        kwargs={
            key: getattr(target, key)
            if target is not None and not isinstance(target, dict)
            else response.json()["id" if key == "pk" else key]
        },
    )


def twin_use_case(world: World, n: int):
    return services.create_use_case(
        team=world.team,
        title=f"Twin {n}",
        hours_saved_per_month=Decimal("10"),
        hourly_rate=Decimal("50"),
        external_id=f"twin-{n}",
    )


def manual_item(world: World, n: int) -> ChecklistItem:
    use_case = twin_use_case(world, n)
    governance.evaluate_checklists(use_case_ids=[use_case.pk])
    return ChecklistItem.objects.filter(use_case=use_case, template__kind="manual").order_by("template__code").first()


USE_CASE_BODY = {"title": "Probe", "hours_saved_per_month": "20.00", "hourly_rate": "40.00", "currency": "USD"}
DEPLOYMENT_BODY = {
    "model": "openai/gpt-4o",
    "status": "active",
    "requests_per_month": 1000,
    "avg_input_tokens": 100,
    "avg_output_tokens": 10,
}

CASES: dict[tuple[str, str], Case] = {
    ("team-list", "post"): Case(
        None,
        lambda w, t: reverse("api:team-list"),
        lambda w, n: {"name": f"Probe {n}", "slug": f"probe-{n}"},
        detail("team", "slug"),
    ),
    **{
        ("team-detail", method): Case(
            lambda w, n: TeamFactory(slug=f"twin-{n}", name=f"Twin {n}"),
            lambda w, t: reverse("api:team-detail", kwargs={"slug": t.slug}),
            lambda w, n: {"name": f"Renamed {n}", "slug": f"twin-{n}"},
            detail("team", "slug"),
        )
        for method in ("put", "patch")
    },
    ("membership-list", "post"): Case(
        None,
        lambda w, t: reverse("api:membership-list"),
        lambda w, n: {"user": UserFactory(username=f"joiner{n}").username, "team": "support", "role": "member"},
        detail("membership"),
        differ=frozenset({"user"}),
    ),
    **{
        ("membership-detail", method): Case(
            lambda w, n: MembershipFactory(team=w.team, user=UserFactory(username=f"twin{n}")),
            lambda w, t: reverse("api:membership-detail", kwargs={"pk": t.pk}),
            lambda w, n: {"role": "lead"},
            detail("membership"),
            differ=frozenset({"user"}),
        )
        for method in ("put", "patch")
    },
    ("use-case-list", "post"): Case(
        None,
        lambda w, t: reverse("api:use-case-list"),
        lambda w, n: {**USE_CASE_BODY, "team": "support"},
        detail("use-case"),
    ),
    **{
        ("use-case-detail", method): Case(
            twin_use_case,
            lambda w, t: reverse("api:use-case-detail", kwargs={"pk": t.pk}),
            lambda w, n: dict(USE_CASE_BODY, external_id=f"twin-{n}"),
            detail("use-case"),
        )
        for method in ("put", "patch")
    },
    ("use-case-by-external-id", "put"): Case(
        twin_use_case,
        lambda w, t: reverse(
            "api:use-case-by-external-id", kwargs={"team_slug": "support", "external_id": t.external_id}
        ),
        lambda w, n: USE_CASE_BODY,
        detail("use-case"),
        differ=frozenset({"external_id"}),
    ),
    ("use-case-bulk", "post"): Case(
        None,
        lambda w, t: reverse("api:use-case-bulk"),
        lambda w, n: {"rows": [{**USE_CASE_BODY, "team": "support", "external_id": f"bulk-{n}"}]},
        lambda w, t, response: reverse("api:use-case-detail", kwargs={"pk": response.json()["results"][0]["id"]}),
    ),
    ("deployment-list", "post"): Case(
        None,
        lambda w, t: reverse("api:deployment-list"),
        lambda w, n: {**DEPLOYMENT_BODY, "use_case": w.use_case.pk},
        detail("deployment"),
    ),
    **{
        ("deployment-detail", method): Case(
            lambda w, n: DeploymentFactory(use_case=w.use_case, model=w.gpt4o, name=f"Twin {n}"),
            lambda w, t: reverse("api:deployment-detail", kwargs={"pk": t.pk}),
            lambda w, n: {**DEPLOYMENT_BODY, "name": f"Twin {n}"},
            detail("deployment"),
        )
        for method in ("put", "patch")
    },
    ("poc-list", "post"): Case(
        None,
        lambda w, t: reverse("api:poc-list"),
        lambda w, n: {"use_case": w.use_case.pk, "hypothesis": "It helps."},
        detail("poc"),
    ),
    **{
        ("poc-detail", method): Case(
            lambda w, n: ProofOfConceptFactory(use_case=w.use_case, hypothesis=f"Twin {n}"),
            lambda w, t: reverse("api:poc-detail", kwargs={"pk": t.pk}),
            lambda w, n: {"hypothesis": f"Changed {n}"},
            detail("poc"),
        )
        for method in ("put", "patch")
    },
    ("job-list", "post"): Case(None, lambda w, t: reverse("api:job-list"), lambda w, n: {}, detail("job")),
    ("checklist-item-detail", "patch"): Case(
        manual_item,
        lambda w, t: reverse("api:checklist-item-detail", kwargs={"pk": t.pk}),
        lambda w, n: {"evidence_text": "Reviewed by the board."},
        detail("checklist-item"),
        also_writable=frozenset(UpdateChecklistItemSerializer().fields),
        differ=frozenset({"use_case"}),
    ),
    ("price-list", "post"): Case(
        None,
        lambda w, t: reverse("api:price-list"),
        lambda w, n: {
            "model": "openai/gpt-4o",
            "input_per_million": f"2.{n}0",
            "output_per_million": "9.00",
            "currency": "USD",
            "effective_from": "2030-01-0" + str(n + 1),
        },
        detail("price"),
    ),
    ("exchange-rate-list", "post"): Case(
        None,
        lambda w, t: reverse("api:exchange-rate-list"),
        lambda w, n: {"base": "USD", "quote": "CHF", "rate": "0.9", "as_of": f"2030-01-0{n + 1}"},
        detail("exchange-rate"),
    ),
    ("webhook-list", "post"): Case(
        None,
        lambda w, t: reverse("api:webhook-list"),
        lambda w, n: {"team": "support", "target_url": "https://93.184.215.14/hooks", "events": ["use_case.created"]},
        detail("webhook"),
    ),
    **{
        ("webhook-detail", method): Case(
            lambda w, n: WebhookSubscriptionFactory(team=w.team, description=f"Twin {n}"),
            lambda w, t: reverse("api:webhook-detail", kwargs={"pk": t.pk}),
            lambda w, n: {"target_url": "https://93.184.215.14/hooks", "events": ["use_case.created"]},
            detail("webhook"),
        )
        for method in ("put", "patch")
    },
    ("webhook-delivery-redeliver", "post"): Case(
        lambda w, n: WebhookDeliveryFactory(subscription__team=w.team, status="delivered"),
        lambda w, t: reverse("api:webhook-delivery-redeliver", kwargs={"pk": t.pk}),
        lambda w, n: {},
        lambda w, t, response: reverse("api:webhook-delivery-detail", kwargs={"pk": response.json()["id"]}),
        differ=frozenset({"subscription", "payload"}),  # Each twin's own event.
    ),
}


def write_routes(resolver: URLResolver | None = None, prefix: str = "") -> dict[tuple[str, str], Any]:
    """(URL name, method) of every API route that accepts a write, with the route's view."""
    found = {}
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            found |= write_routes(entry, prefix + str(entry.pattern))
            continue
        assert isinstance(entry, URLPattern)
        if not prefix.startswith("api/v1/") or entry.name is None:
            continue
        callback = entry.callback
        if hasattr(callback, "actions"):  # A viewset's route.
            methods = [
                method for method in callback.actions if method in WRITES and method in callback.cls.http_method_names
            ]
        else:
            methods = [method for method in WRITES if hasattr(getattr(callback, "view_class", None), method)]
        for method in methods:
            found[(entry.name, method)] = callback
    return found


def view_serializer(callback, method: str, world: World, target) -> serializers.Serializer:
    """The serializer the route's view validates the body with, bound as the view binds it."""
    if hasattr(callback, "actions"):
        view = callback.cls(**callback.initkwargs)
        view.action = callback.actions[method]
        view.format_kwarg = None
        view.request = type("Request", (), {"user": world.manager, "method": method.upper()})()
        serializer_class = view.get_serializer_class()
    else:
        serializer_class = callback.view_class.serializer_class
    instance = target if target is not None and not isinstance(target, dict) else None
    return serializer_class(instance, context={"request": view.request if hasattr(callback, "actions") else None})


def read_only_fields(serializer: serializers.Serializer) -> dict[str, serializers.Field]:
    if isinstance(serializer, serializers.Serializer) and "rows" in serializer.fields:  # Bulk: per row.
        serializer = serializer.fields["rows"].child
    return {name: f for name, f in serializer.fields.items() if f.read_only}


def with_foreign(body: dict[str, Any], foreign: dict[str, Any]) -> dict[str, Any]:
    """The body with the foreign values added (to its row, for the bulk upsert)."""
    if "rows" in body:
        return {"rows": [{**row, **foreign} for row in body["rows"]]}
    return {**body, **foreign}


def foreign_value(name: str, serializer_field: serializers.Field, world: World) -> Any:
    if name == "team":
        return world.other_team.slug
    if name == "use_case":
        return world.other_use_case.pk
    if name in ("id", "version", "total", "done", "changed", "attempts", "consecutive_failures"):
        return FOREIGN_ID
    if name == "needs_recompute":
        return False
    if isinstance(serializer_field, serializers.DateTimeField):
        return FOREIGN_TIME
    if isinstance(serializer_field, serializers.DateField):
        return "2001-02-03"
    if isinstance(serializer_field, serializers.DecimalField):
        return "987654.32"
    if isinstance(serializer_field, serializers.IntegerField):
        return FOREIGN_ID
    if isinstance(serializer_field, serializers.BooleanField):
        return True
    if isinstance(serializer_field, serializers.ChoiceField):
        return list(serializer_field.choices)[-1]
    if isinstance(serializer_field, serializers.ListField | serializers.ManyRelatedField):
        return ["forged"]
    if isinstance(serializer_field, serializers.JSONField | serializers.DictField):
        return {"forged": True}
    if isinstance(serializer_field, serializers.RelatedField):
        return "forged"
    return "forged by the client"


@pytest.fixture
def world(team, other_team, gpt4o):
    MembershipFactory(team=team, user=UserFactory(username="alice"), role=Membership.Role.LEAD)
    world = World(team=team, other_team=other_team, manager=make_manager(username="carol"), gpt4o=gpt4o)
    world.use_case = services.create_use_case(team=team, title="Parent")
    world.other_use_case = services.create_use_case(team=other_team, title="Elsewhere")
    return world


def test_every_write_route_has_a_probe():
    missing = set(write_routes()) - set(CASES) - set(NOT_RECORDS)
    assert missing == set(), f"write routes without a mass-assignment case: {sorted(missing)}"


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda route: f"{route[1].upper()} {route[0]}")
def test_read_only_fields_sent_to_a_write_change_nothing(route, world):
    _name, method = route
    callback = write_routes().get(route)
    if callback is None:
        pytest.fail(f"{route} has a case but no such write route: remove the case")
    case = CASES[route]
    client = APIClient()
    client.force_authenticate(world.manager)

    plain_target = case.target(world, 0) if case.target else None
    probed_target = case.target(world, 1) if case.target else None
    serializer = view_serializer(callback, method, world, probed_target)
    probed = {name: f for name, f in read_only_fields(serializer).items() if name not in case.also_writable}
    assert probed, f"{route}: no read-only field to probe"
    foreign = {name: foreign_value(name, f, world) for name, f in probed.items()}

    plain_answer = getattr(client, method)(case.url(world, plain_target), case.body(world, 0), format="json")
    probed_answer = getattr(client, method)(
        case.url(world, probed_target), with_foreign(case.body(world, 1), foreign), format="json"
    )

    assert plain_answer.status_code in (200, 201), (route, plain_answer.content[:500])
    assert probed_answer.status_code == plain_answer.status_code, (route, probed_answer.content[:500])
    plain = client.get(case.shown(world, plain_target, plain_answer)).json()
    stored = client.get(case.shown(world, probed_target, probed_answer)).json()
    changed = {
        name: (stored.get(name), plain.get(name))
        for name in foreign
        if name in stored
        and (stored[name] == foreign[name] if name in DISTINCT | case.differ else stored[name] != plain.get(name))
    }
    assert changed == {}, f"{route}: read-only fields took the client's value (stored, expected): {changed}"
    assert stored.get("team") in (None, world.team.slug)


def test_the_probe_would_notice_a_writable_field(world):
    """The probe's own check: a writable field sent the same way does change the record."""
    client = APIClient()
    client.force_authenticate(world.manager)
    use_case = twin_use_case(world, 0)
    client.patch(
        reverse("api:use-case-detail", kwargs={"pk": use_case.pk}), {"title": "forged by the client"}, format="json"
    )
    assert (
        client.get(reverse("api:use-case-detail", kwargs={"pk": use_case.pk})).json()["title"] == "forged by the client"
    )
