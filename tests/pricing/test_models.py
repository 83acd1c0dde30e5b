import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from pricing.models import ExchangeRate, GpuRate, LanguageModel, Price, SelfHostingProfile
from tests.factories import LanguageModelFactory, PriceFactory, ProviderFactory, TeamFactory

pytestmark = pytest.mark.django_db

DAY = datetime.date(2025, 3, 1)


def create_price(**fields):
    values = {
        "input_per_million": Decimal("1.00"),
        "output_per_million": Decimal("2.00"),
        "currency": "USD",
        "effective_from": DAY,
        **fields,
    }
    return Price.objects.create(**values)


def create_profile(**fields):
    return SelfHostingProfile.objects.create(**{"name": "Test rig", "gpu_type": "H100 80GB", **fields})


def error_fields(excinfo) -> set[str]:
    return set(excinfo.value.message_dict)


def test_one_public_price_per_model_and_date():
    model = LanguageModelFactory()
    create_price(model=model)

    with pytest.raises(IntegrityError), transaction.atomic():
        create_price(model=model, input_per_million=Decimal("0.90"))


def test_public_prices_of_one_model_on_different_dates_coexist():
    model = LanguageModelFactory()
    create_price(model=model)
    create_price(model=model, effective_from=DAY + datetime.timedelta(days=1))

    assert Price.objects.filter(model=model).count() == 2


def test_one_contract_price_per_model_team_and_date():
    model = LanguageModelFactory()
    team = TeamFactory()
    create_price(model=model, team=team, source=Price.Source.CONTRACT)

    with pytest.raises(IntegrityError), transaction.atomic():
        create_price(model=model, team=team, source=Price.Source.CONTRACT, input_per_million=Decimal("0.50"))


def test_public_and_contract_prices_on_the_same_date_coexist():
    model = LanguageModelFactory()
    first_team, second_team = TeamFactory(), TeamFactory()

    Price.objects.bulk_create(
        [
            Price(
                model=model, input_per_million=Decimal("1.00"), output_per_million=Decimal("2.00"), effective_from=DAY
            ),
            Price(
                model=model,
                team=first_team,
                input_per_million=Decimal("0.80"),
                output_per_million=Decimal("1.60"),
                effective_from=DAY,
            ),
            Price(
                model=model,
                team=second_team,
                input_per_million=Decimal("0.70"),
                output_per_million=Decimal("1.40"),
                effective_from=DAY,
            ),
        ]
    )

    assert Price.objects.filter(model=model, effective_from=DAY).count() == 3


@pytest.mark.parametrize("field", ["input_per_million", "output_per_million", "cached_input_per_million"])
def test_negative_price_is_rejected_by_the_database(field):
    with pytest.raises(IntegrityError), transaction.atomic():
        create_price(model=LanguageModelFactory(), **{field: Decimal("-0.01")})


def test_free_price_is_accepted():
    price = create_price(
        model=LanguageModelFactory(),
        input_per_million=Decimal("0"),
        output_per_million=Decimal("0"),
        cached_input_per_million=Decimal("0"),
    )

    assert price.pk is not None


@pytest.mark.parametrize("rate", [Decimal("0"), Decimal("-150")])
def test_exchange_rate_must_be_positive(rate):
    with pytest.raises(IntegrityError), transaction.atomic():
        ExchangeRate.objects.create(base="USD", quote="EUR", rate=rate, as_of=DAY)


def test_exchange_rate_base_and_quote_must_differ():
    with pytest.raises(IntegrityError), transaction.atomic():
        ExchangeRate.objects.create(base="USD", quote="USD", rate=Decimal("1"), as_of=DAY)


def test_one_exchange_rate_per_pair_and_date():
    ExchangeRate.objects.create(base="USD", quote="EUR", rate=Decimal("0.92"), as_of=DAY)

    with pytest.raises(IntegrityError), transaction.atomic():
        ExchangeRate.objects.bulk_create([ExchangeRate(base="USD", quote="EUR", rate=Decimal("0.93"), as_of=DAY)])


def test_inverse_pair_on_the_same_date_is_a_different_rate():
    ExchangeRate.objects.create(base="USD", quote="EUR", rate=Decimal("0.92"), as_of=DAY)
    ExchangeRate.objects.create(base="EUR", quote="USD", rate=Decimal("1.09"), as_of=DAY)

    assert ExchangeRate.objects.filter(as_of=DAY).count() == 2


