import csv
import io
import json
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from openpyxl import Workbook, load_workbook

from portfolio import forms, governance, services
from portfolio.management.commands.seed_demo import TEAMS, USE_CASES
from portfolio.models import ChecklistItem, Deployment, ProofOfConcept, RecomputeJob, Team, UseCase
from pricing.models import LanguageModel
from tests.factories import MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

SUPPORT_BOT = {"requests_per_month": 1_000_000, "avg_input_tokens": 1_000, "avg_output_tokens": 300}


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def html(response) -> str:
    return response.content.decode()


def text_of(response) -> str:
    """The page's text without tags or runs of whitespace, for asserting what a reader sees."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html(response)))


def make_use_case(team, **fields):
    fields.setdefault("title", "FAQ chatbot")
    return services.create_use_case(team=team, **fields)


def recomputed(use_case):
    services.recompute_use_case(use_case_id=use_case.pk)
    use_case.refresh_from_db()
    return use_case


@pytest.fixture
def support_bot(team, gpt4o):
    use_case = make_use_case(
        team,
        external_id="faq-bot",
        hours_saved_per_month=Decimal("900"),
        hourly_rate=Decimal("45"),
        one_time_cost=Decimal("60000"),
    )
    services.create_deployment(use_case=use_case, model=gpt4o, status=Deployment.Status.ACTIVE, **SUPPORT_BOT)
    services.create_poc(use_case=use_case, hypothesis="The bot answers most FAQs.")
    return recomputed(use_case)


@pytest.fixture
def other_use_case(other_team):
    return recomputed(make_use_case(other_team, title="Patent search"))


# --- Access ----------------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page():
    response = Client().get(reverse("portfolio:usecase-list"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_login_lands_members_on_their_list_and_managers_on_the_dashboard(member, manager):
    for user, landing in ((member, "portfolio:usecase-list"), (manager, "portfolio:dashboard")):
        client = Client()
        response = client.post(reverse("login"), {"username": user.username, "password": "pw-for-tests"}, follow=True)
        assert response.redirect_chain[-1][0] == reverse(landing)
        assert response.status_code == 200


def test_login_shows_an_error_for_a_wrong_password(member):
    response = Client().post(reverse("login"), {"username": member.username, "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in html(response)


def test_logout_is_a_post_and_ends_the_session(member):
    client = logged_in(member)
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("portfolio:usecase-list")).status_code == 302


@pytest.mark.parametrize(
    "name, args",
    [
        ("portfolio:usecase-list", []),
        ("portfolio:usecase-create", []),
        ("portfolio:usecase-import", []),
        ("portfolio:usecase-detail", ["use_case"]),
        ("portfolio:usecase-update", ["use_case"]),
        ("portfolio:usecase-figures", ["use_case"]),
        ("portfolio:deployment-create", ["use_case"]),
        ("portfolio:deployment-update", ["deployment"]),
        ("portfolio:poc-create", ["use_case"]),
        ("portfolio:poc-update", ["poc"]),
        ("pricing:model-list", []),
        ("pricing:breakeven-calculate", []),
    ],
)
def test_every_team_page_answers_200_to_members_and_managers(name, args, member, manager, support_bot):
    objects = {
        "use_case": support_bot.pk,
        "deployment": support_bot.deployments.get().pk,
        "poc": support_bot.pocs.get().pk,
    }
    url = reverse(name, args=[objects[arg] for arg in args])
    for user in (member, manager):
        assert logged_in(user).get(url).status_code == 200


@pytest.mark.parametrize("name", ["portfolio:dashboard", "portfolio:whatif-run"])
def test_manager_pages_answer_200_to_managers_and_403_to_members(name, member, manager):
    url = reverse(name)
    assert logged_in(manager).get(url, HTTP_HX_REQUEST="true").status_code == 200
    assert logged_in(member).get(url, HTTP_HX_REQUEST="true").status_code == 403
    assert Client().get(url).status_code == 302


def test_members_cannot_start_a_recompute_or_read_its_progress(member, manager):
    job = services.start_recompute_job(reason="test", scope={"all": True})
    assert logged_in(member).post(reverse("portfolio:recompute-start")).status_code == 403
    assert logged_in(member).get(reverse("portfolio:recompute-progress", args=[job.pk])).status_code == 403
    assert RecomputeJob.objects.count() == 1


def test_other_teams_records_answer_404(member, other_use_case, llama70b):
    deployment = services.create_deployment(use_case=other_use_case, model=llama70b)
    poc = services.create_poc(use_case=other_use_case, hypothesis="Finds prior art.")
    client = logged_in(member)
    for name, pk in [
        ("portfolio:usecase-detail", other_use_case.pk),
        ("portfolio:usecase-update", other_use_case.pk),
        ("portfolio:usecase-figures", other_use_case.pk),
        ("portfolio:deployment-create", other_use_case.pk),
        ("portfolio:poc-create", other_use_case.pk),
        ("portfolio:deployment-update", deployment.pk),
        ("portfolio:poc-update", poc.pk),
    ]:
        assert client.get(reverse(name, args=[pk])).status_code == 404, name
    assert client.post(reverse("portfolio:usecase-move", args=[other_use_case.pk]), {"stage": "poc"}).status_code == 404
    assert client.post(reverse("portfolio:usecase-update", args=[other_use_case.pk]), {"title": "x"}).status_code == 404


def test_managers_see_every_team(manager, support_bot, other_use_case):
    response = logged_in(manager).get(reverse("portfolio:usecase-list"))
    assert {support_bot.title, other_use_case.title} <= set(re.findall(r'">([^<]+)</a>', html(response)))
    assert logged_in(manager).get(reverse("portfolio:usecase-detail", args=[other_use_case.pk])).status_code == 200


def test_navigation_shows_each_user_what_they_may_do(member, manager):
    member_page = html(logged_in(member).get(reverse("portfolio:usecase-list")))
    manager_page = html(logged_in(manager).get(reverse("portfolio:usecase-list")))
    assert reverse("portfolio:dashboard") not in member_page
    assert "My teams' use cases" in member_page and "team member" in member_page
    assert reverse("portfolio:dashboard") in manager_page and "portfolio manager" in manager_page


# --- List ----------------------------------------------------------------------------------------------


def test_list_shows_only_my_teams_use_cases_with_their_figures(member, support_bot, other_use_case):
    response = logged_in(member).get(reverse("portfolio:usecase-list"))
    page = text_of(response)
    assert support_bot.title in page
    assert other_use_case.title not in page
    assert "$5,500.00" in page  # Monthly cost of the support bot on GPT-4o.


def test_list_filters_searches_sorts_and_paginates(member, team):
    for number in range(30):
        make_use_case(
            team,
            title=f"Bot {number:02d}",
            stage="poc" if number % 3 == 0 else "idea",
            risk_tier="high" if number == 4 else "minimal",
        )
    client = logged_in(member)
    url = reverse("portfolio:usecase-list")

    first = client.get(url)
    assert first.context["paginator"].count == 30
    assert len(first.context["use_cases"]) == 25
    assert "Page 1 of 2" in text_of(first)
    assert len(client.get(url, {"page": 2}).context["use_cases"]) == 5

    assert client.get(url, {"stage": "poc"}).context["paginator"].count == 10
    assert [u.title for u in client.get(url, {"risk_tier": "high"}).context["use_cases"]] == ["Bot 04"]
    assert [u.title for u in client.get(url, {"q": "bot 1"}).context["use_cases"]][:2] == ["Bot 10", "Bot 11"]
    assert client.get(url, {"sort": "-updated_at"}).context["use_cases"][0].title == "Bot 29"
    assert client.get(url, {"team": "support", "governance_status": "not_evaluated"}).context["paginator"].count == 30
    # Invalid values are ignored rather than failing the page.
    assert client.get(url, {"stage": "nonsense", "sort": "nonsense"}).status_code == 200


def test_htmx_filter_requests_get_the_results_only(member, support_bot):
    response = logged_in(member).get(reverse("portfolio:usecase-list"), {"q": "FAQ"}, HTTP_HX_REQUEST="true")
    assert response.templates[0].name == "portfolio/_usecase_results.html"
    assert "<html" not in html(response)
    assert support_bot.title in html(response)


def test_money_columns_sort_by_value_in_the_reporting_currency(member, team):
    # ¥100,000 is about $667 at the shipped 150 JPY/USD: it sorts below $1,000.
    yen = UseCase.objects.filter(pk=make_use_case(team, title="Yen", currency="JPY").pk)
    dollar = UseCase.objects.filter(pk=make_use_case(team, title="Dollar").pk)
    yen.update(monthly_cost=Decimal("100000"))
    dollar.update(monthly_cost=Decimal("1000"))
    response = logged_in(member).get(reverse("portfolio:usecase-list"), {"sort": "-monthly_cost"})
    assert [u.title for u in response.context["use_cases"]] == ["Dollar", "Yen"]


# --- Use case forms ----------------------------------------------------------------------------------------


def use_case_form_data(**overrides):
    data = {
        "team": "",
        "title": "Contract Q&A",
        "external_id": "",
        "description": "",
        "category": "document_search",
        "stage": "idea",
        "owner": "",
        "risk_tier": "limited",
        "data_classification": "internal",
        "expected_monthly_active_users": "100",
        "ai_role": "business_user",
        "frameworks": ["eu_ai_act"],
        "currency": "USD",
        "hours_saved_per_month": "120",
        "hourly_rate": "50",
        "other_monthly_benefit": "0",
        "one_time_cost": "10000",
        "monthly_fixed_cost": "200",
        "horizon_months": "36",
    }
    return {**data, **overrides}


def test_create_use_case_goes_through_the_service_and_queues_its_recompute(
    member, team, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = logged_in(member).post(reverse("portfolio:usecase-create"), use_case_form_data(team=team.pk))
    use_case = UseCase.objects.get(title="Contract Q&A")
    assert response.status_code == 302
    assert response["Location"] == reverse("portfolio:usecase-detail", args=[use_case.pk])
    assert use_case.team == team and use_case.needs_recompute
    assert len(callbacks) == 1  # The recompute, enqueued after commit.


def test_create_use_case_offers_only_my_teams_and_ungated_stages(member, team, other_team):
    form = logged_in(member).get(reverse("portfolio:usecase-create")).context["form"]
    assert list(form.fields["team"].queryset) == [team]
    assert "production" not in dict(form.fields["stage"].choices)
    response = logged_in(member).post(reverse("portfolio:usecase-create"), use_case_form_data(team=other_team.pk))
    assert response.status_code == 200
    assert "Select a valid choice" in html(response)
    assert not UseCase.objects.exists()


def test_create_use_case_shows_validation_errors_and_saves_nothing(member, team):
    response = logged_in(member).post(
        reverse("portfolio:usecase-create"),
        use_case_form_data(team=team.pk, title="", hourly_rate="-5", horizon_months="900", currency="BTC"),
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert set(errors) >= {"title", "hourly_rate", "horizon_months", "currency"}
    assert "errorlist" in html(response)
    assert not UseCase.objects.exists()


def test_user_without_a_team_is_told_how_to_get_one():
    response = logged_in(UserFactory()).get(reverse("portfolio:usecase-create"))
    assert "not a member of any team" in html(response)


def test_edit_use_case_updates_through_the_service(member, support_bot):
    data = use_case_form_data(title="FAQ chatbot v2", external_id="faq-bot", expected_version=support_bot.version)
    response = logged_in(member).post(reverse("portfolio:usecase-update", args=[support_bot.pk]), data)
    assert response.status_code == 302
    support_bot.refresh_from_db()
    assert support_bot.title == "FAQ chatbot v2"
    assert support_bot.needs_recompute


def test_edit_use_case_refuses_a_stale_version(member, support_bot):
    services.update_use_case(use_case=support_bot, title="Changed meanwhile")
    data = use_case_form_data(title="Mine", external_id="faq-bot", expected_version=support_bot.version - 1)
    response = logged_in(member).post(reverse("portfolio:usecase-update", args=[support_bot.pk]), data)
    assert response.status_code == 200
    assert "Someone else changed this use case" in html(response)
    assert UseCase.objects.get(pk=support_bot.pk).title == "Changed meanwhile"


def test_service_validation_errors_are_shown_on_the_form(member, team, support_bot):
    # The team is not on the edit form, so the (team, external id) constraint is the service's to check.
    other = make_use_case(team, title="Other bot", external_id="other-bot")
    data = use_case_form_data(title="Other bot", external_id="faq-bot", expected_version=other.version)
    response = logged_in(member).post(reverse("portfolio:usecase-update", args=[other.pk]), data)
    assert response.status_code == 200
    assert "already exists" in html(response)
    assert UseCase.objects.get(pk=other.pk).external_id == "other-bot"


# --- Deployments and PoCs -----------------------------------------------------------------------------------


def deployment_form_data(model, **overrides):
    data = {
        "name": "Production",
        "model": model.pk,
        "hosting": "api",
        "environment": "cloud",
        "status": "active",
        "requests_per_month": "1000000",
        "avg_input_tokens": "1000",
        "avg_output_tokens": "300",
        "cached_input_ratio": "0",
        "self_hosting_profile": "",
        "gpu_type": "",
        "gpu_count": "0",
        "gpu_hourly_cost": "",
        "hours_per_month": "730",
        "monthly_fixed_cost": "0",
    }
    return {**data, **overrides}


def test_add_deployment_through_the_service_then_see_its_cost(member, team, gpt4o, django_capture_on_commit_callbacks):
    use_case = recomputed(make_use_case(team))
    client = logged_in(member)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("portfolio:deployment-create", args=[use_case.pk]), deployment_form_data(gpt4o))
    assert response.status_code == 302
    assert response["Location"].endswith(reverse("portfolio:usecase-detail", args=[use_case.pk]) + "#deployments")
    assert len(callbacks) == 1  # The use case's recompute; run here as the worker would.
    recomputed(use_case)
    deployment = Deployment.objects.get(use_case=use_case)
    assert deployment.monthly_cost == Decimal("5500.00")
    page = client.get(reverse("portfolio:usecase-detail", args=[use_case.pk]))
    assert 'data-figure="monthly_cost">$5,500.00' in html(page)
    assert f'data-deployment-cost="{deployment.pk}">$5,500.00' in html(page)


def test_deployment_form_shows_the_models_validation_errors(member, support_bot, gpt4o):
    response = logged_in(member).post(
        reverse("portfolio:deployment-create", args=[support_bot.pk]),
        deployment_form_data(gpt4o, hosting="self_hosted", cached_input_ratio="1.5"),
    )
    assert response.status_code == 200
    page = html(response)
    assert "Only open-weight models can be self-hosted" in page
    assert "cached_input_ratio" in response.context["form"].errors
    assert support_bot.deployments.count() == 1


def test_edit_deployment_goes_through_the_service(member, support_bot, llama70b, django_capture_on_commit_callbacks):
    deployment = support_bot.deployments.get()
    with django_capture_on_commit_callbacks() as callbacks:
        response = logged_in(member).post(
            reverse("portfolio:deployment-update", args=[deployment.pk]), deployment_form_data(llama70b)
        )
    assert response.status_code == 302 and len(callbacks) == 1
    recomputed(support_bot)
    deployment.refresh_from_db()
    assert deployment.model == llama70b
    assert deployment.monthly_cost == Decimal("725.00")


def test_add_and_edit_a_poc(member, support_bot, gpt4o):
    client = logged_in(member)
    data = {
        "hypothesis": "Cuts handling time.",
        "success_criteria": "30% less",
        "model": gpt4o.pk,
        "status": "running",
        "start_date": "2025-01-10",
        "end_date": "2025-01-05",
        "cost": "5000",
        "kpi_name": "Minutes",
        "baseline_kpi": "12",
        "measured_kpi": "",
    }
    refused = client.post(reverse("portfolio:poc-create", args=[support_bot.pk]), data)
    assert refused.status_code == 200
    assert "The end date is before the start date." in html(refused)

    created = client.post(reverse("portfolio:poc-create", args=[support_bot.pk]), {**data, "end_date": "2025-03-01"})
    assert created.status_code == 302
    poc = ProofOfConcept.objects.get(hypothesis="Cuts handling time.")
    client.post(
        reverse("portfolio:poc-update", args=[poc.pk]),
        {**data, "end_date": "", "status": "succeeded", "measured_kpi": "8"},
    )
    poc.refresh_from_db()
    assert poc.status == "succeeded" and poc.measured_kpi == Decimal("8")


# --- Use case page: figures, stage, checklist ----------------------------------------------------------------


def test_use_case_page_shows_figures_deployments_pocs_and_cost_history(member, support_bot):
    response = logged_in(member).get(reverse("portfolio:usecase-detail", args=[support_bot.pk]))
    page = text_of(response)
    assert "$40,500.00" in page  # Benefit: 900 hours × $45.
    assert "GPT-4o" in page and "The bot answers most FAQs." in page
    assert response.context["cost_history"][0].monthly_cost == Decimal("5500.00")
    assert 'hx-trigger="every 2s"' not in html(response)


def test_stale_figures_are_marked_and_polled_until_recomputed(member, support_bot):
    services.update_use_case(use_case=support_bot, hourly_rate=Decimal("50"))
    client = logged_in(member)
    page = html(client.get(reverse("portfolio:usecase-detail", args=[support_bot.pk])))
    assert "Recomputing…" in page and 'hx-trigger="every 2s"' in page
    recomputed(support_bot)
    partial = html(client.get(reverse("portfolio:usecase-figures", args=[support_bot.pk])))
    assert "Recomputing…" not in partial and "hx-trigger" not in partial
    assert "$45,000.00" in partial


def test_stage_moves_through_the_service(member, support_bot):
    response = logged_in(member).post(
        reverse("portfolio:usecase-move", args=[support_bot.pk]),
        {"stage": "poc", "expected_version": support_bot.version},
    )
    assert response.status_code == 302
    assert UseCase.objects.get(pk=support_bot.pk).stage == "poc"


def test_a_refused_stage_move_is_explained_with_the_blocking_items(member, support_bot):
    response = logged_in(member).post(
        reverse("portfolio:usecase-move", args=[support_bot.pk]),
        {"stage": "production", "expected_version": support_bot.version},
    )
    assert response.status_code == 409
    refusal = response.context["gate_refusal"]
    assert refusal.blocking_items
    page = text_of(response)
    assert "The use case cannot move to Production yet." in page
    assert "These required checklist items are neither passed nor waived:" in page
    for item in refusal.blocking_items:
        assert item["title"] in page
    assert UseCase.objects.get(pk=support_bot.pk).stage == "idea"


def test_a_stale_stage_move_is_refused(member, support_bot):
    response = logged_in(member).post(
        reverse("portfolio:usecase-move", args=[support_bot.pk]),
        {"stage": "poc", "expected_version": support_bot.version - 1},
        follow=True,
    )
    assert "The use case changed since you opened it" in html(response)
    assert UseCase.objects.get(pk=support_bot.pk).stage == "idea"


@pytest.fixture
def checklist(support_bot):
    governance.evaluate_checklists(use_case_ids=[support_bot.pk])
    return ChecklistItem.objects.filter(use_case=support_bot).select_related("template")


def test_the_checklist_is_shown_with_evidence_forms(member, support_bot, checklist):
    response = logged_in(member).get(reverse("portfolio:usecase-detail", args=[support_bot.pk]))
    page = html(response)
    assert checklist.exists()
    for item in checklist:
        assert f'id="item-{item.pk}"' in page
        assert reverse("portfolio:checklistitem-evidence", args=[item.pk]) in page
    assert reverse("portfolio:checklistitem-waive", args=[checklist[0].pk]) not in page  # Members do not waive.


def test_members_record_evidence_inline(member, checklist):
    item = checklist.filter(template__kind="manual").first()
    response = logged_in(member).post(
        reverse("portfolio:checklistitem-evidence", args=[item.pk]),
        {"evidence_text": "Staff trained on 2025-03-01.", "status": "passed"},
    )
    assert response.status_code == 302 and response["Location"].endswith(f"#item-{item.pk}")
    item.refresh_from_db()
    assert item.status == ChecklistItem.Status.PASSED and item.evidence_text == "Staff trained on 2025-03-01."
    assert item.recorded_by == member


def test_evidence_errors_are_reported(member, checklist):
    item = checklist.filter(template__kind="manual").first()
    response = logged_in(member).post(
        reverse("portfolio:checklistitem-evidence", args=[item.pk]),
        {"evidence_text": "", "status": "passed"},
        follow=True,
    )
    assert "Record the evidence" in html(response)
    item.refresh_from_db()
    assert item.status != ChecklistItem.Status.PASSED


def test_only_managers_waive_and_with_a_reason(member, manager, checklist):
    item = checklist.first()
    url = reverse("portfolio:checklistitem-waive", args=[item.pk])
    assert logged_in(member).post(url, {"waiver_reason": "Accepted risk"}).status_code == 403
    refused = logged_in(manager).post(url, {"waiver_reason": ""}, follow=True)
    assert "This field is required." in html(refused)
    assert logged_in(manager).post(url, {"waiver_reason": "Accepted risk for the pilot"}).status_code == 302
    item.refresh_from_db()
    assert item.status == ChecklistItem.Status.WAIVED and item.waived_by == manager


def test_other_teams_checklist_items_answer_404(member, other_use_case):
    governance.evaluate_checklists(use_case_ids=[other_use_case.pk])
    item = ChecklistItem.objects.filter(use_case=other_use_case).first()
    response = logged_in(member).post(
        reverse("portfolio:checklistitem-evidence", args=[item.pk]), {"evidence_text": "x"}
    )
    assert response.status_code == 404


# --- Dashboard ---------------------------------------------------------------------------------------------


def chart_data(response) -> dict:
    match = re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html(response), re.S)
    return json.loads(match.group(1))


def test_dashboard_shows_kpis_and_chart_data(manager, support_bot, other_use_case):
    services.take_portfolio_snapshot()
    response = logged_in(manager).get(reverse("portfolio:dashboard"))
    page = html(response)
    assert 'data-kpi="monthly_cost">$5,500.00' in page
    assert 'data-kpi="monthly_benefit">$40,500.00' in page
    assert 'data-kpi="compliance">' in page
    data = chart_data(response)
    assert data["costByModel"]["labels"] == ["openai/gpt-4o"]
    assert data["costByModel"]["values"] == ["5500.00"]
    assert set(data["roiByTeam"]["labels"]) == {"Support", "Research"}
    assert sum(data["stageFunnel"]["values"]) == 2
    assert len(data["trend"]["labels"]) == 1
    assert "<script>" not in page  # Data travel as JSON, code in static files.


def test_dashboard_converts_to_another_currency(manager, support_bot):
    response = logged_in(manager).get(reverse("portfolio:dashboard"), {"currency": "JPY"})
    assert 'data-kpi="monthly_cost">¥825,000<' in html(response)
    assert logged_in(manager).get(reverse("portfolio:dashboard"), {"currency": "XXX"}).context["currency"] == "USD"


def test_dashboard_lists_what_needs_attention(manager, team):
    losing = make_use_case(team, title="Losing money", one_time_cost=Decimal("1000"))
    recomputed(losing)
    make_use_case(team, title="Never computed")
    response = logged_in(manager).get(reverse("portfolio:dashboard"))
    titles = [use_case.title for use_case in response.context["attention"]]
    assert set(titles) == {"Losing money", "Never computed"}
    assert "negative ROI" in html(response) and "stale figures" in html(response)


def test_what_if_runs_on_the_dashboard_and_as_a_partial(manager, support_bot, gpt4o, llama70b):
    client = logged_in(manager)
    query = {"from_model": gpt4o.key, "to_model": llama70b.key}
    full = client.get(reverse("portfolio:dashboard"), query)
    assert full.context["whatif"]["monthly_savings"] == Decimal("4775.00")
    partial = client.get(reverse("portfolio:whatif-run"), query, HTTP_HX_REQUEST="true")
    assert partial.templates[0].name == "portfolio/_whatif_result.html"
    assert 'data-whatif="savings" class="">$4,775.00' in html(partial)
    assert support_bot.title in html(partial)
    plain = client.get(reverse("portfolio:whatif-run"), query)
    assert plain.status_code == 302 and plain["Location"].startswith(reverse("portfolio:dashboard") + "?")
    same = client.get(
        reverse("portfolio:whatif-run"), {"from_model": gpt4o.key, "to_model": gpt4o.key}, HTTP_HX_REQUEST="true"
    )
    assert "Choose two different models." in html(same)


def test_recompute_everything_starts_a_job_and_its_bar_polls_until_finished(manager, support_bot):
    client = logged_in(manager)
    response = client.post(reverse("portfolio:recompute-start"), HTTP_HX_REQUEST="true")
    job = RecomputeJob.objects.get()
    assert job.scope == {"all": True} and job.requested_by == manager
    assert 'hx-trigger="every 1s"' in html(response)  # Queued: the bar polls.
    assert "<progress" in html(response)

    services.run_recompute_job(job_id=job.pk, inline=True)
    finished = client.get(reverse("portfolio:recompute-progress", args=[job.pk]))
    assert "hx-trigger" not in html(finished)  # Finished: polling stops.
    assert 'value="100"' in html(finished)

    plain = client.post(reverse("portfolio:recompute-start"))
    assert plain.status_code == 302 and "job=" in plain["Location"]


def test_dashboard_shows_the_effect_of_the_latest_price_changes(manager, support_bot):
    job = services.start_recompute_job(reason="New price of openai/gpt-4o from 2026-01-01", scope={"all": True})
    services.run_recompute_job(job_id=job.pk, inline=True)
    RecomputeJob.objects.filter(pk=job.pk).update(monthly_cost_before=Decimal("6000.00"))
    page = text_of(logged_in(manager).get(reverse("portfolio:dashboard")))
    assert "New price of openai/gpt-4o from 2026-01-01" in page
    assert "$6,000.00" in page and "−$500.00" in page


# --- Export and import ----------------------------------------------------------------------------------------


def test_csv_export_holds_the_visible_filtered_portfolio(member, team, support_bot, other_use_case):
    make_use_case(team, title='=HYPERLINK("http://evil")', stage="poc")
    response = logged_in(member).get(reverse("portfolio:usecase-export", args=["csv"]))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert {row["title"] for row in rows} == {support_bot.title, '\'=HYPERLINK("http://evil")'}
    bot = next(row for row in rows if row["external_id"] == "faq-bot")
    assert bot["team"] == "support" and bot["monthly_cost"] == "5500.00" and bot["hourly_rate"] == "45.00"

    filtered = logged_in(member).get(reverse("portfolio:usecase-export", args=["csv"]), {"stage": "poc"})
    assert len(list(csv.DictReader(io.StringIO(b"".join(filtered.streaming_content).decode("utf-8-sig"))))) == 1
    assert logged_in(member).get(reverse("portfolio:usecase-export", args=["pdf"])).status_code == 404


def test_xlsx_export(manager, support_bot, other_use_case):
    response = logged_in(manager).get(reverse("portfolio:usecase-export", args=["xlsx"]))
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("team", "external_id", "title")
    assert len(rows) == 3
    bot = next(row for row in rows if row[1] == "faq-bot")
    assert bot[rows[0].index("monthly_cost")] == 5500


def csv_upload(rows, name="use-cases.csv"):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(rows)
    upload = io.BytesIO(buffer.getvalue().encode())
    upload.name = name
    return upload


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def test_import_preview_lists_row_errors_and_saves_nothing(member, team, media):
    upload = csv_upload(
        [
            ["team", "external_id", "title", "hourly_rate", "stage"],
            ["support", "ok-1", "Fine", "40", "idea"],
            ["support", "bad-rate", "Bad rate", "abc", "idea"],
            ["research", "not-mine", "Other team", "40", "idea"],
            ["support", "ok-1", "Twice", "40", "idea"],
            ["support", "no-title", "", "40", "pilot"],
        ]
    )
    response = logged_in(member).post(reverse("portfolio:usecase-import"), {"file": upload})
    assert response.status_code == 200
    plan = response.context["plan"]
    errors = {row.number: " ".join(row.errors) for row in plan.rows}
    assert errors[2] == ""
    assert "hourly_rate" in errors[3]
    assert "team" in errors[4]
    assert "appears twice" in errors[5]
    assert "title" in errors[6]
    assert response.context["confirm_form"] is None
    assert "Some rows have errors" in html(response)
    assert not UseCase.objects.exists()
    assert not list(media.rglob("*.csv"))


def test_import_preview_then_confirm_saves(member, team, support_bot, media):
    upload = csv_upload(
        [
            ["team", "external_id", "title", "hourly_rate", "currency"],
            ["support", "faq-bot", "FAQ chatbot (renamed)", "50", ""],
            ["support", "new-1", "Brand new", "40", "JPY"],
        ]
    )
    client = logged_in(member)
    preview = client.post(reverse("portfolio:usecase-import"), {"file": upload})
    assert [row.action for row in preview.context["plan"].rows] == ["update", "create"]
    assert "1 use cases will be created and 1 updated." in text_of(preview)
    assert UseCase.objects.count() == 1
    token = preview.context["confirm_form"].initial["token"]

    assert logged_in(UserFactory()).post(
        reverse("portfolio:usecase-import-confirm"), {"token": token}, follow=True
    ).redirect_chain[-1][0] == reverse("portfolio:usecase-import")
    confirmed = client.post(reverse("portfolio:usecase-import-confirm"), {"token": token})
    assert confirmed.status_code == 302
    support_bot.refresh_from_db()
    assert support_bot.title == "FAQ chatbot (renamed)" and support_bot.hourly_rate == Decimal("50")
    assert support_bot.currency == "USD"  # An empty cell changes nothing.
    assert UseCase.objects.get(external_id="new-1").currency == "JPY"
    again = client.post(reverse("portfolio:usecase-import-confirm"), {"token": token}, follow=True)
    assert "expired or was already imported" in html(again)
    assert UseCase.objects.count() == 2


def test_import_reads_excel_and_refuses_other_files(member, team, media):
    workbook = Workbook()
    workbook.active.append(["team", "external_id", "title"])
    workbook.active.append(["support", "x-1", "From Excel"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    buffer.seek(0)
    buffer.name = "cases.xlsx"
    client = logged_in(member)
    assert [
        row.action for row in client.post(reverse("portfolio:usecase-import"), {"file": buffer}).context["plan"].rows
    ] == ["create"]
    wrong = io.BytesIO(b"%PDF")
    wrong.name = "cases.pdf"
    assert "Upload a .csv or .xlsx file." in html(client.post(reverse("portfolio:usecase-import"), {"file": wrong}))
    no_columns = csv_upload([["title"], ["x"]])
    assert "lacks the columns: team, external_id" in html(
        client.post(reverse("portfolio:usecase-import"), {"file": no_columns})
    )


def test_an_export_imports_back_unchanged(member, support_bot, media):
    exported = logged_in(member).get(reverse("portfolio:usecase-export", args=["csv"]))
    upload = io.BytesIO(b"".join(exported.streaming_content))
    upload.name = "export.csv"
    preview = logged_in(member).post(reverse("portfolio:usecase-import"), {"file": upload})
    assert [row.action for row in preview.context["plan"].rows] == ["update"]
    assert not preview.context["plan"].has_errors


# --- Language and formats --------------------------------------------------------------------------------------


@pytest.fixture
def japanese():
    call_command("compile_translations", verbosity=0)


def test_the_language_switch_renders_japanese_and_yen(member, support_bot, japanese):
    client = logged_in(member)
    response = client.post(
        reverse("set_language"), {"language": "ja", "next": reverse("portfolio:usecase-list")}, follow=True
    )
    page = html(response)
    assert '<html lang="ja">' in page
    assert "自チームのユースケース" in page and "ログアウト" in page
    jpy = recomputed(
        make_use_case(support_bot.team, title="Yen case", currency="JPY", monthly_fixed_cost=Decimal("1234567.40"))
    )
    detail = html(client.get(reverse("portfolio:usecase-detail", args=[jpy.pk])))
    assert 'data-figure="monthly_cost">¥1,234,567<' in detail
    assert "月額コスト" in detail


# --- Query counts ------------------------------------------------------------------------------------------------


def add_demo_portfolio() -> list[UseCase]:
    """The demo's thirty use cases (seed_demo's table), each with an active deployment, recomputed."""
    teams = {slug: TeamFactory(slug=slug, name=name) for slug, name in TEAMS}
    models = list(LanguageModel.objects.order_by("key"))
    use_cases = UseCase.objects.bulk_create(
        [
            UseCase(
                team=teams[row[0]],
                title=row[1],
                external_id=f"demo-{number}",
                category=row[2],
                stage=row[3],
                risk_tier=row[4],
                data_classification=row[5],
                currency=row[6],
                hours_saved_per_month=row[7],
                hourly_rate=row[8],
                other_monthly_benefit=row[9],
                one_time_cost=row[10],
                monthly_fixed_cost=row[11],
                expected_monthly_active_users=row[12],
            )
            for number, row in enumerate(USE_CASES)
        ]
    )
    Deployment.objects.bulk_create(
        [
            Deployment(
                use_case=use_case, model=models[index % len(models)], status=Deployment.Status.ACTIVE, **SUPPORT_BOT
            )
            for index, use_case in enumerate(use_cases)
        ]
    )
    services.recompute_portfolio()
    return list(UseCase.objects.prefetch_related("deployments"))


def multiply(use_cases: list[UseCase], copies: int) -> None:
    """Copies of recomputed use cases and their deployments, figures included (recomputing adds nothing here)."""
    clones = []
    for copy in range(copies):
        for use_case in use_cases:
            clone = copy_of(use_case, title=f"{use_case.title} {copy}", external_id=f"{use_case.external_id}-{copy}")
            clone.source_deployments = list(use_case.deployments.all())
            clones.append(clone)
    UseCase.objects.bulk_create(clones)
    Deployment.objects.bulk_create(
        [copy_of(deployment, use_case=clone) for clone in clones for deployment in clone.source_deployments]
    )


def copy_of(instance, **changes):
    clone = type(instance)(
        **{
            field.attname: getattr(instance, field.attname)
            for field in instance._meta.concrete_fields
            if not field.primary_key
        }
    )
    for name, value in changes.items():
        setattr(clone, name, value)
    return clone


def queries(client, url) -> int:
    client.get(url)  # Warm per-process caches (content types, translations).
    with CaptureQueriesContext(connection) as context:
        assert client.get(url).status_code == 200
    return len(context)


def test_list_and_dashboard_run_a_constant_number_of_queries_with_the_demo_data_times_100(
    manager, django_assert_max_num_queries
):
    use_cases = add_demo_portfolio()
    alice = MembershipFactory(team=Team.objects.get(slug="support"), user=UserFactory(username="alice")).user
    services.take_portfolio_snapshot()
    pages = [
        (logged_in(alice), reverse("portfolio:usecase-list")),
        (logged_in(alice), reverse("portfolio:usecase-list") + "?sort=-monthly_cost&stage=pilot&q=e"),
        (logged_in(manager), reverse("portfolio:usecase-list") + "?sort=-npv&page=2"),
        (logged_in(manager), reverse("portfolio:dashboard")),
        (logged_in(manager), reverse("portfolio:dashboard") + "?from_model=openai/gpt-4o&to_model=meta/llama-3-70b"),
    ]
    small = [queries(client, url) for client, url in pages]

    multiply(use_cases, 99)
    assert UseCase.objects.count() == 3000
    for (client, url), count in zip(pages, small, strict=True):
        with django_assert_max_num_queries(count):
            assert client.get(url).status_code == 200


def test_the_use_case_page_runs_a_constant_number_of_queries(member, team, gpt4o, django_assert_max_num_queries):
    use_case = recomputed(make_use_case(team))
    services.create_deployment(use_case=use_case, model=gpt4o, **SUPPORT_BOT)
    client = logged_in(member)
    url = reverse("portfolio:usecase-detail", args=[use_case.pk])
    small = queries(client, url)
    for number in range(20):
        services.create_deployment(use_case=use_case, model=gpt4o, name=f"D{number}", **SUPPORT_BOT)
        services.create_poc(use_case=use_case, hypothesis=f"H{number}", model=gpt4o)
    recomputed(use_case)
    with django_assert_max_num_queries(small):
        client.get(url)


def test_confirming_a_preview_the_lowered_limits_now_refuse_is_a_form_error(member, team, media, monkeypatch):
    upload = csv_upload([["team", "external_id", "title"], ["support", "new-1", "Brand new"]])
    client = logged_in(member)
    preview = client.post(reverse("portfolio:usecase-import"), {"file": upload})
    token = preview.context["confirm_form"].initial["token"]
    monkeypatch.setattr(forms, "MAX_IMPORT_LINES", 1)  # Lowered between the preview and the confirmation.
    confirmed = client.post(reverse("portfolio:usecase-import-confirm"), {"token": token}, follow=True)
    assert confirmed.redirect_chain[-1][0] == reverse("portfolio:usecase-import")
    assert "rows, counting empty ones" in html(confirmed)
    assert not UseCase.objects.filter(external_id="new-1").exists()
    assert not list((media / "imports").iterdir())
