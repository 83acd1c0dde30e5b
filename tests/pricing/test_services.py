import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from portfolio.models import UseCase
from pricing.models import ExchangeRate, Price
from pricing.services import add_exchange_rate, add_price
from tests.factories import DeploymentFactory, LanguageModelFactory, PriceFactory, UseCaseFactory

pytestmark = pytest.mark.django_db

DAY = datetime.date(2026, 1, 1)


def flagged(*use_cases: UseCase) -> list[bool]:
    return [UseCase.objects.get(pk=use_case.pk).needs_recompute for use_case in use_cases]


def settle_all_use_cases() -> None:
    UseCase.objects.update(needs_recompute=False)


def test_add_price_creates_a_new_row_and_leaves_the_old_one_alone(gpt4o):
    old = Price.objects.get(model=gpt4o)

    new = add_price(
        model=gpt4o, input_per_million=Decimal("2.00"), output_per_million=Decimal("8.00"), effective_from=DAY
    )

    assert new.pk != old.pk
    assert Price.objects.filter(model=gpt4o).count() == 2
    old_after = Price.objects.get(pk=old.pk)
    assert (old_after.input_per_million, old_after.output_per_million) == (Decimal("2.50"), Decimal("10.00"))
    assert old_after.effective_from == old.effective_from
    assert (new.input_per_million, new.output_per_million, new.effective_from) == (
        Decimal("2.00"),
        Decimal("8.00"),
        DAY,
    )
    assert new.source == Price.Source.MANUAL
    assert new.currency == "USD"


def test_add_price_for_a_team_is_a_contract_price(gpt4o, team):
    price = add_price(
        model=gpt4o,
        team=team,
        input_per_million=Decimal("2.00"),
        output_per_million=Decimal("8.00"),
        effective_from=Price.objects.get(model=gpt4o).effective_from,
        source=Price.Source.CONTRACT,
    )

    assert Price.objects.get(model=gpt4o, team=team) == price


def test_add_price_refuses_a_second_public_price_on_the_same_date(gpt4o):
    existing = Price.objects.get(model=gpt4o)

    with pytest.raises(ValidationError):
        add_price(
            model=gpt4o,
            input_per_million=Decimal("2.00"),
            output_per_million=Decimal("8.00"),
            effective_from=existing.effective_from,
        )

    assert list(Price.objects.filter(model=gpt4o)) == [existing]


def test_add_price_refuses_a_second_contract_price_on_the_same_date(gpt4o, team):
    PriceFactory(model=gpt4o, team=team, effective_from=DAY, source=Price.Source.CONTRACT)

    with pytest.raises(ValidationError):
        add_price(
            model=gpt4o,
            team=team,
            input_per_million=Decimal("1.50"),
            output_per_million=Decimal("6.00"),
            effective_from=DAY,
        )

    assert Price.objects.filter(model=gpt4o, team=team).count() == 1


def test_add_price_refuses_a_negative_price_and_saves_nothing(gpt4o):
    with pytest.raises(ValidationError) as excinfo:
        add_price(model=gpt4o, input_per_million=Decimal("-1"), output_per_million=Decimal("8.00"), effective_from=DAY)

    assert "input_per_million" in excinfo.value.message_dict
    assert Price.objects.filter(model=gpt4o).count() == 1


def test_add_price_refuses_a_bad_currency(gpt4o):
    with pytest.raises(ValidationError) as excinfo:
        add_price(
            model=gpt4o,
            input_per_million=Decimal("300"),
            output_per_million=Decimal("1200"),
            effective_from=DAY,
            currency="jpy",
        )

    assert set(excinfo.value.message_dict) == {"currency"}
    assert Price.objects.filter(model=gpt4o).count() == 1


def test_add_price_flags_use_cases_deployed_on_that_model_only(gpt4o, llama70b):
    on_gpt4o = DeploymentFactory(model=gpt4o).use_case
    on_both = DeploymentFactory(model=llama70b).use_case
    DeploymentFactory(use_case=on_both, model=gpt4o)
    on_llama = DeploymentFactory(model=llama70b).use_case
    without_deployment = UseCaseFactory()
    settle_all_use_cases()

    add_price(model=gpt4o, input_per_million=Decimal("2.00"), output_per_million=Decimal("8.00"), effective_from=DAY)

    assert flagged(on_gpt4o, on_both, on_llama, without_deployment) == [True, True, False, False]


