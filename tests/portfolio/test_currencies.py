"""One record in a currency no rate converts never breaks a page for the whole portfolio.

Made-up codes (``BTC``) are refused where a use case is entered; ``usd`` reads as USD. A
use case in a real currency without a rate (CHF: the catalogue ships USD/JPY only) is
saved, left out of converted totals, and counted wherever those totals are shown.
"""

import csv
import datetime
import io
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from openpyxl import load_workbook
from rest_framework.test import APIClient

from portfolio import services
from portfolio.models import CostSnapshot, Deployment, PortfolioSnapshot, UseCase
from pricing.models import SelfHostingProfile
from pricing.services import add_exchange_rate
from tests.factories import LanguageModelFactory, PriceFactory, UseCaseFactory

pytestmark = pytest.mark.django_db

SUPPORT_BOT = {"requests_per_month": 1_000_000, "avg_input_tokens": 1_000, "avg_output_tokens": 300}


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def recomputed(use_case: UseCase) -> UseCase:
    services.recompute_use_case(use_case_id=use_case.pk)
    use_case.refresh_from_db()
    return use_case


@pytest.fixture
def support_bot(team, gpt4o):
    """$5,500 a month on GPT-4o, in dollars."""
    use_case = services.create_use_case(team=team, title="FAQ bot", external_id="faq-bot")
    services.create_deployment(use_case=use_case, model=gpt4o, status=Deployment.Status.ACTIVE, **SUPPORT_BOT)
    return recomputed(use_case)


@pytest.fixture
def swiss_bot(team, gpt4o):
    """A use case in francs: a real currency, but no rate in force converts it."""
    use_case = services.create_use_case(
        team=team,
        title="Zurich helpdesk",
        external_id="zurich",
        currency="CHF",
        monthly_fixed_cost=Decimal("900"),
        other_monthly_benefit=Decimal("4000"),
    )
    services.create_deployment(use_case=use_case, model=gpt4o, status=Deployment.Status.ACTIVE, **SUPPORT_BOT)
    return recomputed(use_case)


def use_case_form(team, **overrides):
    return {
        "team": team.pk,
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
        **overrides,
    }


# --- Entering a currency ----------------------------------------------------------------------


def test_a_use_case_in_btc_is_a_400_with_a_field_error(member, team):
    response = api(member).post("/api/v1/use-cases/", {"team": "support", "title": "Crypto", "currency": "BTC"})

    assert response.status_code == 400
    assert list(response.json()) == ["currency"]
    assert not UseCase.objects.exists()


def test_a_use_case_cannot_be_moved_to_btc_through_the_api(member, support_bot):
    response = api(member).patch(f"/api/v1/use-cases/{support_bot.pk}/", {"currency": "BTC"}, format="json")

    assert response.status_code == 400 and "currency" in response.json()
    assert UseCase.objects.get(pk=support_bot.pk).currency == "USD"


def test_a_use_case_in_btc_is_a_form_error(member, team):
    response = logged_in(member).post(reverse("portfolio:usecase-create"), use_case_form(team, currency="BTC"))

    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["currency"]
    assert not UseCase.objects.exists()


def test_usd_in_lower_case_is_usd_in_the_api_and_the_form(member, team):
    created = api(member).post("/api/v1/use-cases/", {"team": "support", "title": "API", "currency": "usd"})
    posted = logged_in(member).post(reverse("portfolio:usecase-create"), use_case_form(team, currency=" usd"))

    assert created.status_code == 201 and created.json()["currency"] == "USD"
    assert posted.status_code == 302
    assert sorted(UseCase.objects.values_list("currency", flat=True)) == ["USD", "USD"]


def test_the_bulk_api_reads_lower_case_and_refuses_made_up_codes(member, team):
    client = api(member)
    rows = [{"team": "support", "external_id": "a", "title": "A", "currency": "jpy"}]

    fine = client.post("/api/v1/use-cases/bulk/", {"rows": rows}, format="json")
    made_up = client.post(
        "/api/v1/use-cases/bulk/", {"rows": [{**rows[0], "external_id": "b", "currency": "BTC"}]}, format="json"
    )

    assert fine.status_code in (200, 201)
    assert UseCase.objects.get(external_id="a").currency == "JPY"
    assert made_up.status_code == 400
    assert not UseCase.objects.filter(external_id="b").exists()


def upload(rows, name="use-cases.csv"):
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    file = io.BytesIO(buffer.getvalue().encode())
    file.name = name
    return file


