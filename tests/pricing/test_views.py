import datetime
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from pricing.models import LanguageModel, SelfHostingProfile
from tests.factories import PriceFactory

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_catalogue_pages_need_a_login():
    response = Client().get(reverse("pricing:model-list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_catalogue_lists_models_with_licence_badges_and_prices_in_force(member):
    response = logged_in(member).get(reverse("pricing:model-list"))
    assert response.status_code == 200
    rows = {model.key: price for model, price in response.context["rows"]}
    assert rows["deepseek/deepseek-r1"].token_price.input == Decimal("0.28")  # After the price cut.
    page = text_of(response)
    assert "open weights" in page and "API only" in page and "commercial use" in page
    assert "up to 700,000,000 monthly users" in page  # Llama 3's licence.
    assert "$2.50" in page and "$0.075" in page  # GPT-4o input, GPT-4o mini cached input.


def test_price_history_shows_every_public_price_and_only_my_teams_contract_prices(member, team, other_team):
    model = LanguageModel.objects.get(key="deepseek/deepseek-r1")
    PriceFactory(model=model, team=team, input_per_million=Decimal("0.20"), effective_from=datetime.date(2025, 10, 1))
    PriceFactory(
        model=model, team=other_team, input_per_million=Decimal("0.10"), effective_from=datetime.date(2025, 10, 1)
    )
    response = logged_in(member).get(reverse("pricing:model-detail", args=[model.key]))
    assert response.status_code == 200
    prices = response.context["prices"]
    assert [(p.effective_from.isoformat(), p.team_id) for p in prices] == [
        ("2025-10-01", team.pk),
        ("2025-09-29", None),
        ("2025-01-20", None),
    ]
    assert response.context["chart_data"]["series"][0]["values"] == [Decimal("0.55"), Decimal("0.28")]
    page = text_of(response)
    assert "contract: Support" in page and "Research" not in page
    assert "in force" in page
    assert logged_in(member).get(reverse("pricing:model-detail", args=["no/such-model"])).status_code == 404


def test_break_even_compares_a_profile_with_every_api_price(member):
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
    result = response.context["result"]
    # 4 H100 at $2.50 for 730 hours; 3,543 tokens/s at 30% busy is about $2.61 per 1M tokens.
    assert result["self_hosted_monthly_cost"] == Decimal("7300.00")
    assert result["effective_price_per_million"] == Decimal("2.61")
    rows = {row["model"].key: row for row in result["rows"]}
    assert rows["openai/gpt-4o"]["api_monthly_cost"] == Decimal("5500.00")
    assert rows["openai/gpt-4o"]["break_even_requests"] == 1_327_273  # $7,300 / $0.0055 a request.
    assert rows["openai/gpt-4o"]["self_hosting_cheaper"] is False
    assert rows["openai/gpt-5.2-pro"]["self_hosting_cheaper"] is True
    assert "$7,300.00" in text_of(response)


def test_break_even_in_yen_and_with_invalid_input(member):
    profile = SelfHostingProfile.objects.get(name__startswith="Cloud 4×H100")
    client = logged_in(member)
    yen = client.get(
        reverse("pricing:breakeven-calculate"),
        {
            "profile": profile.pk,
            "requests_per_month": 1_000_000,
            "avg_input_tokens": 1000,
            "avg_output_tokens": 300,
            "cached_input_ratio": "0",
            "currency": "JPY",
        },
    )
    assert yen.context["result"]["self_hosted_monthly_cost"] == Decimal("1095000")
    assert "¥1,095,000" in text_of(yen)
    bad = client.get(
        reverse("pricing:breakeven-calculate"),
        {
            "profile": profile.pk,
            "requests_per_month": 0,
            "avg_input_tokens": 1000,
            "avg_output_tokens": 300,
            "cached_input_ratio": "2",
            "currency": "EUR",
        },
    )
    assert bad.context["result"] is None
    assert set(bad.context["form"].errors) == {"requests_per_month", "cached_input_ratio", "currency"}
