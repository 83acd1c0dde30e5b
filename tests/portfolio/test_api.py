import datetime
import json
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from config.drf_speed import ValuesRepresentation
from portfolio import services
from portfolio.api.serializers import UseCaseSerializer
from portfolio.models import Membership, UseCase
from pricing.models import ExchangeRate, Price
from tests.factories import DeploymentFactory, MembershipFactory, UseCaseFactory, UserFactory

pytestmark = pytest.mark.django_db

SUPPORT_BOT = {"requests_per_month": 1_000_000, "avg_input_tokens": 1_000, "avg_output_tokens": 300}


def api(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def ours(team, gpt4o):
    use_case = services.create_use_case(team=team, title="FAQ bot", external_id="crm-1")
    services.create_deployment(use_case=use_case, model=gpt4o, status="active", **SUPPORT_BOT)
    services.recompute_use_case(use_case_id=use_case.pk)
    use_case.refresh_from_db()
    return use_case


@pytest.fixture
def theirs(other_team, llama70b):
    use_case = services.create_use_case(team=other_team, title="Research bot")
    services.create_deployment(use_case=use_case, model=llama70b, status="active", **SUPPORT_BOT)
    services.recompute_use_case(use_case_id=use_case.pk)
    return use_case


def test_token_is_issued_used_and_revoked(member):
    member.set_password("pw-for-tests")
    member.save()
    token = api().post("/api/v1/auth/token/", {"username": "alice", "password": "pw-for-tests"}).json()["token"]
    client = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/use-cases/").status_code == 200

    assert client.delete("/api/v1/auth/token/revoke/").status_code == 204
    assert client.get("/api/v1/use-cases/").status_code == 401


def test_wrong_password_gets_400_and_anonymous_gets_401():
    assert api().post("/api/v1/auth/token/", {"username": "x", "password": "y"}).status_code == 400
    assert api().get("/api/v1/use-cases/").status_code == 401


def test_member_lists_only_their_teams_use_cases(member, ours, theirs):
    body = api(member).get("/api/v1/use-cases/").json()
    assert [row["title"] for row in body["results"]] == ["FAQ bot"]
    assert body["results"][0]["monthly_cost"] == "5500.00"


def test_other_teams_records_answer_404(member, theirs):
    client = api(member)
    assert client.get(f"/api/v1/use-cases/{theirs.pk}/").status_code == 404
    assert client.patch(f"/api/v1/use-cases/{theirs.pk}/", {"title": "x"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/use-cases/{theirs.pk}/").status_code == 404
    deployment = theirs.deployments.get()
    assert client.get(f"/api/v1/deployments/{deployment.pk}/").status_code == 404
    assert client.put("/api/v1/use-cases/by-external-id/research/x/", {"title": "x"}, format="json").status_code == 404


def test_manager_reads_every_team(manager, ours, theirs):
    assert api(manager).get("/api/v1/use-cases/").json()["count"] == 2


def test_member_cannot_create_in_another_team(member, other_team):
    response = api(member).post("/api/v1/use-cases/", {"team": "research", "title": "Sneaky"}, format="json")
    assert response.status_code == 400
    assert "team" in response.json()
    assert not UseCase.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "ok", "hourly_rate": "-1"}, "hourly_rate"),
        ({"title": "ok", "hourly_rate": "abc"}, "hourly_rate"),
        ({"title": "ok", "horizon_months": 0}, "horizon_months"),
        ({"title": "ok", "stage": "launched"}, "stage"),
        ({"title": "ok", "currency": "BTC"}, "currency"),
        ({"title": "ok", "external_id": "has space"}, "external_id"),
        ({"title": "ok", "monthly_cost": "1"}, None),
    ],
)
def test_bad_use_case_input_is_a_400_with_field_errors(member, team, payload, field):
    response = api(member).post("/api/v1/use-cases/", {"team": "support", **payload}, format="json")
    if field is None:  # read-only fields are ignored, never written
        assert response.status_code == 201
        assert response.json()["monthly_cost"] != "1.00"
        return
    assert response.status_code == 400
    assert field in response.json()
    assert not UseCase.objects.exists()


def test_malformed_json_is_a_400(member):
    response = api(member).generic("POST", "/api/v1/use-cases/", "{not json", content_type="application/json")
    assert response.status_code == 400


