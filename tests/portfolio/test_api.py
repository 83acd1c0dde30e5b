import datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from portfolio import services
from portfolio.models import UseCase
from pricing.models import Price
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
        ({"title": "ok", "currency": "usd"}, "currency"),
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
        response = api(member).post("/api/v1/use-cases/", {
            "team": "support", "title": "Triage", "hours_saved_per_month": "10", "hourly_rate": "50",
        }, format="json")
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

    bad = client.post("/api/v1/use-cases/bulk/", {"rows": [*rows, {"team": "support", "external_id": "x",
                                                                    "title": "", "hourly_rate": "-5"}]}, format="json")
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
    bad = client.post("/api/v1/deployments/", {"use_case": ours.pk, "model": "openai/gpt-4o",
                                               "cached_input_ratio": "1.5"}, format="json")
    unknown = client.post("/api/v1/deployments/", {"use_case": ours.pk, "model": "nope/nope"}, format="json")
    assert bad.status_code == 400 and "cached_input_ratio" in bad.json()
    assert unknown.status_code == 400 and "model" in unknown.json()

    with django_capture_on_commit_callbacks() as callbacks:
        created = client.post("/api/v1/deployments/", {"use_case": ours.pk, "model": "meta/llama-3-70b",
                                                       "status": "active", **SUPPORT_BOT}, format="json")
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
    response = api(member).post("/api/v1/portfolio/what-if/",
                                {"from_model": "openai/gpt-4o", "to_model": "meta/llama-3-70b"}, format="json")

    body = response.json()
    assert response.status_code == 200
    assert (body["current_monthly_cost"], body["projected_monthly_cost"], body["monthly_savings"]) == (
        "5500.00", "725.00", "4775.00")
    assert [u["id"] for u in body["affected_use_cases"]] == [ours.pk]
    ours.refresh_from_db()
    assert ours.monthly_cost == Decimal("5500.00")


def test_what_if_flags_the_llama_user_limit(member, ours):
    UseCase.objects.filter(pk=ours.pk).update(expected_monthly_active_users=800_000_000)
    body = api(member).post("/api/v1/portfolio/what-if/",
                            {"from_model": "openai/gpt-4o", "to_model": "meta/llama-3-70b"}, format="json").json()
    entry = body["affected_use_cases"][0]
    assert entry["licence_findings_after"] == ["monthly_active_user_limit_exceeded"]
    assert entry["governance_changes"] is True


def test_what_if_rejects_unknown_or_identical_models(member):
    client = api(member)
    assert client.post("/api/v1/portfolio/what-if/", {"from_model": "x/y", "to_model": "meta/llama-3-70b"},
                       format="json").status_code == 400
    assert client.post("/api/v1/portfolio/what-if/", {"from_model": "meta/llama-3-70b",
                                                      "to_model": "meta/llama-3-70b"}, format="json").status_code == 400


def test_only_managers_add_prices_and_prices_are_never_edited(member, manager, gpt4o):
    payload = {"model": "openai/gpt-4o", "input_per_million": "2.00", "output_per_million": "8.00",
               "currency": "USD", "effective_from": "2026-01-01"}
    assert api(member).post("/api/v1/prices/", payload, format="json").status_code == 403
    created = api(manager).post("/api/v1/prices/", payload, format="json")
    assert created.status_code == 201
    duplicate = api(manager).post("/api/v1/prices/", payload, format="json")
    assert duplicate.status_code == 400
    price_id = created.json()["id"]
    assert api(manager).patch(f"/api/v1/prices/{price_id}/", {"input_per_million": "1"},
                              format="json").status_code == 405
    assert Price.objects.get(pk=price_id).effective_from == datetime.date(2026, 1, 1)


def test_models_are_readable_by_key(member):
    body = api(member).get("/api/v1/models/meta/llama-3-70b/").json()
    assert body["licence"]["monthly_active_user_limit"] == 700_000_000


@pytest.mark.parametrize("url", ["/api/v1/use-cases/", "/api/v1/deployments/", "/api/v1/pocs/",
                                 "/api/v1/prices/", "/api/v1/models/", "/api/v1/cost-snapshots/"])
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
