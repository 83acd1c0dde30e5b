"""Numbers and money as the active language writes them.

``{{ amount|money:"JPY" }}`` rounds to the currency's minor unit (no decimals for JPY,
two for USD) with the same rounding the recompute uses, groups digits per locale and
shows the currency's symbol or code.
"""

from decimal import Decimal, InvalidOperation

from django import template
from django.utils.formats import number_format

from pricing import costing

register = template.Library()

SYMBOLS = {"USD": "$", "JPY": "¥", "EUR": "€", "GBP": "£"}
MINUS = "−"


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None


def _grouped(amount: Decimal, decimals: int) -> str:
    return number_format(abs(amount), decimal_pos=decimals, use_l10n=True, force_grouping=True)


@register.filter
def money(value, currency="USD"):
    """An amount in ``currency``: ``$5,500.00``, ``¥825,000``, ``1,234.50 CHF``; ``—`` when unknown."""
    amount = _decimal(value)
    if amount is None:
        return "—"
    currency = (currency or "USD").upper()
    amount = costing.quantize_money(amount, currency)
    digits = _grouped(amount, costing.currency_exponent(currency))
    sign = MINUS if amount < 0 else ""
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {currency}"


@register.filter
def unit_price(value, currency="USD"):
    """A price per 1M tokens, with up to four decimals (prices can be fractions of a cent)."""
    amount = _decimal(value)
    if amount is None:
        return "—"
    currency = (currency or "USD").upper()
    decimals = max(costing.currency_exponent(currency), min(4, -amount.normalize().as_tuple().exponent))
    digits = _grouped(amount, decimals)
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{digits}" if symbol else f"{digits} {currency}"


@register.filter
def pct(value, decimals=1):
    """A percentage such as ROI: ``53.8%``; ``—`` when there is none."""
    amount = _decimal(value)
    if amount is None:
        return "—"
    sign = MINUS if amount < 0 else ""
    return f"{sign}{_grouped(amount, int(decimals))}%"


@register.filter
def number(value, decimals=0):
    """A count or volume with the locale's digit grouping: ``1,000,000``."""
    amount = _decimal(value)
    if amount is None:
        return "—"
    sign = MINUS if amount < 0 else ""
    return f"{sign}{_grouped(amount, int(decimals))}"
