"""A use case's owner is a member of its team, on every write path.

An outsider is refused exactly as an unknown username is, so no answer tells whether a
username exists.
"""

import csv
import io
import re

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from portfolio import services
from portfolio.models import UseCase
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

REFUSED = {"owner": ["Choose a member of this use case's team."]}
UNKNOWN = "nobody"


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def teammate(team):
    return MembershipFactory(team=team, user=UserFactory(username="dave"), role="lead").user


@pytest.fixture
def bot(team, member):
    return services.create_use_case(team=team, title="FAQ bot", external_id="crm-1", owner=member)


# --- The service ------------------------------------------------------------------------------


def test_the_service_takes_a_member_of_the_team_in_any_role(team, member, teammate):
    use_case = services.create_use_case(team=team, title="FAQ bot", owner=teammate)
    services.update_use_case(use_case=use_case, owner=member)
    assert UseCase.objects.get(pk=use_case.pk).owner == member


def test_the_service_refuses_an_outsider_and_a_user_who_is_in_no_team(team, outsider, bot):
    for owner in (outsider, UserFactory(username="loner")):
        with pytest.raises(ValidationError) as error:
            services.create_use_case(team=team, title="FAQ bot", owner=owner)
        assert error.value.message_dict == REFUSED
        with pytest.raises(ValidationError) as error:
            services.update_use_case(use_case=bot, owner=owner)
        assert error.value.message_dict == REFUSED
    assert UseCase.objects.get(pk=bot.pk).owner.username == "alice"


def test_moving_a_use_case_to_a_team_its_owner_is_not_in_is_refused(bot, other_team, member):
    with pytest.raises(ValidationError) as error:
        services.update_use_case(use_case=bot, team=other_team)
    assert error.value.message_dict == REFUSED
    assert UseCase.objects.get(pk=bot.pk).team.slug == "support"

    MembershipFactory(team=other_team, user=member)
    services.update_use_case(use_case=UseCase.objects.get(pk=bot.pk), team=other_team)
    assert UseCase.objects.get(pk=bot.pk).team == other_team


def test_bulk_rows_with_an_outsider_are_row_errors_and_nothing_is_saved(team, member, outsider):
    rows = [
        services.BulkRow(team=team, external_id="a", fields={"title": "A", "owner": member}),
        services.BulkRow(team=team, external_id="b", fields={"title": "B", "owner": outsider}),
    ]
    with pytest.raises(ValidationError) as error:
        services.bulk_upsert_use_cases(rows=rows)
    assert error.value.message_dict == {"1": ["owner: Choose a member of this use case's team."]}
    assert not UseCase.objects.exists()


# --- The API ------------------------------------------------------------------------------------


def test_api_create_refuses_an_outsider_as_an_unknown_username(member, outsider, team):
    body = {"team": "support", "title": "FAQ bot"}
    client = api(member)
    unknown = client.post("/api/v1/use-cases/", {**body, "owner": UNKNOWN}, format="json")
    foreign = client.post("/api/v1/use-cases/", {**body, "owner": outsider.username}, format="json")

    assert (unknown.status_code, foreign.status_code) == (400, 400)
    assert unknown.content == foreign.content
    assert foreign.json() == REFUSED
    assert not UseCase.objects.exists()
    created = client.post("/api/v1/use-cases/", {**body, "owner": "alice"}, format="json")
    assert created.status_code == 201 and created.json()["owner"] == "alice"


def test_other_errors_do_not_tell_an_unknown_username_from_an_outsider(member, outsider, team):
    body = {"team": "support", "title": "", "horizon_months": 0}
    client = api(member)
    unknown = client.post("/api/v1/use-cases/", {**body, "owner": UNKNOWN}, format="json")
    foreign = client.post("/api/v1/use-cases/", {**body, "owner": outsider.username}, format="json")
    assert unknown.status_code == foreign.status_code == 400
    assert unknown.content == foreign.content


@pytest.mark.parametrize("method", ["patch", "put"])
def test_api_update_refuses_an_outsider_as_an_unknown_username(method, member, outsider, teammate, bot):
    url = f"/api/v1/use-cases/{bot.pk}/"
    client = api(member)
    send = getattr(client, method)
    unknown = send(url, {"title": "FAQ bot", "owner": UNKNOWN}, format="json")
    foreign = send(url, {"title": "FAQ bot", "owner": outsider.username}, format="json")

    assert (unknown.status_code, foreign.status_code) == (400, 400)
    assert unknown.content == foreign.content
    assert foreign.json() == REFUSED
    assert UseCase.objects.get(pk=bot.pk).owner.username == "alice"
    assert send(url, {"title": "FAQ bot", "owner": "dave"}, format="json").status_code == 200
    assert UseCase.objects.get(pk=bot.pk).owner == teammate