def test_an_import_file_reads_lower_case_and_flags_made_up_codes(member, team, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client = logged_in(member)
    made_up = client.post(
        reverse("portfolio:usecase-import"),
        {"file": upload([["team", "external_id", "title", "currency"], ["support", "x-1", "Crypto", "BTC"]])},
    )
    assert made_up.context["plan"].has_errors
    assert "currency" in " ".join(made_up.context["plan"].rows[0].errors)

    preview = client.post(
        reverse("portfolio:usecase-import"),
        {"file": upload([["team", "external_id", "title", "currency"], ["support", "x-1", "Swiss", "chf"]])},
    )
    assert not preview.context["plan"].has_errors
    client.post(
        reverse("portfolio:usecase-import-confirm"), {"token": preview.context["confirm_form"].initial["token"]}
    )

    assert UseCase.objects.get(external_id="x-1").currency == "CHF"


@pytest.mark.parametrize(("typed", "status"), [("jpy", 200), ("BTC", 400), ("dollars", 400)])
def test_the_summary_currency_is_an_iso_code_in_any_case(manager, support_bot, typed, status):
    response = api(manager).get("/api/v1/portfolio/summary/", {"currency": typed})

    assert response.status_code == status
    if status == 200:
        assert response.json()["currency"] == "JPY"
        assert response.json()["totals"]["monthly_cost"] == "825000"
    else:
        assert "currency" in response.json()


# --- A use case no rate converts ------------------------------------------------------------


def test_a_use_case_without_a_rate_is_saved_and_computed_in_its_own_currency(swiss_bot):
    assert swiss_bot.pk is not None and swiss_bot.currency == "CHF"
    assert swiss_bot.computed_at is not None
    assert swiss_bot.monthly_benefit == Decimal("4000.00")


def test_the_summary_leaves_it_out_and_counts_it(manager, support_bot, swiss_bot):
    response = api(manager).get("/api/v1/portfolio/summary/")

    assert response.status_code == 200
    body = response.json()
    assert body["unconverted"] == {"count": 1, "currencies": ["CHF"]}
    assert body["totals"]["count"] == 1
    assert body["totals"]["monthly_cost"] == "5500.00"  # The dollar use case alone.
    assert body["by_team"]["support"]["count"] == 1
    assert body["by_model"]["openai/gpt-4o"] == {"count": 1, "monthly_cost": "5500.00"}


def test_the_summary_counts_a_legacy_made_up_code_too(manager, support_bot, team):
    # Saved before codes were checked: it must not break the answer for everyone.
    UseCase.objects.bulk_create([UseCase(team=team, title="Crypto", currency="BTC", monthly_cost=Decimal("7"))])

    response = api(manager).get("/api/v1/portfolio/summary/", {"currency": "JPY"})

    assert response.status_code == 200
    assert response.json()["unconverted"] == {"count": 1, "currencies": ["BTC"]}
    assert response.json()["totals"]["monthly_cost"] == "825000"


def test_the_summary_schema_declares_unconverted(member):
    schema = api(member).get("/api/v1/schema/", {"format": "json"}).json()

    summary = schema["components"]["schemas"]["PortfolioSummary"]
    assert "unconverted" in summary["properties"]
    assert "unconverted" in summary["required"]


def test_the_dashboard_shows_the_warning_and_the_count(manager, support_bot, swiss_bot, team):
    UseCase.objects.bulk_create([UseCase(team=team, title="Crypto", currency="BTC")])

    response = logged_in(manager).get(reverse("portfolio:dashboard"))

    assert response.status_code == 200
    page = text_of(response)
    assert "2 use cases are left out of every figure below: no exchange rate in force converts BTC, CHF to USD." in page
    assert response.context["totals"]["monthly_cost"] == Decimal("5500.00")
    assert response.context["returns"]["unconverted"] == {"count": 2, "currencies": ["BTC", "CHF"]}


def test_the_dashboard_shows_no_warning_when_everything_converts(manager, support_bot):
    response = logged_in(manager).get(reverse("portfolio:dashboard"))

    assert response.status_code == 200
    assert 'id="unconverted"' not in response.content.decode()


def test_the_what_if_leaves_it_out_of_the_totals_and_says_so(manager, support_bot, swiss_bot):
    swap = {"from_model": "openai/gpt-4o", "to_model": "meta/llama-3-70b"}

    response = api(manager).post("/api/v1/portfolio/what-if/", swap, format="json")
    page = logged_in(manager).get(reverse("portfolio:dashboard"), swap)

    assert response.status_code == 200
    body = response.json()
    # GPT-4o's dollar price cannot be turned into francs: the franc deployment is unpriced, not guessed.
    assert body["unpriced_deployments"] == list(swiss_bot.deployments.values_list("pk", flat=True))
    assert body["unconverted"] == {"count": 0, "currencies": []}
    assert body["current_monthly_cost"] == "5500.00"
    assert page.status_code == 200


def test_the_what_if_lists_a_use_case_in_its_own_currency_but_leaves_it_out_of_the_totals(manager, team):
    # Both models priced in francs: the use case is costed, but its francs convert to no dollars.
    models = {
        key: PriceFactory(
            model=LanguageModelFactory(key=key), currency="CHF", input_per_million=Decimal(price), output_per_million=0
        ).model
        for key, price in [("swiss/model", "2"), ("swiss/cheaper", "1")]
    }
    swiss = services.create_use_case(team=team, title="Zurich", currency="CHF")
    services.create_deployment(
        use_case=swiss, model=models["swiss/model"], status=Deployment.Status.ACTIVE, **SUPPORT_BOT
    )
    swap = {"from_model": "swiss/model", "to_model": "swiss/cheaper"}

    body = api(manager).post("/api/v1/portfolio/what-if/", swap, format="json").json()
    page = logged_in(manager).get(reverse("portfolio:dashboard"), swap)

    assert body["unconverted"] == {"count": 1, "currencies": ["CHF"]}
    row = body["affected_use_cases"][0]
    assert (row["currency"], row["current_monthly_cost"], row["projected_monthly_cost"]) == (
        "CHF",
        "2000.00",
        "1000.00",
    )
    assert (body["current_monthly_cost"], body["projected_monthly_cost"]) == ("0.00", "0.00")
    assert "1 use case is listed in its own currency but left out of the totals" in text_of(page)


def export_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))