def test_add_price_schedules_work_after_commit(gpt4o, django_capture_on_commit_callbacks):
    DeploymentFactory(model=gpt4o)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        add_price(
            model=gpt4o, input_per_million=Decimal("2.00"), output_per_million=Decimal("8.00"), effective_from=DAY
        )

    assert len(callbacks) >= 1


def test_refused_price_schedules_nothing(gpt4o, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks, pytest.raises(ValidationError):
        add_price(model=gpt4o, input_per_million=Decimal("-1"), output_per_million=Decimal("8.00"), effective_from=DAY)

    assert callbacks == []


def test_add_exchange_rate_creates_a_new_row():
    shipped = ExchangeRate.objects.get(base="USD", quote="JPY")

    rate = add_exchange_rate(base="USD", quote="JPY", rate=Decimal("155.25"), as_of=DAY, source="ECB")

    assert ExchangeRate.objects.filter(base="USD", quote="JPY").count() == 2
    assert ExchangeRate.objects.get(pk=shipped.pk).rate == shipped.rate
    assert (rate.rate, rate.as_of, rate.source) == (Decimal("155.25"), DAY, "ECB")


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"base": "usd"}, "base"),
        ({"quote": "EU"}, "quote"),
    ],
)
def test_add_exchange_rate_refuses_bad_currency_codes(fields, bad_field):
    with pytest.raises(ValidationError) as excinfo:
        add_exchange_rate(**{"base": "USD", "quote": "EUR", "rate": Decimal("0.92"), "as_of": DAY, **fields})

    assert bad_field in excinfo.value.message_dict
    assert not ExchangeRate.objects.filter(as_of=DAY).exists()


@pytest.mark.parametrize(
    ("base", "quote", "rate"),
    [
        ("USD", "JPY", Decimal("150")),
        ("USD", "EUR", Decimal("0")),
        ("USD", "USD", Decimal("1")),
    ],
)
def test_add_exchange_rate_refuses_invalid_rates_and_saves_nothing(base, quote, rate):
    before = ExchangeRate.objects.count()

    with pytest.raises(ValidationError):
        add_exchange_rate(base=base, quote=quote, rate=rate, as_of=datetime.date(2025, 1, 1))

    assert ExchangeRate.objects.count() == before


def test_add_exchange_rate_flags_use_cases_in_those_currencies_only():
    in_eur = UseCaseFactory(currency="EUR")
    in_gbp = UseCaseFactory(currency="GBP")
    in_usd = UseCaseFactory(currency="USD")
    in_jpy = UseCaseFactory(currency="JPY")
    settle_all_use_cases()

    add_exchange_rate(base="EUR", quote="GBP", rate=Decimal("0.85"), as_of=DAY)

    assert flagged(in_eur, in_gbp, in_usd, in_jpy) == [True, True, False, False]


def test_add_exchange_rate_flags_use_cases_deployed_on_models_priced_in_that_currency():
    eur_model = LanguageModelFactory()
    PriceFactory(model=eur_model, currency="EUR")
    usd_use_case_on_eur_model = DeploymentFactory(model=eur_model, use_case=UseCaseFactory(currency="USD")).use_case
    usd_use_case_on_usd_model = DeploymentFactory(model=PriceFactory().model, use_case=UseCaseFactory()).use_case
    settle_all_use_cases()

    add_exchange_rate(base="EUR", quote="CHF", rate=Decimal("0.94"), as_of=DAY)

    assert flagged(usd_use_case_on_eur_model, usd_use_case_on_usd_model) == [True, False]


def test_add_exchange_rate_schedules_work_after_commit(django_capture_on_commit_callbacks):
    UseCaseFactory(currency="EUR")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        add_exchange_rate(base="EUR", quote="USD", rate=Decimal("1.08"), as_of=DAY)

    assert len(callbacks) >= 1
