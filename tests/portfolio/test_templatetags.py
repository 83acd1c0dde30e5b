from decimal import Decimal

import pytest
from django.utils import translation

from portfolio.templatetags.portfolio_format import money, number, pct, unit_price


@pytest.mark.parametrize(
    "value, currency, shown",
    [
        (Decimal("5500"), "USD", "$5,500.00"),
        (Decimal("1234567.456"), "JPY", "¥1,234,567"),
        (Decimal("0.5"), "JPY", "¥1"),  # Half up, as the recompute rounds.
        (Decimal("-500"), "USD", "−$500.00"),
        ("71400.005", "USD", "$71,400.01"),
        (Decimal("12.5"), "CHF", "12.50 CHF"),
        (None, "USD", "—"),
        ("not a number", "USD", "—"),
    ],
)
def test_money_rounds_to_the_currency_and_groups_digits(value, currency, shown):
    with translation.override("en"):
        assert money(value, currency) == shown


def test_money_in_japanese_keeps_the_yen_without_decimals():
    with translation.override("ja"):
        assert money(Decimal("825000"), "JPY") == "¥825,000"


def test_unit_price_keeps_fractions_of_a_cent():
    assert unit_price(Decimal("0.075000"), "USD") == "$0.075"
    assert unit_price(Decimal("2.500000"), "USD") == "$2.50"
    assert unit_price(Decimal("0.000123"), "USD") == "$0.0001"
    assert unit_price(None, "USD") == "—"


def test_percentages_and_numbers():
    with translation.override("en"):
        assert pct(Decimal("53.846")) == "53.8%"
        assert pct(Decimal("-12.34"), 2) == "−12.34%"
        assert pct(None) == "—"
        assert number(1_000_000) == "1,000,000"
        assert number(Decimal("12.0"), 1) == "12.0"