def test_the_csv_export_flags_it(member, support_bot, swiss_bot):
    rows = {
        row["external_id"]: row
        for row in export_rows(logged_in(member).get(reverse("portfolio:usecase-export", args=["csv"])))
    }

    assert rows["zurich"]["monthly_cost"] == "900.00"  # Its own figures, in francs.
    assert rows["zurich"]["monthly_cost_converted"] == "no rate"
    assert rows["zurich"]["npv_converted"] == "no rate"
    assert rows["faq-bot"]["reporting_currency"] == "USD"
    assert rows["faq-bot"]["monthly_cost_converted"] == "5500.00"


def test_the_xlsx_export_flags_it_and_counts_it(manager, support_bot, swiss_bot):
    response = logged_in(manager).get(reverse("portfolio:usecase-export", args=["xlsx"]))

    workbook = load_workbook(io.BytesIO(response.content))
    rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    header = rows[0]
    zurich = next(row for row in rows if row[header.index("external_id")] == "zurich")
    assert zurich[header.index("monthly_cost_converted")] == "no rate"
    assert [sheet.title for sheet in workbook.worksheets] == ["Use cases", "Warnings"]
    assert "1 use case has no exchange rate in force to USD (CHF)" in workbook.worksheets[1]["A1"].value


def test_the_xlsx_export_has_no_warning_when_everything_converts(manager, support_bot):
    response = logged_in(manager).get(reverse("portfolio:usecase-export", args=["xlsx"]))

    assert [sheet.title for sheet in load_workbook(io.BytesIO(response.content)).worksheets] == ["Use cases"]


def test_the_list_marks_it_and_counts_it(member, support_bot, swiss_bot):
    response = logged_in(member).get(reverse("portfolio:usecase-list"))

    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-no-rate="{swiss_bot.pk}"' in page and f'data-no-rate="{support_bot.pk}"' not in page
    assert "1 of these use cases has no exchange rate in force to USD (CHF)" in text_of(response)


def test_sorting_by_converted_cost_puts_it_last(member, support_bot, swiss_bot):
    UseCase.objects.filter(pk=swiss_bot.pk).update(monthly_cost=Decimal("999999"))

    listed = logged_in(member).get(reverse("portfolio:usecase-list"), {"sort": "-monthly_cost"}).context["use_cases"]

    assert [use_case.pk for use_case in listed] == [support_bot.pk, swiss_bot.pk]


def test_the_nightly_snapshot_leaves_it_out(support_bot, swiss_bot):
    snapshot = services.take_portfolio_snapshot()

    assert (snapshot.use_cases, snapshot.monthly_cost) == (1, Decimal("5500.00"))
    assert PortfolioSnapshot.objects.count() == 1