def test_create_recomputes_after_commit(member, team, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = api(member).post(
            "/api/v1/use-cases/",
            {
                "team": "support",
                "title": "Triage",
                "hours_saved_per_month": "10",
                "hourly_rate": "50",
            },
            format="json",
        )
    assert response.status_code == 201
    assert response["ETag"]
    assert response.json()["needs_recompute"] is True
    assert len(callbacks) == 1
    services.recompute_stale()
    assert UseCase.objects.get().monthly_benefit == Decimal("500.00")


def test_upsert_by_external_id_creates_then_updates(member, team):
    client = api(member)
    url = "/api/v1/use-cases/by-external-id/support/ERP-42/"

    first = client.put(url, {"title": "Invoice matching"}, format="json")
    second = client.put(url, {"title": "Invoice matching v2", "stage": "poc"}, format="json")

    assert (first.status_code, second.status_code) == (201, 200)
    use_case = UseCase.objects.get()
    assert (use_case.title, use_case.stage, use_case.external_id) == ("Invoice matching v2", "poc", "ERP-42")
    assert client.get(url).json()["id"] == use_case.pk


def test_upsert_with_bad_input_saves_nothing(member, team):
    response = api(member).put("/api/v1/use-cases/by-external-id/support/ERP-1/", {"title": ""}, format="json")
    assert response.status_code == 400
    assert not UseCase.objects.exists()


def test_etag_and_if_match(member, ours):
    client = api(member)
    url = f"/api/v1/use-cases/{ours.pk}/"
    etag = client.get(url)["ETag"]

    updated = client.patch(url, {"title": "v2"}, format="json", HTTP_IF_MATCH=etag)
    stale = client.patch(url, {"title": "v3"}, format="json", HTTP_IF_MATCH=etag)

    assert updated.status_code == 200 and updated["ETag"] != etag
    assert stale.status_code == 412
    assert UseCase.objects.get().title == "v2"


def test_bulk_upsert_is_all_or_nothing(member, team):
    client = api(member)
    rows = [{"team": "support", "external_id": f"row-{n}", "title": f"Row {n}"} for n in range(3)]

    bad = client.post(
        "/api/v1/use-cases/bulk/",
        {"rows": [*rows, {"team": "support", "external_id": "x", "title": "", "hourly_rate": "-5"}]},
        format="json",
    )
    assert bad.status_code == 400
    assert "3" in bad.json()["rows"]
    assert not UseCase.objects.exists()

    good = client.post("/api/v1/use-cases/bulk/", {"rows": rows}, format="json")
    assert good.status_code == 200 and good.json()["created"] == 3
    again = client.post("/api/v1/use-cases/bulk/", {"rows": rows}, format="json")
    assert again.json() | {"results": []} == {"created": 0, "updated": 3, "results": []}
    assert UseCase.objects.count() == 3


def test_bulk_upsert_refuses_more_than_1000_rows(member, team):
    rows = [{"team": "support", "external_id": f"r{n}", "title": "t"} for n in range(1001)]
    assert api(member).post("/api/v1/use-cases/bulk/", {"rows": rows}, format="json").status_code == 400


def test_deployment_create_validates_and_recomputes(member, ours, django_capture_on_commit_callbacks):
    client = api(member)
    bad = client.post(
        "/api/v1/deployments/",
        {"use_case": ours.pk, "model": "openai/gpt-4o", "cached_input_ratio": "1.5"},
        format="json",
    )
    unknown = client.post("/api/v1/deployments/", {"use_case": ours.pk, "model": "nope/nope"}, format="json")
    assert bad.status_code == 400 and "cached_input_ratio" in bad.json()
    assert unknown.status_code == 400 and "model" in unknown.json()

    with django_capture_on_commit_callbacks() as callbacks:
        created = client.post(
            "/api/v1/deployments/",
            {"use_case": ours.pk, "model": "meta/llama-3-70b", "status": "active", **SUPPORT_BOT},
            format="json",
        )
    assert created.status_code == 201 and callbacks
    services.recompute_stale()
    ours.refresh_from_db()
    assert ours.monthly_cost == Decimal("6225.00")


def test_summary_is_scoped_and_converted(member, manager, ours, theirs):
    mine = api(member).get("/api/v1/portfolio/summary/").json()
    everyone = api(manager).get("/api/v1/portfolio/summary/").json()
    in_yen = api(manager).get("/api/v1/portfolio/summary/?currency=JPY").json()

    assert mine["totals"]["monthly_cost"] == "5500.00" and list(mine["by_team"]) == ["support"]
    assert everyone["totals"]["monthly_cost"] == "6225.00"
    assert everyone["by_model"]["openai/gpt-4o"]["monthly_cost"] == "5500.00"
    assert in_yen["totals"]["monthly_cost"] == "933750"  # 6,225 × 150
    assert api(manager).get("/api/v1/portfolio/summary/?currency=XXX").status_code == 400
    assert api(manager).get("/api/v1/portfolio/summary/?currency=dollars").status_code == 400


def test_what_if_gpt4o_to_llama_saves_4775_and_changes_nothing(member, ours):
    response = api(member).post(
        "/api/v1/portfolio/what-if/", {"from_model": "openai/gpt-4o", "to_model": "meta/llama-3-70b"}, format="json"
    )

    body = response.json()
    assert response.status_code == 200
    assert (body["current_monthly_cost"], body["projected_monthly_cost"], body["monthly_savings"]) == (
        "5500.00",
        "725.00",
        "4775.00",
    )
    assert [u["id"] for u in body["affected_use_cases"]] == [ours.pk]
    ours.refresh_from_db()
    assert ours.monthly_cost == Decimal("5500.00")


def test_what_if_flags_the_llama_user_limit(member, ours):
    UseCase.objects.filter(pk=ours.pk).update(expected_monthly_active_users=800_000_000)
    body = (
        api(member)
        .post(
            "/api/v1/portfolio/what-if/", {"from_model": "openai/gpt-4o", "to_model": "meta/llama-3-70b"}, format="json"
        )
        .json()
    )
    entry = body["affected_use_cases"][0]
    assert entry["licence_findings_after"] == ["monthly_active_user_limit_exceeded"]
    assert entry["governance_changes"] is True


def test_what_if_rejects_unknown_or_identical_models(member):
    client = api(member)
    assert (
        client.post(
            "/api/v1/portfolio/what-if/", {"from_model": "x/y", "to_model": "meta/llama-3-70b"}, format="json"
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/api/v1/portfolio/what-if/",
            {"from_model": "meta/llama-3-70b", "to_model": "meta/llama-3-70b"},
            format="json",
        ).status_code
        == 400
    )


def test_only_managers_add_prices_and_prices_are_never_edited(member, manager, gpt4o):
    payload = {
        "model": "openai/gpt-4o",
        "input_per_million": "2.00",
        "output_per_million": "8.00",
        "currency": "USD",
        "effective_from": "2026-01-01",
    }
    assert api(member).post("/api/v1/prices/", payload, format="json").status_code == 403
    created = api(manager).post("/api/v1/prices/", payload, format="json")
    assert created.status_code == 201
    duplicate = api(manager).post("/api/v1/prices/", payload, format="json")
    assert duplicate.status_code == 400
    price_id = created.json()["id"]
    assert (
        api(manager).patch(f"/api/v1/prices/{price_id}/", {"input_per_million": "1"}, format="json").status_code == 405
    )
    assert Price.objects.get(pk=price_id).effective_from == datetime.date(2026, 1, 1)


def test_models_are_readable_by_key(member):
    body = api(member).get("/api/v1/models/meta/llama-3-70b/").json()
    assert body["licence"]["monthly_active_user_limit"] == 700_000_000


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/use-cases/",
        "/api/v1/deployments/",
        "/api/v1/pocs/",
        "/api/v1/prices/",
        "/api/v1/models/",
        "/api/v1/cost-snapshots/",
    ],
)
def test_list_endpoints_run_a_constant_number_of_queries(url, manager, team, gpt4o, django_assert_max_num_queries):
    for _ in range(30):
        use_case = UseCaseFactory(team=team)
        DeploymentFactory(use_case=use_case, model=gpt4o)
        services.create_poc(use_case=use_case, hypothesis="h", model=gpt4o)
        services.recompute_use_case(use_case_id=use_case.pk)
    client = api(manager)
    with django_assert_max_num_queries(5):
        small = client.get(url, {"page_size": 1})
    with django_assert_max_num_queries(5):
        large = client.get(url, {"page_size": 500})
    assert small.status_code == large.status_code == 200
    assert len(large.json()["results"]) > 1