def test_gpu_rate_unique_per_type_and_date():
    GpuRate.objects.create(gpu_type="T4", hourly_cost=Decimal("0.50"), effective_from=DAY)
    GpuRate.objects.create(gpu_type="T4", hourly_cost=Decimal("0.45"), effective_from=DAY + datetime.timedelta(days=1))

    with pytest.raises(IntegrityError), transaction.atomic():
        GpuRate.objects.create(gpu_type="T4", hourly_cost=Decimal("0.40"), effective_from=DAY)


def test_gpu_rate_cannot_be_negative():
    with pytest.raises(IntegrityError), transaction.atomic():
        GpuRate.objects.create(gpu_type="T4", hourly_cost=Decimal("-0.50"), effective_from=DAY)


@pytest.mark.parametrize("field", ["utilisation", "salvage_ratio"])
@pytest.mark.parametrize("value", [Decimal("-0.01"), Decimal("1.01")])
def test_profile_ratios_must_be_between_0_and_1(field, value):
    with pytest.raises(IntegrityError), transaction.atomic():
        create_profile(**{field: value})


@pytest.mark.parametrize("value", [Decimal("0"), Decimal("1")])
def test_profile_ratios_accept_the_bounds(value):
    profile = create_profile(utilisation=value, salvage_ratio=value)

    assert profile.pk is not None


@pytest.mark.parametrize("currency", ["usd", "US", "USDT", "U5D"])
def test_price_currency_must_be_an_upper_case_iso_code(currency):
    price = PriceFactory.build(model=LanguageModelFactory(), currency=currency)

    with pytest.raises(ValidationError) as excinfo:
        price.full_clean()

    assert error_fields(excinfo) == {"currency"}


@pytest.mark.parametrize(
    ("base", "quote", "bad_fields"),
    [
        ("usd", "JPY", {"base"}),
        ("USD", "US", {"quote"}),
        ("US", "jpy", {"base", "quote"}),
    ],
)
def test_exchange_rate_currencies_must_be_upper_case_iso_codes(base, quote, bad_fields):
    rate = ExchangeRate(base=base, quote=quote, rate=Decimal("150"), as_of=DAY)

    with pytest.raises(ValidationError) as excinfo:
        rate.full_clean()

    assert error_fields(excinfo) == bad_fields


@pytest.mark.parametrize("field", ["input_per_million", "output_per_million", "cached_input_per_million"])
def test_full_clean_names_the_negative_price_field(field):
    price = PriceFactory.build(model=LanguageModelFactory(), **{field: Decimal("-1.00")})

    with pytest.raises(ValidationError) as excinfo:
        price.full_clean()

    assert field in error_fields(excinfo)


def test_full_clean_rejects_a_duplicate_public_price():
    existing = PriceFactory()
    duplicate = PriceFactory.build(model=existing.model, effective_from=existing.effective_from)

    with pytest.raises(ValidationError):
        duplicate.full_clean()


def test_full_clean_accepts_a_contract_price_on_the_public_price_date():
    public = PriceFactory()
    contract = PriceFactory.build(
        model=public.model, team=TeamFactory(), effective_from=public.effective_from, source=Price.Source.CONTRACT
    )

    contract.full_clean()


@pytest.mark.parametrize(
    "key",
    [
        "gpt-4o",
        "openai/",
        "/gpt-4o",
        "OpenAI/gpt-4o",
        "openai/gpt 4o",
        "openai/gpt-4o/",
        "openai//gpt-4o",
        "openai/../gpt-4o",
        "openai/.hidden",
        "openai/" + "x" * 194,
    ],
)
def test_model_key_must_look_like_provider_slash_model(key):
    model = LanguageModel(key=key, provider=ProviderFactory(), display_name="Some model")

    with pytest.raises(ValidationError) as excinfo:
        model.full_clean()

    assert error_fields(excinfo) == {"key"}


@pytest.mark.parametrize(
    "key",
    [
        "openai/gpt-4.1",
        "meta/llama-3.1-405b",
        "qwen/Qwen2.5-72B-Instruct",
        "ollama/llama3:8b",
        "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "fireworks_ai/accounts/fireworks/models/deepseek-r1",
        "bedrock/us-east-1/anthropic.claude-3-5-sonnet-20240620-v1:0",
        "vertex_ai/claude-sonnet-4-5@20250929",
        "cloudflare/@cf/meta/llama-3.1-8b-instruct",
        "bedrock/*/1-month-commitment/cohere.command-text-v14",
        "gemini/gemini-exp-1206~2",
        "openai/" + "x" * 193,
    ],
)
def test_model_key_accepts_provider_slash_model(key):
    LanguageModel(key=key, provider=ProviderFactory(), display_name="Some model").full_clean()