def test_the_break_even_page_survives_a_price_no_rate_converts(member):
    PriceFactory(model=LanguageModelFactory(key="swiss/model"), currency="CHF")
    profile = SelfHostingProfile.objects.get(name__startswith="Cloud 4×H100")

    response = logged_in(member).get(
        reverse("pricing:breakeven-calculate"),
        {
            "profile": profile.pk,
            "requests_per_month": 1_000_000,
            "avg_input_tokens": 1000,
            "avg_output_tokens": 300,
            "cached_input_ratio": "0",
            "currency": "USD",
        },
    )

    assert response.status_code == 200
    row = next(row for row in response.context["result"]["rows"] if row["model"].key == "swiss/model")
    assert (row["api_monthly_cost"], row["break_even_requests"]) == (None, None)


def test_the_summary_runs_the_same_queries_for_one_or_many_currencies(
    manager, support_bot, team, django_assert_max_num_queries
):
    client = api(manager)
    UseCaseFactory(team=team, currency="CHF")
    client.get("/api/v1/portfolio/summary/")  # Warm per-process caches.
    with django_assert_max_num_queries(20) as few:
        client.get("/api/v1/portfolio/summary/")

    UseCase.objects.bulk_create(
        [UseCase(team=team, title=f"In {code}", currency=code) for code in ["CHF", "EUR", "GBP", "SEK", "BTC"] * 4]
    )
    with django_assert_max_num_queries(len(few)):
        response = client.get("/api/v1/portfolio/summary/")
    assert response.json()["unconverted"] == {"count": 21, "currencies": ["BTC", "CHF", "EUR", "GBP", "SEK"]}


# --- A deployment whose cost no rate converts ------------------------------------------------


def swiss_priced_model():
    model = LanguageModelFactory(key="swiss/model")
    PriceFactory(model=model, currency="CHF")
    return model


@pytest.mark.parametrize(
    "setup",
    ["use case in CHF", "price in CHF", "profile in CHF"],
)
def test_a_deployment_no_rate_converts_is_not_stored_as_computed(team, gpt4o, llama70b, setup):
    if setup == "use case in CHF":
        use_case = services.create_use_case(team=team, title="Zurich", currency="CHF")
        deployment = services.create_deployment(use_case=use_case, model=gpt4o, status="active", **SUPPORT_BOT)
    elif setup == "price in CHF":
        use_case = services.create_use_case(team=team, title="Dollars")
        deployment = services.create_deployment(
            use_case=use_case, model=swiss_priced_model(), status="active", **SUPPORT_BOT
        )
    else:
        profile = SelfHostingProfile.objects.create(
            name="Zurich rack", gpu_type="H100 80GB", gpu_hourly_cost=Decimal("3"), currency="CHF"
        )
        use_case = services.create_use_case(team=team, title="Dollars")
        deployment = services.create_deployment(
            use_case=use_case,
            model=llama70b,
            status="active",
            hosting=Deployment.Hosting.SELF_HOSTED,
            self_hosting_profile=profile,
        )
    services.recompute_use_case(use_case_id=use_case.pk)

    stored = Deployment.objects.get(pk=deployment.pk)
    assert (stored.monthly_cost, stored.computed_at) == (None, None)
    line = CostSnapshot.objects.get(use_case=use_case).breakdown[0]
    assert line["error"].startswith("No exchange rate from ") and "monthly_cost" not in line
    assert UseCase.objects.get(pk=use_case.pk).computed_at is not None


def test_a_deployment_that_becomes_convertible_is_computed(team, gpt4o):
    use_case = services.create_use_case(team=team, title="Zurich", currency="CHF")
    deployment = services.create_deployment(use_case=use_case, model=gpt4o, status="active", **SUPPORT_BOT)
    services.recompute_use_case(use_case_id=use_case.pk)

    add_exchange_rate(base="USD", quote="CHF", rate=Decimal("0.9"), as_of=datetime.date(2024, 1, 1))
    services.recompute_use_case(use_case_id=use_case.pk)

    stored = Deployment.objects.get(pk=deployment.pk)
    assert stored.monthly_cost == Decimal("4950.00") and stored.computed_at is not None


def test_the_use_case_page_shows_why_a_cost_is_unavailable(member, team, gpt4o):
    use_case = services.create_use_case(team=team, title="Zurich", currency="CHF")
    deployment = services.create_deployment(use_case=use_case, model=gpt4o, status="active", **SUPPORT_BOT)
    services.recompute_use_case(use_case_id=use_case.pk)

    response = logged_in(member).get(reverse("portfolio:usecase-detail", args=[use_case.pk]))

    cell = re.search(rf'data-deployment-cost="{deployment.pk}">(.*?)</td>', response.content.decode(), re.S).group(1)
    assert "cost unavailable" in cell and "No exchange rate from USD to CHF" in cell
