import datetime
from decimal import Decimal

import pytest

from pricing.costing import TokenPrice
from pricing.models import LanguageModel, Price
from pricing.selectors import MissingRate, current_price, price_book
from tests.factories import ExchangeRateFactory, GpuRateFactory, LanguageModelFactory, PriceFactory

pytestmark = pytest.mark.django_db

LAUNCH = datetime.date(2025, 1, 20)
PRICE_CUT = datetime.date(2025, 9, 29)
LAUNCH_PRICE = TokenPrice(input=Decimal("0.55"), output=Decimal("2.19"), cached_input=Decimal("0.14"))
CUT_PRICE = TokenPrice(input=Decimal("0.28"), output=Decimal("0.42"), cached_input=Decimal("0.028"))


@pytest.fixture
def deepseek_r1():
    return LanguageModel.objects.get(key="deepseek/deepseek-r1")


@pytest.fixture
def model():
    return LanguageModelFactory()


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (LAUNCH, LAUNCH_PRICE),
        (datetime.date(2025, 2, 1), LAUNCH_PRICE),
        (PRICE_CUT - datetime.timedelta(days=1), LAUNCH_PRICE),
        (PRICE_CUT, CUT_PRICE),
        (datetime.date(2025, 10, 1), CUT_PRICE),
    ],
)
def test_price_book_resolves_deepseek_r1_to_the_price_in_force(deepseek_r1, on, expected):
    in_force = price_book(on=on).price(deepseek_r1.pk)

    assert in_force.token_price == expected
    assert in_force.currency == "USD"
    assert in_force.is_contract is False


@pytest.mark.parametrize(
    ("on", "effective_from"),
    [
        (datetime.date(2025, 2, 1), LAUNCH),
        (datetime.date(2025, 10, 1), PRICE_CUT),
    ],
)
def test_current_price_resolves_deepseek_r1_to_the_row_in_force(deepseek_r1, on, effective_from):
    expected = Price.objects.get(model=deepseek_r1, team=None, effective_from=effective_from)

    assert current_price(model=deepseek_r1, on=on) == expected
    assert price_book(on=on).price(deepseek_r1.pk).id == expected.id
    assert price_book(on=on).price(deepseek_r1.pk).effective_from == effective_from


def test_deepseek_r1_has_no_price_before_its_launch(deepseek_r1):
    day_before = LAUNCH - datetime.timedelta(days=1)

    assert price_book(on=day_before).price(deepseek_r1.pk) is None
    assert current_price(model=deepseek_r1, on=day_before) is None


def test_contract_price_beats_the_public_price_for_its_team_only(deepseek_r1, team, other_team):
    contract = PriceFactory(
        model=deepseek_r1,
        team=team,
        input_per_million=Decimal("0.20"),
        output_per_million=Decimal("0.30"),
        effective_from=PRICE_CUT,
        source=Price.Source.CONTRACT,
    )
    public = Price.objects.get(model=deepseek_r1, team=None, effective_from=PRICE_CUT)
    on = datetime.date(2025, 10, 1)
    book = price_book(on=on)

    assert book.price(deepseek_r1.pk, team.pk).id == contract.id
    assert book.price(deepseek_r1.pk, team.pk).is_contract is True
    assert book.price(deepseek_r1.pk, other_team.pk).id == public.id
    assert book.price(deepseek_r1.pk).id == public.id
    assert current_price(model=deepseek_r1, team_id=team.pk, on=on) == contract
    assert current_price(model=deepseek_r1, team_id=other_team.pk, on=on) == public
    assert current_price(model=deepseek_r1, on=on) == public


def test_contract_price_applies_only_from_its_effective_date(deepseek_r1, team):
    contract = PriceFactory(
        model=deepseek_r1,
        team=team,
        input_per_million=Decimal("0.40"),
        output_per_million=Decimal("1.50"),
        effective_from=datetime.date(2025, 3, 1),
        source=Price.Source.CONTRACT,
    )
    launch_price = Price.objects.get(model=deepseek_r1, team=None, effective_from=LAUNCH)

    for on in (datetime.date(2025, 2, 1), datetime.date(2025, 2, 28)):
        assert price_book(on=on).price(deepseek_r1.pk, team.pk).id == launch_price.id
        assert current_price(model=deepseek_r1, team_id=team.pk, on=on) == launch_price
    assert price_book(on=datetime.date(2025, 3, 1)).price(deepseek_r1.pk, team.pk).id == contract.id
    assert current_price(model=deepseek_r1, team_id=team.pk, on=datetime.date(2025, 3, 1)) == contract


def test_newer_public_price_supersedes_the_older_one(model):
    PriceFactory(model=model, effective_from=datetime.date(2024, 1, 1))
    newer = PriceFactory(model=model, input_per_million=Decimal("0.75"), effective_from=datetime.date(2024, 6, 1))

    assert price_book(on=datetime.date(2024, 6, 1)).price(model.pk).id == newer.id
    assert current_price(model=model, on=datetime.date(2024, 6, 1)) == newer


def test_price_book_can_be_restricted_to_some_models(gpt4o, llama70b, deepseek_r1):
    book = price_book(on=datetime.date(2025, 10, 1), model_ids=[gpt4o.pk, llama70b.pk])

    assert {model_id for model_id, _team_id in book.prices} == {gpt4o.pk, llama70b.pk}
    assert book.price(deepseek_r1.pk) is None