def test_schema_and_docs_are_served(member):
    assert api(member).get("/api/v1/schema/").status_code == 200
    assert api(member).get("/api/v1/docs/").status_code == 200


def test_lead_of_one_team_sees_only_that_team(other_team, ours):
    lead = MembershipFactory(team=other_team, role="lead", user=UserFactory(username="lead")).user
    assert api(lead).get("/api/v1/use-cases/").json()["count"] == 0


@pytest.fixture
def lead(team):
    return MembershipFactory(team=team, role="lead", user=UserFactory(username="lena")).user


def test_lead_adds_promotes_and_removes_members_of_their_team(lead, member):
    client = api(lead)
    added = client.post(
        "/api/v1/memberships/", {"team": "support", "user": UserFactory(username="dave").username}, format="json"
    )
    assert added.status_code == 201
    assert added.json() | {"id": 0, "created_at": ""} == {
        "id": 0,
        "user": "dave",
        "team": "support",
        "role": "member",
        "created_at": "",
    }

    alice = Membership.objects.get(user=member)
    promoted = client.patch(f"/api/v1/memberships/{alice.pk}/", {"role": "lead", "team": "research"}, format="json")
    assert promoted.status_code == 200 and promoted.json()["team"] == "support"  # team is read-only
    assert client.delete(f"/api/v1/memberships/{added.json()['id']}/").status_code == 204
    assert set(Membership.objects.values_list("user__username", "role")) == {("alice", "lead"), ("lena", "lead")}