def test_sync_put_refuses_an_outsider_as_an_unknown_username(member, outsider, teammate, bot):
    client = api(member)
    for url in ("/api/v1/use-cases/by-external-id/support/crm-1/", "/api/v1/use-cases/by-external-id/support/new/"):
        unknown = client.put(url, {"title": "Synced", "owner": UNKNOWN}, format="json")
        foreign = client.put(url, {"title": "Synced", "owner": outsider.username}, format="json")
        assert (unknown.status_code, foreign.status_code) == (400, 400)
        assert unknown.content == foreign.content
        assert foreign.json() == REFUSED
    assert not UseCase.objects.filter(external_id="new").exists()
    assert UseCase.objects.get(pk=bot.pk).owner.username == "alice"

    accepted = client.put("/api/v1/use-cases/by-external-id/support/new/", {"title": "Synced", "owner": "dave"})
    assert accepted.status_code == 201 and UseCase.objects.get(external_id="new").owner == teammate


def test_bulk_upsert_refuses_an_outsider_as_an_unknown_username(member, outsider, teammate, bot):
    def rows(owner):
        return {
            "rows": [
                {"team": "support", "external_id": "crm-1", "title": "FAQ bot"},
                {"team": "support", "external_id": "new", "title": "New", "owner": owner},
            ]
        }

    client = api(member)
    unknown = client.post("/api/v1/use-cases/bulk/", rows(UNKNOWN), format="json")
    foreign = client.post("/api/v1/use-cases/bulk/", rows(outsider.username), format="json")

    assert (unknown.status_code, foreign.status_code) == (400, 400)
    assert unknown.content == foreign.content
    assert foreign.json() == {"rows": {"1": ["owner: Choose a member of this use case's team."]}}
    assert not UseCase.objects.filter(external_id="new").exists()
    assert client.post("/api/v1/use-cases/bulk/", rows("dave"), format="json").status_code == 200
    assert UseCase.objects.get(external_id="new").owner == teammate


def test_bulk_upsert_reads_owners_in_a_fixed_number_of_queries(member, teammate, team):
    def queries(count):
        rows = [
            {"team": "support", "external_id": f"{count}-{n}", "title": "Row", "owner": ("alice", "dave")[n % 2]}
            for n in range(count)
        ]
        with CaptureQueriesContext(connection) as captured:
            assert api(member).post("/api/v1/use-cases/bulk/", {"rows": rows}, format="json").status_code == 200
        return len(captured)

    queries(1)  # The first request reads what later ones find cached.
    assert queries(2) == queries(20)


# --- The web pages ------------------------------------------------------------------------------


def use_case_form_data(**overrides):
    data = {
        "title": "Contract Q&A",
        "category": "document_search",
        "stage": "idea",
        "risk_tier": "limited",
        "data_classification": "internal",
        "expected_monthly_active_users": "100",
        "ai_role": "business_user",
        "currency": "USD",
        "hours_saved_per_month": "120",
        "hourly_rate": "50",
        "other_monthly_benefit": "0",
        "one_time_cost": "10000",
        "monthly_fixed_cost": "200",
        "horizon_months": "36",
    }
    return {**data, **overrides}


def without_csrf_token(response) -> str:
    """The page, its CSRF tokens (masked afresh on every response) left out."""
    return re.sub(r"\b[A-Za-z0-9]{64}\b", "", response.content.decode())


def owner_choices(response) -> set[str]:
    return {str(user) for user in response.context["form"].fields["owner"].queryset}


def test_the_form_lists_only_team_members_as_owners(member, teammate, outsider, bot, other_team):
    MembershipFactory(team=other_team, user=UserFactory(username="erin"))
    client = logged_in(member)
    assert owner_choices(client.get(reverse("portfolio:usecase-create"))) == {"alice", "dave"}
    assert owner_choices(client.get(reverse("portfolio:usecase-update", args=[bot.pk]))) == {"alice", "dave"}
    # A manager creates in any team, so picks among every team's members; editing, among the use case's.
    manager = UserFactory(username="carol", is_superuser=True)
    assert owner_choices(logged_in(manager).get(reverse("portfolio:usecase-create"))) == {
        "alice",
        "bob",
        "dave",
        "erin",
    }
    assert owner_choices(logged_in(manager).get(reverse("portfolio:usecase-update", args=[bot.pk]))) == {
        "alice",
        "dave",
    }


def test_the_web_form_refuses_an_outsider_as_an_unknown_user(member, teammate, outsider, team):
    client = logged_in(member)
    url = reverse("portfolio:usecase-create")
    unknown = client.post(url, use_case_form_data(team=team.pk, owner=999_999))
    foreign = client.post(url, use_case_form_data(team=team.pk, owner=outsider.pk))

    assert (unknown.status_code, foreign.status_code) == (200, 200)
    assert unknown.context["form"].errors == foreign.context["form"].errors == REFUSED
    assert without_csrf_token(unknown) == without_csrf_token(foreign)
    assert not UseCase.objects.exists()
    assert client.post(url, use_case_form_data(team=team.pk, owner=teammate.pk)).status_code == 302
    assert UseCase.objects.get().owner == teammate


def test_the_web_form_refuses_a_member_of_another_of_the_users_teams(team, other_team, outsider):
    manager = UserFactory(username="carol", is_superuser=True)
    response = logged_in(manager).post(
        reverse("portfolio:usecase-create"), use_case_form_data(team=team.pk, owner=outsider.pk)
    )
    assert response.status_code == 200
    assert response.context["form"].errors == REFUSED
    assert not UseCase.objects.exists()


