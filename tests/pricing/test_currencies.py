"""Currencies are active ISO 4217 codes wherever one is entered; lower case reads as upper case."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db.migrations.writer import MigrationWriter
from django.urls import reverse
from rest_framework.test import APIClient

from pricing import services
from pricing.currencies import ISO_4217_CODES, normalise_currency
from pricing.models import (
    CurrencyFormField,
    ExchangeRate,
    GpuRate,
    LanguageModel,
    Price,
    SelfHostingProfile,
    currency_validator,
)
from tests.factories import UserFactory, make_manager

pytestmark = pytest.mark.django_db

DAY = datetime.date(2026, 1, 15)


def test_the_list_holds_the_active_codes_only():
    assert all(len(code) == 3 and code.isascii() and code.isalpha() and code.isupper() for code in ISO_4217_CODES)
    assert {"USD", "EUR", "JPY", "CHF", "GBP", "XCG", "ZWG", "XAU"} <= ISO_4217_CODES
    assert ISO_4217_CODES.isdisjoint({"BTC", "ETH", "HRK", "ZWL", "ABC", "XXX", "XTS"})


@pytest.mark.parametrize("value", ["USD", "JPY", "CHF", "XCG"])
def test_the_validator_accepts_iso_codes(value):
    currency_validator(value)


@pytest.mark.parametrize("value", ["BTC", "ABC", "usd", "US", "USDT", "U5D", "", "XXX"])
def test_the_validator_refuses_anything_else(value):
    with pytest.raises(ValidationError) as excinfo:
        currency_validator(value)

    assert excinfo.value.code == "invalid_currency"


def test_the_validator_is_written_into_migrations_by_reference():
    assert MigrationWriter.serialize(currency_validator)[0] == "pricing.models.currency_validator"


@pytest.mark.parametrize(("typed", "read"), [("usd", "USD"), (" chf ", "CHF"), ("Jpy", "JPY"), ("", "")])
def test_typed_codes_are_upper_cased(typed, read):
    assert normalise_currency(typed) == read
    assert CurrencyFormField(required=False).clean(typed) == read


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (
            lambda: Price(
                model=LanguageModel.objects.get(key="openai/gpt-4o"),
                input_per_million=1,
                output_per_million=1,
                currency="BTC",
                effective_from=DAY,
            ),
            "currency",
        ),
        (lambda: ExchangeRate(base="BTC", quote="USD", rate=Decimal("90000"), as_of=DAY), "base"),
        (lambda: ExchangeRate(base="USD", quote="BTC", rate=Decimal("0.00001"), as_of=DAY), "quote"),
        (lambda: GpuRate(gpu_type="T4", hourly_cost=Decimal("0.5"), currency="BTC", effective_from=DAY), "currency"),
        (lambda: SelfHostingProfile(name="Rig", gpu_type="T4", currency="BTC"), "currency"),
    ],
    ids=["price", "rate-base", "rate-quote", "gpu-rate", "profile"],
)
def test_every_catalogue_record_refuses_a_made_up_currency(record, field):
    with pytest.raises(ValidationError) as excinfo:
        record().full_clean()

    assert set(excinfo.value.message_dict) == {field}


# --- Where codes are entered: API, admin, price files ----------------------------------------


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


PRICE = {
    "model": "openai/gpt-4o",
    "input_per_million": "2.00",
    "output_per_million": "8.00",
    "effective_from": "2026-01-01",
}


def test_the_api_reads_a_lower_case_price_currency_as_upper_case():
    response = api(make_manager()).post("/api/v1/prices/", {**PRICE, "currency": "eur"}, format="json")

    assert response.status_code == 201
    assert response.json()["currency"] == "EUR"
    assert Price.objects.get(pk=response.json()["id"]).currency == "EUR"


def test_the_api_refuses_a_made_up_price_currency():
    response = api(make_manager()).post("/api/v1/prices/", {**PRICE, "currency": "BTC"}, format="json")

    assert response.status_code == 400
    assert "currency" in response.json()
    assert not Price.objects.filter(currency="BTC").exists()


def test_the_api_reads_exchange_rate_codes_as_upper_case_and_refuses_made_up_ones():
    client = api(make_manager())
    rate = {"rate": "0.88", "as_of": "2026-01-01"}

    created = client.post("/api/v1/exchange-rates/", {**rate, "base": "usd", "quote": "chf"}, format="json")
    made_up = client.post("/api/v1/exchange-rates/", {**rate, "base": "USD", "quote": "BTC"}, format="json")

    assert created.status_code == 201
    assert ExchangeRate.objects.filter(base="USD", quote="CHF").exists()
    assert made_up.status_code == 400 and set(made_up.json()) == {"quote"}


@pytest.fixture
def superuser_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def gpu_rate_form(**fields):
    return {
        "gpu_type": "Test GPU",
        "hourly_cost": "0.80",
        "currency": "USD",
        "effective_from": "2026-01-01",
        "source": "",
        **fields,
    }


def test_the_admin_reads_a_lower_case_gpu_rate_currency_as_upper_case(superuser_client):
    response = superuser_client.post(reverse("admin:pricing_gpurate_add"), gpu_rate_form(currency="eur"))

    assert response.status_code == 302
    assert GpuRate.objects.get(gpu_type="Test GPU").currency == "EUR"


def test_the_admin_refuses_a_made_up_gpu_rate_currency(superuser_client):
    response = superuser_client.post(reverse("admin:pricing_gpurate_add"), gpu_rate_form(currency="BTC"))

    assert response.status_code == 200
    assert "currency" in response.context["adminform"].form.errors
    assert not GpuRate.objects.filter(gpu_type="Test GPU").exists()


def test_the_admin_reads_a_lower_case_profile_currency_as_upper_case(superuser_client):
    form = {
        "name": "Zurich rack",
        "currency": "chf",
        "gpu_type": "H100 80GB",
        "gpu_count": "8",
        "gpu_hourly_cost": "3.10",
        "hours_per_month": "730",
        "capex": "",
        "salvage_ratio": "0",
        "amortisation_months": "36",
        "power_monthly_cost": "0",
        "operations_monthly_cost": "0",
        "throughput_tokens_per_s": "",
        "utilisation": "1",
    }

    response = superuser_client.post(reverse("admin:pricing_selfhostingprofile_add"), form)

    assert response.status_code == 302
    assert SelfHostingProfile.objects.get(name="Zurich rack").currency == "CHF"


def test_a_price_file_entry_in_lower_case_is_imported_in_upper_case():
    entry = {"litellm_provider": "acme", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}

    services.import_prices(entries={"m": {**entry, "currency": "eur"}}, effective_from=DAY)

    assert Price.objects.get(model__key="acme/m").currency == "EUR"