def test_member_reads_their_teams_memberships_but_cannot_change_them(member, lead, outsider):
    client = api(member)
    listed = client.get("/api/v1/memberships/").json()["results"]
    assert {row["user"] for row in listed} == {"alice", "lena"}  # not bob, who is in research

    lena = Membership.objects.get(user=lead)
    assert client.patch(f"/api/v1/memberships/{lena.pk}/", {"role": "member"}, format="json").status_code == 403
    assert client.delete(f"/api/v1/memberships/{lena.pk}/").status_code == 403
    assert client.post("/api/v1/memberships/", {"team": "support", "user": "bob"}, format="json").status_code == 403
    assert Membership.objects.count() == 3


def test_a_lead_manages_only_their_own_team(lead, outsider, other_team, team):
    client = api(lead)
    bob = Membership.objects.get(user=outsider)
    assert client.get(f"/api/v1/memberships/{bob.pk}/").status_code == 404
    assert client.patch(f"/api/v1/memberships/{bob.pk}/", {"role": "lead"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/memberships/{bob.pk}/").status_code == 404
    refused = client.post("/api/v1/memberships/", {"team": "research", "user": "lena"}, format="json")
    assert refused.status_code == 400 and "team" in refused.json()

    # A lead who is a plain member elsewhere reads that team but does not manage it.
    MembershipFactory(team=other_team, user=lead)
    assert client.get(f"/api/v1/memberships/{bob.pk}/").status_code == 200
    assert (
        client.post(
            "/api/v1/memberships/", {"team": "research", "user": UserFactory().username}, format="json"
        ).status_code
        == 403
    )
    assert client.patch(f"/api/v1/memberships/{bob.pk}/", {"role": "lead"}, format="json").status_code == 403
    assert not Membership.objects.filter(team=other_team, role="lead").exists()


def test_the_last_lead_cannot_step_down_or_leave(lead):
    client = api(lead)
    own = Membership.objects.get(user=lead)
    demoted = client.patch(f"/api/v1/memberships/{own.pk}/", {"role": "member"}, format="json")
    removed = client.delete(f"/api/v1/memberships/{own.pk}/")
    assert (demoted.status_code, removed.status_code) == (400, 400)
    assert "role" in demoted.json() and "role" in removed.json()
    assert Membership.objects.get(pk=own.pk).role == "lead"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"team": "support", "user": "alice"}, "non_field_errors"),  # already a member
        ({"team": "support", "user": "nobody"}, "user"),
        ({"team": "support", "user": "dave", "role": "owner"}, "role"),
        ({"team": "support"}, "user"),
        ({"user": "dave"}, "team"),
    ],
)
def test_bad_membership_input_is_a_400(manager, member, payload, field):
    UserFactory(username="dave")
    response = api(manager).post("/api/v1/memberships/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Membership.objects.count() == 1


def test_manager_manages_every_team_and_filters_memberships(manager, member, outsider):
    client = api(manager)
    bob = Membership.objects.get(user=outsider)
    assert client.patch(f"/api/v1/memberships/{bob.pk}/", {"role": "lead"}, format="json").status_code == 200
    leads = client.get("/api/v1/memberships/", {"role": "lead"}).json()["results"]
    in_support = client.get("/api/v1/memberships/", {"team": "support"}).json()["results"]
    assert [row["user"] for row in leads] == ["bob"]
    assert [row["user"] for row in in_support] == ["alice"]


def test_membership_list_runs_a_constant_number_of_queries(manager, team, django_assert_max_num_queries):
    for _ in range(30):
        MembershipFactory(team=team)
    with django_assert_max_num_queries(5):
        response = api(manager).get("/api/v1/memberships/", {"page_size": 500})
    assert len(response.json()["results"]) == 30


def test_bulk_upsert_refuses_rows_for_another_team(outsider, team):
    response = api(outsider).post(
        "/api/v1/use-cases/bulk/",
        {
            "rows": [
                {"team": "support", "external_id": "x-1", "title": "Sneaky"},
            ]
        },
        format="json",
    )
    assert response.status_code == 400
    assert "team" in response.json()["rows"]["0"]
    assert not UseCase.objects.exists()


def test_page_size_is_capped_at_500(manager, team):
    UseCase.objects.bulk_create(UseCase(team=team, title=f"Use case {n}") for n in range(501))
    body = api(manager).get("/api/v1/use-cases/", {"page_size": 1000}).json()
    assert (body["count"], len(body["results"])) == (501, 500)
    assert "page=2" in body["next"]


def test_updated_since_pulls_only_what_changed(member, team):
    old = UseCaseFactory(team=team, title="Old")
    UseCase.objects.filter(pk=old.pk).update(updated_at=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
    UseCaseFactory(team=team, title="New")
    client = api(member)

    def titles(since):
        response = client.get("/api/v1/use-cases/", {"updated_since": since})
        return response.status_code, [row["title"] for row in response.json().get("results", [])]

    assert titles("2025-01-01T00:00:00Z") == (200, ["New"])
    # Offsets PostgreSQL refuses (beyond ±15:59) are valid ISO 8601: compared in UTC.
    assert titles("2024-01-01T16:00:00+16:30") == (200, ["New", "Old"])
    assert titles("0001-01-01T00:00:00+16:00")[0] == 400
    assert titles("yesterday")[0] == 400


def test_every_synced_list_filters_by_updated_since(manager):
    for url in [
        "use-cases",
        "deployments",
        "pocs",
        "checklist-items",
        "cost-snapshots",
        "models",
        "prices",
        "exchange-rates",
    ]:
        response = api(manager).get(f"/api/v1/{url}/", {"updated_since": "2999-01-01T00:00:00Z"})
        assert (url, response.status_code, response.json()["count"]) == (url, 200, 0)


@pytest.mark.parametrize(
    "request_args",
    [
        ("get", "/api/v1/teams/sup%00port/", None),
        ("get", "/api/v1/use-cases/?search=%00", None),
        ("put", "/api/v1/use-cases/by-external-id/support/ERP%00/", {"title": "x"}),
        ("post", "/api/v1/memberships/", {"team": "sup\x00port", "user": "alice"}),
        ("post", "/api/v1/portfolio/what-if/", {"from_model": "openai/gpt-4o\x00", "to_model": "meta/llama-3-70b"}),
    ],
)
@pytest.mark.parametrize("body_format", ["json", "multipart"])
def test_nul_characters_are_a_400_not_a_database_error(manager, member, request_args, body_format):
    method, url, data = request_args
    response = getattr(api(manager), method)(url, data, format=body_format)
    assert response.status_code == 400


def test_exchange_rates_name_both_currencies(manager):
    response = api(manager).post(
        "/api/v1/exchange-rates/", {"quote": "JPY", "rate": "150", "as_of": "2030-01-01"}, format="json"
    )
    assert response.status_code == 400 and "base" in response.json()
    assert not ExchangeRate.objects.filter(as_of="2030-01-01").exists()


def test_the_schema_documents_ordering_and_page_size(member):
    schema = api(member).get("/api/v1/schema/", {"format": "json"}).json()
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/use-cases/"]["get"]["parameters"]}
    assert "updated_at" in parameters["ordering"]["description"]
    assert "500" in parameters["page_size"]["description"]
    assert "updated_since" in parameters


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_upserts_of_one_external_id_make_one_use_case(member, team):
    """Two sync clients PUT the same new external id at once: one creates it, the other updates it."""
    url = "/api/v1/use-cases/by-external-id/support/ERP-7/"
    barrier = threading.Barrier(2)
    statuses, errors = [], []

    def put(title):
        try:
            client = api(member)
            barrier.wait()
            statuses.append(client.put(url, {"title": title}, format="json").status_code)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=put, args=(title,)) for title in ("From the CRM", "From the ERP")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(statuses) == [200, 201]
    assert UseCase.objects.filter(team=team, external_id="ERP-7").count() == 1


def test_teams_and_memberships_refuse_stale_writes(manager, member, team):
    client = api(manager)
    team_etag = client.get("/api/v1/teams/support/")["ETag"]
    renamed = client.patch("/api/v1/teams/support/", {"name": "Support desk"}, format="json", HTTP_IF_MATCH=team_etag)
    stale = client.patch("/api/v1/teams/support/", {"name": "Help desk"}, format="json", HTTP_IF_MATCH=team_etag)
    assert renamed.status_code == 200 and renamed["ETag"] != team_etag
    assert stale.status_code == 412

    alice = Membership.objects.get(user=member)
    etag = client.get(f"/api/v1/memberships/{alice.pk}/")["ETag"]
    assert (
        client.patch(
            f"/api/v1/memberships/{alice.pk}/", {"role": "lead"}, format="json", HTTP_IF_MATCH=etag
        ).status_code
        == 200
    )
    assert client.delete(f"/api/v1/memberships/{alice.pk}/", HTTP_IF_MATCH=etag).status_code == 412
    assert Membership.objects.get(pk=alice.pk).role == "lead"


def test_summary_of_extreme_figures_at_an_extreme_rate_is_still_an_answer(manager, team):
    # Nine of the costliest use cases the columns hold: as much as SQLite's SUM() can add up.
    UseCase.objects.bulk_create(
        UseCase(team=team, title=f"Use case {n}", monthly_cost=Decimal("999999999999999999.99")) for n in range(9)
    )
    created = api(manager).post(
        "/api/v1/exchange-rates/",
        {"base": "USD", "quote": "IRR", "rate": "9999999.99999999", "as_of": "2024-01-01"},
        format="json",
    )
    too_big = api(manager).post(
        "/api/v1/exchange-rates/",
        {"base": "USD", "quote": "VND", "rate": "99999999", "as_of": "2024-01-01"},
        format="json",
    )
    summary = api(manager).get("/api/v1/portfolio/summary/", {"currency": "IRR"})
    assert (created.status_code, too_big.status_code, summary.status_code) == (201, 400, 200)
    assert Decimal(summary.json()["totals"]["monthly_cost"]) > Decimal("1E+25")


def test_list_pages_show_exactly_what_the_serializer_shows(manager, team, other_team):
    UseCaseFactory(team=team, title="Plain")
    UseCaseFactory(
        team=other_team,
        title="Computed",
        owner=UserFactory(username="owner"),
        currency="JPY",
        hourly_rate=Decimal("9000"),
        frameworks=[],
        monthly_cost=Decimal("123456"),
        monthly_benefit=Decimal("0.10"),
        roi_pct=Decimal("-99.99"),
        npv=Decimal("-0.01"),
        payback_months=7,
        computed_at=timezone.now(),
        external_id="crm:7",
    )

    response = api(manager).get("/api/v1/use-cases/", {"page_size": 50, "ordering": "-npv"})

    rows = UseCase.objects.select_related("team", "owner").order_by("-npv", "team__name", "title", "pk")
    expected = json.loads(JSONRenderer().render(UseCaseSerializer(rows, many=True).data))
    assert response.json()["results"] == expected


def test_a_serializer_the_list_cannot_reproduce_keeps_the_serializer():
    class WithMethod(UseCaseSerializer):
        score = serializers.SerializerMethodField()

        class Meta(UseCaseSerializer.Meta):
            fields = [*UseCaseSerializer.Meta.fields, "score"]

        def get_score(self, use_case):
            return 1

    assert ValuesRepresentation.of(UseCaseSerializer) is not None
    assert ValuesRepresentation.of(WithMethod) is None


def test_bulk_upsert_reads_the_teams_once(manager, team, other_team, django_assert_max_num_queries):
    rows = [{"team": ("support", "research")[n % 2], "external_id": f"r{n}", "title": "t"} for n in range(60)]
    with django_assert_max_num_queries(20) as queries:
        response = api(manager).post("/api/v1/use-cases/bulk/", {"rows": rows}, format="json")
    assert response.status_code == 200 and response.json()["created"] == 60
    assert sum('FROM "portfolio_team"' in query["sql"] for query in queries.captured_queries) == 1