def test_the_edit_form_refuses_an_outsider_as_an_unknown_user(member, outsider, teammate, bot):
    client = logged_in(member)
    url = reverse("portfolio:usecase-update", args=[bot.pk])
    data = use_case_form_data(expected_version=bot.version)
    unknown = client.post(url, {**data, "owner": 999_999})
    foreign = client.post(url, {**data, "owner": outsider.pk})
    assert unknown.context["form"].errors == foreign.context["form"].errors == REFUSED
    assert without_csrf_token(unknown) == without_csrf_token(foreign)
    assert client.post(url, {**data, "owner": teammate.pk}).status_code == 302
    assert UseCase.objects.get(pk=bot.pk).owner == teammate


# --- Import and export ----------------------------------------------------------------------------


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def csv_upload(rows):
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    upload = io.BytesIO(buffer.getvalue().encode())
    upload.name = "use-cases.csv"
    return upload


def test_import_rows_refuse_an_outsider_as_an_unknown_username(member, outsider, teammate, bot, media):
    def preview(owner):
        upload = csv_upload([["team", "external_id", "title", "owner"], ["support", "new", "New", owner]])
        return logged_in(member).post(reverse("portfolio:usecase-import"), {"file": upload})

    unknown, foreign = preview(UNKNOWN), preview(outsider.username)
    assert [row.errors for row in unknown.context["plan"].rows] == [["owner: Choose a member of this use case's team."]]
    assert [row.errors for row in foreign.context["plan"].rows] == [row.errors for row in unknown.context["plan"].rows]
    assert without_csrf_token(unknown).replace(UNKNOWN, "?") == without_csrf_token(foreign).replace("bob", "?")
    assert (unknown.context["confirm_form"], foreign.context["confirm_form"]) == (None, None)

    accepted = preview("dave")
    assert [row.action for row in accepted.context["plan"].rows] == ["create"]
    token = accepted.context["confirm_form"].initial["token"]
    assert logged_in(member).post(reverse("portfolio:usecase-import-confirm"), {"token": token}).status_code == 302
    assert UseCase.objects.get(external_id="new").owner == teammate


def test_the_export_writes_the_owner_and_imports_back(member, bot, media):
    exported = logged_in(member).get(reverse("portfolio:usecase-export", args=["csv"]))
    content = b"".join(exported.streaming_content)
    rows = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    assert [row["owner"] for row in rows] == ["alice"]

    upload = io.BytesIO(content)
    upload.name = "export.csv"
    preview = logged_in(member).post(reverse("portfolio:usecase-import"), {"file": upload})
    assert [(row.action, row.errors) for row in preview.context["plan"].rows] == [("update", [])]


# --- The admin ---------------------------------------------------------------------------------------


@pytest.fixture
def admin_client():
    return logged_in(UserFactory(username="root", is_staff=True, is_superuser=True))


def admin_form(use_case, **changes):
    return {
        "team": use_case.team_id,
        "title": use_case.title,
        "description": "",
        "category": "other",
        "stage": use_case.stage,
        "risk_tier": use_case.risk_tier,
        "data_classification": "internal",
        "currency": "USD",
        "hours_saved_per_month": "0",
        "hourly_rate": "0",
        "other_monthly_benefit": "0",
        "one_time_cost": "0",
        "monthly_fixed_cost": "0",
        "horizon_months": "36",
        "expected_monthly_active_users": "0",
        "ai_role": "business_user",
        "frameworks": ["eu_ai_act"],
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
        "pocs-TOTAL_FORMS": "0",
        "pocs-INITIAL_FORMS": "0",
        **changes,
    }


def test_the_admin_refuses_an_outsider_as_an_unknown_user(admin_client, bot, outsider, teammate):
    url = reverse("admin:portfolio_usecase_change", args=[bot.pk])
    unknown = admin_client.post(url, admin_form(bot, owner=999_999))
    foreign = admin_client.post(url, admin_form(bot, owner=outsider.pk))

    assert (unknown.status_code, foreign.status_code) == (200, 200)
    assert unknown.context["adminform"].form.errors == foreign.context["adminform"].form.errors == REFUSED
    assert UseCase.objects.get(pk=bot.pk).owner.username == "alice"
    assert admin_client.post(url, admin_form(bot, owner=teammate.pk)).status_code == 302
    assert UseCase.objects.get(pk=bot.pk).owner == teammate


def test_the_admin_refuses_moving_a_use_case_to_a_team_its_owner_is_not_in(admin_client, bot, member, other_team):
    url = reverse("admin:portfolio_usecase_change", args=[bot.pk])
    refused = admin_client.post(url, admin_form(bot, team=other_team.pk, owner=member.pk))
    assert refused.status_code == 200 and refused.context["adminform"].form.errors == REFUSED
    assert UseCase.objects.get(pk=bot.pk).team.slug == "support"

    assert admin_client.post(url, admin_form(bot, team=other_team.pk, owner="")).status_code == 302
    assert UseCase.objects.get(pk=bot.pk).team == other_team
