import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from pricing.models import ExchangeRate, GpuRate, LanguageModel, Price, SelfHostingProfile

pytestmark = pytest.mark.django_db

OPEN_MODELS = {
    "meta/llama-3-70b",
    "meta/llama-3-405b",
    "deepseek/deepseek-r1",
    "mistral/mistral-large-3",
    "qwen/qwen2.5-72b",
}
PROPRIETARY_MODELS = {
    "openai/gpt-4o",
    "openai/gpt-4o-mini",
    "openai/gpt-5.2-pro",
    "anthropic/claude-sonnet-4.5",
    "google/gemini-2.5-flash",
}


def public_prices(key: str) -> list[tuple[datetime.date, Decimal, Decimal]]:
    return list(
        Price.objects.filter(model__key=key, team=None)
        .order_by("effective_from")
        .values_list("effective_from", "input_per_million", "output_per_million")
    )


def test_all_ten_models_are_shipped():
    keys = set(LanguageModel.objects.values_list("key", flat=True))

    assert keys >= OPEN_MODELS | PROPRIETARY_MODELS


def test_every_shipped_model_has_a_provider_a_licence_and_a_usd_price():
    for model in LanguageModel.objects.filter(key__in=OPEN_MODELS | PROPRIETARY_MODELS):
        assert model.key.startswith(f"{model.provider.key}/")
        assert model.licence is not None
        assert model.prices.filter(team=None, currency="USD").exists(), model.key


@pytest.mark.parametrize(
    ("key", "input_price", "output_price"),
    [
        ("openai/gpt-4o", "2.50", "10.00"),
        ("meta/llama-3-70b", "0.50", "0.75"),
        ("openai/gpt-5.2-pro", "21.00", "168.00"),
    ],
)
def test_article_prices(key, input_price, output_price):
    [(_, input_per_million, output_per_million)] = public_prices(key)

    assert input_per_million == Decimal(input_price)
    assert output_per_million == Decimal(output_price)


def test_gpt4o_cached_input_price(gpt4o):
    assert Price.objects.get(model=gpt4o).cached_input_per_million == Decimal("1.25")


def test_deepseek_r1_price_history():
    assert public_prices("deepseek/deepseek-r1") == [
        (datetime.date(2025, 1, 20), Decimal("0.55"), Decimal("2.19")),
        (datetime.date(2025, 9, 29), Decimal("0.28"), Decimal("0.42")),
    ]


def test_shipped_prices_are_marked_as_the_shipped_catalogue():
    shipped = Price.objects.filter(model__key__in=OPEN_MODELS | PROPRIETARY_MODELS)

    assert set(shipped.values_list("source", flat=True)) == {Price.Source.SEED}


def test_llama_3_community_licence(llama70b):
    licence = llama70b.licence

    assert licence.key == "llama3-community"
    assert licence.commercial_use is True
    assert licence.monthly_active_user_limit == 700_000_000
    assert licence.requires_acceptable_use_policy is True


def test_llama_3_405b_licence_keeps_the_community_terms():
    licence = LanguageModel.objects.get(key="meta/llama-3-405b").licence

    assert licence.commercial_use is True
    assert licence.monthly_active_user_limit == 700_000_000
    assert licence.requires_acceptable_use_policy is True


def test_qwen_licence_needs_a_separate_licence_above_100_million_users():
    licence = LanguageModel.objects.get(key="qwen/qwen2.5-72b").licence

    assert licence.commercial_use is True
    assert licence.monthly_active_user_limit == 100_000_000


@pytest.mark.parametrize(
    ("key", "licence_key"),
    [
        ("mistral/mistral-large-3", "Apache-2.0"),
        ("deepseek/deepseek-r1", "MIT"),
    ],
)
def test_permissive_licences(key, licence_key):
    licence = LanguageModel.objects.get(key=key).licence

    assert licence.key == licence_key
    assert licence.commercial_use is True
    assert licence.monthly_active_user_limit is None


@pytest.mark.parametrize("key", sorted(PROPRIETARY_MODELS))
def test_api_models_are_under_proprietary_terms(key):
    assert LanguageModel.objects.get(key=key).licence.key == "proprietary"


def test_open_weights_exactly_for_the_open_models():
    shipped = LanguageModel.objects.filter(key__in=OPEN_MODELS | PROPRIETARY_MODELS)

    assert set(shipped.filter(open_weights=True).values_list("key", flat=True)) == OPEN_MODELS


def test_usd_jpy_rate_is_shipped():
    rate = ExchangeRate.objects.get(base="USD", quote="JPY")

    assert rate.rate > 0


def test_gpu_rates_are_shipped():
    assert {"H100 80GB", "A100 80GB", "L40S", "L4"} <= set(GpuRate.objects.values_list("gpu_type", flat=True))
    assert GpuRate.objects.get(gpu_type="H100 80GB").hourly_cost == Decimal("2.50")


def test_two_self_hosting_profiles_are_shipped():
    rented = SelfHostingProfile.objects.get(name="Cloud 4×H100, vLLM, Llama 70B class")
    owned = SelfHostingProfile.objects.get(name="On-prem 8×H100 server")

    assert (rented.gpu_type, rented.gpu_count, rented.is_owned_hardware) == ("H100 80GB", 4, False)
    assert (owned.gpu_type, owned.gpu_count, owned.is_owned_hardware) == ("H100 80GB", 8, True)
    assert owned.capex == Decimal("320000.00")


def test_portfolio_managers_group_exists():
    assert Group.objects.filter(name="portfolio_managers").exists()