def test_price_book_without_restriction_holds_every_public_price_in_force(deepseek_r1):
    book = price_book(on=datetime.date(2026, 1, 1))

    assert {model_id for model_id, _team_id in book.prices} == set(LanguageModel.objects.values_list("pk", flat=True))


def test_selectors_default_to_today(deepseek_r1, monkeypatch):
    monkeypatch.setattr("pricing.selectors.timezone.localdate", lambda: datetime.date(2025, 2, 1))

    assert price_book().price(deepseek_r1.pk).effective_from == LAUNCH
    assert current_price(model=deepseek_r1).effective_from == LAUNCH


def test_exchange_rate_direct():
    rate = ExchangeRateFactory(base="EUR", quote="JPY", rate=Decimal("160.5"), as_of=datetime.date(2025, 1, 1))

    in_force = price_book(on=datetime.date(2025, 2, 1)).rate("EUR", "JPY")

    assert in_force.id == rate.id
    assert in_force.rate == Decimal("160.5")


def test_exchange_rate_inverse_is_one_over_the_rate():
    rate = ExchangeRateFactory(base="EUR", quote="JPY", rate=Decimal("160"), as_of=datetime.date(2025, 1, 1))

    in_force = price_book(on=datetime.date(2025, 2, 1)).rate("JPY", "EUR")

    assert in_force.id == rate.id
    assert in_force.rate == Decimal("1") / Decimal("160")


def test_exchange_rate_identity_has_no_row():
    in_force = price_book(on=datetime.date(2025, 2, 1)).rate("USD", "USD")

    assert in_force.id is None
    assert in_force.rate == Decimal("1")


def test_exchange_rate_is_the_newest_on_or_before_the_date():
    ExchangeRateFactory(base="EUR", quote="JPY", rate=Decimal("155"), as_of=datetime.date(2025, 1, 1))
    february = ExchangeRateFactory(base="EUR", quote="JPY", rate=Decimal("158"), as_of=datetime.date(2025, 2, 1))
    ExchangeRateFactory(base="EUR", quote="JPY", rate=Decimal("162"), as_of=datetime.date(2025, 3, 1))

    in_force = price_book(on=datetime.date(2025, 2, 20)).rate("EUR", "JPY")

    assert in_force.id == february.id
    assert in_force.rate == Decimal("158")
    assert price_book(on=datetime.date(2025, 2, 1)).rate("EUR", "JPY").id == february.id


def test_shipped_usd_jpy_rate_is_in_force():
    assert price_book(on=datetime.date(2025, 6, 1)).rate("USD", "JPY").rate == Decimal("150")


def test_unknown_pair_raises_missing_rate():
    with pytest.raises(MissingRate):
        price_book(on=datetime.date(2025, 2, 1)).rate("USD", "CHF")


def test_rate_dated_after_the_day_is_missing():
    ExchangeRateFactory(base="EUR", quote="CHF", rate=Decimal("0.94"), as_of=datetime.date(2025, 3, 1))

    with pytest.raises(MissingRate):
        price_book(on=datetime.date(2025, 2, 28)).rate("EUR", "CHF")


def test_gpu_rate_in_force():
    GpuRateFactory(gpu_type="T4", hourly_cost=Decimal("0.50"), effective_from=datetime.date(2025, 1, 1))
    cheaper = GpuRateFactory(gpu_type="T4", hourly_cost=Decimal("0.35"), effective_from=datetime.date(2025, 6, 1))
    GpuRateFactory(gpu_type="T4", hourly_cost=Decimal("0.30"), effective_from=datetime.date(2025, 9, 1))

    in_force = price_book(on=datetime.date(2025, 7, 1)).gpu_rate("T4")

    assert in_force.id == cheaper.id
    assert in_force.hourly_cost == Decimal("0.35")
    assert in_force.currency == "USD"


def test_gpu_rate_unknown_or_not_yet_in_force_is_none():
    GpuRateFactory(gpu_type="T4", effective_from=datetime.date(2025, 6, 1))
    book = price_book(on=datetime.date(2025, 5, 31))

    assert book.gpu_rate("T4") is None
    assert book.gpu_rate("B200") is None


def test_shipped_gpu_rate_is_in_force():
    assert price_book(on=datetime.date(2025, 6, 1)).gpu_rate("H100 80GB").hourly_cost == Decimal("2.50")


def test_price_book_runs_a_fixed_number_of_queries(django_assert_num_queries, team):
    on = datetime.date(2025, 6, 1)
    with django_assert_num_queries(3):
        small = price_book(on=on)

    for index in range(25):
        model = LanguageModelFactory()
        PriceFactory(model=model, effective_from=datetime.date(2025, 1, 1) + datetime.timedelta(days=index))
        PriceFactory(model=model, team=team, effective_from=datetime.date(2025, 2, 1), source=Price.Source.CONTRACT)
    for index in range(5):
        GpuRateFactory(gpu_type="T4", effective_from=datetime.date(2025, 1, 1) + datetime.timedelta(days=index))
    with django_assert_num_queries(3):
        large = price_book(on=on)

    assert len(large.prices) == len(small.prices) + 50


@pytest.mark.django_db
def test_newest_rate_wins_whichever_way_it_was_recorded():
    newer = ExchangeRateFactory(base="JPY", quote="USD", rate=Decimal("0.0064"), as_of=datetime.date(2026, 1, 1))
    book = price_book(on=datetime.date(2026, 2, 1))
    assert book.rate("USD", "JPY").id == newer.id
    assert book.rate("USD", "JPY").rate == Decimal(1) / Decimal("0.0064")
