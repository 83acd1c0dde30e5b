"""What a member and a portfolio manager do in the browser, end to end."""

import datetime
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from portfolio import services
from portfolio.models import Deployment, PortfolioSnapshot, UseCase
from tests.browser.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_a_member_registers_a_use_case_and_a_deployment_and_sees_its_cost(member, page):
    log_in(page, member.username)
    expect(page).to_have_url("/use-cases/")
    expect(page.get_by_role("link", name="Dashboard")).to_have_count(0)

    page.get_by_role("link", name="New use case").first.click()
    page.get_by_label("Title").fill("Support bot")
    page.get_by_label("Hours saved per month").fill("900")
    page.get_by_label("Hourly rate").fill("45")
    page.get_by_label("One-time cost").fill("60000")
    page.get_by_role("button", name="Create use case").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Support bot")
    expect(page.locator(".messages")).to_contain_text("created")

    page.get_by_role("link", name="Add deployment").click()
    page.locator("#id_model").select_option(label="GPT-4o")
    page.locator("#id_status").select_option("active")
    page.get_by_label("Requests per month").fill("1000000")
    page.get_by_label("Average input tokens").fill("1000")
    page.get_by_label("Average output tokens").fill("300")
    page.get_by_role("button", name="Add deployment").click()

    expect(page.locator('[data-figure="monthly_cost"]')).to_have_text("$5,500.00")
    expect(page.locator('[data-figure="monthly_benefit"]')).to_have_text("$40,500.00")
    expect(page.locator("#deployments")).to_contain_text("GPT-4o")
    use_case = UseCase.objects.get(title="Support bot")
    assert use_case.deployments.get().monthly_cost == Decimal("5500.00")


def test_a_member_sees_validation_errors_in_the_form(member, page):
    log_in(page, member.username)
    page.goto("/use-cases/new/")
    page.get_by_label("Hourly rate").fill("-5")
    page.get_by_role("button", name="Create use case").click()
    expect(page.locator(".errorlist").first).to_be_visible()
    expect(page.locator("form.stacked")).to_contain_text("This field is required.")
    assert not UseCase.objects.exists()


@pytest.fixture
def portfolio(team, other_team, gpt4o, llama70b):
    for team_, title, model in ((team, "FAQ chatbot", gpt4o), (other_team, "Code review", llama70b)):
        use_case = services.create_use_case(
            team=team_,
            title=title,
            hours_saved_per_month=Decimal("500"),
            hourly_rate=Decimal("60"),
            one_time_cost=Decimal("50000"),
        )
        services.create_deployment(
            use_case=use_case,
            model=model,
            status=Deployment.Status.ACTIVE,
            requests_per_month=1_000_000,
            avg_input_tokens=1000,
            avg_output_tokens=300,
        )
    services.recompute_portfolio()
    today = services.take_portfolio_snapshot()
    for week in range(1, 5):
        PortfolioSnapshot.objects.create(
            taken_on=today.taken_on - datetime.timedelta(weeks=week),
            currency="USD",
            use_cases=2,
            monthly_cost=today.monthly_cost - 100 * week,
            monthly_benefit=today.monthly_benefit - 500 * week,
        )


def test_a_manager_sees_the_charts_runs_a_what_if_and_switches_to_japanese(manager, portfolio, page):
    log_in(page, manager.username)
    expect(page).to_have_url("/dashboard/")
    expect(page.locator('[data-kpi="monthly_cost"]')).to_have_text("$6,225.00")  # 5,500 + 725.

    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length === 4")
    charts = page.evaluate("""() => Object.values(Chart.instances).map(chart => ({
        id: chart.canvas.id,
        points: chart.data.datasets.reduce((sum, set) => sum + set.data.filter(v => v !== null).length, 0),
    }))""")
    assert {chart["id"] for chart in charts} == {
        "chart-cost-by-model",
        "chart-roi-by-team",
        "chart-stage-funnel",
        "chart-trend",
    }
    assert all(chart["points"] > 0 for chart in charts), charts

    page.get_by_label("Swap this model").select_option("openai/gpt-4o")
    page.get_by_label("for this model").select_option("meta/llama-3-70b")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator('[data-whatif="savings"]')).to_have_text("$4,775.00")
    expect(page.locator("#whatif-result")).to_contain_text("FAQ chatbot")
    expect(page).to_have_url("/dashboard/")  # Swapped in place by htmx.

    page.get_by_role("button", name="Recompute everything").click()
    expect(page.locator('#recompute-progress progress[data-status="finished"]')).to_have_attribute("value", "100")

    page.get_by_role("button", name="日本語").click()
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.get_by_role("heading", level=1)).to_have_text("ポートフォリオダッシュボード")
    expect(
        page.get_by_role("link", name="自チームのユースケース").or_(
            page.get_by_role("link", name="すべてのユースケース")
        )
    ).to_be_visible()
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length === 4")
