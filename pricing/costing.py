"""Token cost, self-hosting cost and investment arithmetic.

Pure Python: no Django, no I/O. Every function takes and returns ``Decimal`` and keeps
full precision; callers quantize once, at the edge, with :func:`quantize_money`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

ZERO = Decimal(0)
ONE = Decimal(1)
ONE_MILLION = Decimal(1_000_000)
SECONDS_PER_HOUR = Decimal(3600)
HOURS_PER_MONTH = Decimal(730)

# Minor units per ISO 4217; a currency not listed here is shown with two decimals.
CURRENCY_DECIMALS = {"JPY": 0, "KRW": 0, "USD": 2, "EUR": 2, "GBP": 2, "CNY": 2, "INR": 2}
# Significant digits a quantized amount may have.
MONEY_PRECISION = 60


# --- Money --------------------------------------------------------------------------


def currency_exponent(currency: str) -> int:
    return CURRENCY_DECIMALS.get(currency.upper(), 2)


def quantize_money(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit, half up (JPY to the yen, USD to the cent)."""
    exponent = Decimal(1).scaleb(-currency_exponent(currency))
    # Wider than the default 28 digits: portfolio totals converted at extreme rates can
    # have more, and quantize() refuses a result longer than its context's precision.
    return amount.quantize(exponent, rounding=ROUND_HALF_UP, context=Context(prec=MONEY_PRECISION))


def to_cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def convert(amount: Decimal, rate: Decimal) -> Decimal:
    """Convert with ``rate`` units of the target currency per unit of the source."""
    return amount * rate


# --- API usage -----------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPrice:
    """Price in currency units per million tokens.

    ``cached_input`` is the price of input tokens served from the provider's prompt
    cache; ``None`` means the provider gives no discount for them.
    """

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None

    @property
    def cached_input_or_input(self) -> Decimal:
        return self.input if self.cached_input is None else self.cached_input


@dataclass(frozen=True)
class ApiUsage:
    """Monthly traffic of a deployment; ``cached_ratio`` is the share of input tokens cached."""

    requests: int
    input_tokens: int
    output_tokens: int
    cached_ratio: Decimal = ZERO


def cost_per_request(price: TokenPrice, usage: ApiUsage) -> Decimal:
    # Cached tokens are a subset of the input tokens: split, never count twice.
    cached = usage.input_tokens * usage.cached_ratio
    uncached = usage.input_tokens - cached
    return (
        uncached * price.input + cached * price.cached_input_or_input + usage.output_tokens * price.output
    ) / ONE_MILLION


def monthly_api_cost(price: TokenPrice, usage: ApiUsage, *, fixed: Decimal = ZERO) -> Decimal:
    return usage.requests * cost_per_request(price, usage) + fixed


def monthly_tokens(usage: ApiUsage) -> int:
    return usage.requests * (usage.input_tokens + usage.output_tokens)


# --- Self-hosting ----------------------------------------------------------------------


@dataclass(frozen=True)
class GpuRental:
    """GPUs paid by the hour, in the cloud or from a hosting provider."""

    gpu_count: int
    gpu_hourly_cost: Decimal
    hours_per_month: Decimal = HOURS_PER_MONTH

    def monthly_cost(self) -> Decimal:
        return self.gpu_count * self.gpu_hourly_cost * self.hours_per_month

    def hourly_cost(self) -> Decimal:
        return self.gpu_count * self.gpu_hourly_cost


@dataclass(frozen=True)
class OwnedHardware:
    """On-prem hardware: capital expense written off over the amortisation period."""

    capex: Decimal
    amortisation_months: int
    salvage_ratio: Decimal = ZERO
    power_monthly_cost: Decimal = ZERO
    operations_monthly_cost: Decimal = ZERO
    hours_per_month: Decimal = HOURS_PER_MONTH

    def monthly_cost(self) -> Decimal:
        amortisation = self.capex * (ONE - self.salvage_ratio) / self.amortisation_months
        return amortisation + self.power_monthly_cost + self.operations_monthly_cost

    def hourly_cost(self) -> Decimal:
        return self.monthly_cost() / self.hours_per_month


def monthly_self_hosted_cost(hosting: GpuRental | OwnedHardware, *, fixed: Decimal = ZERO) -> Decimal:
    return hosting.monthly_cost() + fixed


def effective_price_per_million(
    hourly_cost: Decimal, *, throughput_tokens_per_s: Decimal, utilisation: Decimal
) -> Decimal | None:
    """What a million tokens cost on hardware busy ``utilisation`` of the time.

    ``None`` when the hardware produces nothing (no throughput or never busy).
    """
    tokens_per_hour = throughput_tokens_per_s * SECONDS_PER_HOUR * utilisation
    if tokens_per_hour <= 0:
        return None
    return hourly_cost / tokens_per_hour * ONE_MILLION


def break_even_requests(self_hosted_monthly_cost: Decimal, price: TokenPrice, usage: ApiUsage) -> Decimal | None:
    """Monthly requests above which self-hosting is cheaper than the API.

    ``usage`` gives the shape of one request (its ``requests`` is ignored). ``None``
    when the API costs nothing per request, so self-hosting never breaks even.
    """
    per_request = cost_per_request(price, usage)
    if per_request <= 0:
        return None
    return self_hosted_monthly_cost / per_request


def break_even_tokens(self_hosted_monthly_cost: Decimal, price_per_million: Decimal) -> Decimal | None:
    """Monthly tokens above which self-hosting beats an API at a blended price."""
    if price_per_million <= 0:
        return None
    return self_hosted_monthly_cost / price_per_million * ONE_MILLION


# --- Investment: benefit, ROI, NPV, payback ----------------------------------------------


def monthly_benefit(
    *, hours_saved_per_month: Decimal, hourly_rate: Decimal, other_monthly_benefit: Decimal = ZERO
) -> Decimal:
    return hours_saved_per_month * hourly_rate + other_monthly_benefit


@dataclass(frozen=True)
class Investment:
    """A use case as a cash flow: ``-one_time_cost`` at month 0, then the net each month."""

    one_time_cost: Decimal
    monthly_cost: Decimal
    monthly_benefit: Decimal
    horizon_months: int

    @property
    def monthly_net(self) -> Decimal:
        return self.monthly_benefit - self.monthly_cost

    @property
    def total_cost(self) -> Decimal:
        return self.one_time_cost + self.horizon_months * self.monthly_cost

    @property
    def total_benefit(self) -> Decimal:
        return self.horizon_months * self.monthly_benefit

    def cash_flows(self) -> list[Decimal]:
        return [-self.one_time_cost] + [self.monthly_net] * self.horizon_months


def roi_pct(investment: Investment) -> Decimal | None:
    """Return over the horizon in percent; ``None`` when nothing is spent."""
    total_cost = investment.total_cost
    if total_cost == 0:
        return None
    return (investment.total_benefit - total_cost) / total_cost * 100


def monthly_discount_rate(annual_rate: Decimal) -> Decimal:
    """The monthly rate that compounds to ``annual_rate`` over twelve months."""
    with localcontext() as ctx:
        ctx.prec = 34
        return (ONE + annual_rate) ** (ONE / 12) - ONE


def annuity_factor(annual_rate: Decimal, horizon_months: int) -> Decimal:
    """Present value of 1 a month for months 1..H: ``(1 − (1 + r)^−H) / r`` at the monthly rate ``r``."""
    rate = monthly_discount_rate(annual_rate)
    with localcontext() as ctx:
        ctx.prec = 34
        if rate == 0:
            return Decimal(horizon_months)
        return (ONE - (ONE + rate) ** -horizon_months) / rate


def npv(investment: Investment, *, annual_rate: Decimal) -> Decimal:
    """Net present value, month 0 undiscounted (as ``numpy_financial.npv``).

    The monthly flows form an annuity, so the sum has a closed form; the recompute
    runs the same expression set-based in SQL, with this module's annuity factor.
    """
    factor = annuity_factor(annual_rate, investment.horizon_months)
    with localcontext() as ctx:
        ctx.prec = 34
        return investment.monthly_net * factor - investment.one_time_cost


def payback_months(investment: Investment) -> int | None:
    """First month whose cumulative cash flow is at least zero; ``None`` if never within the horizon."""
    if investment.one_time_cost <= 0:
        return 0
    net = investment.monthly_net
    if net <= 0:
        return None
    months = math.ceil(investment.one_time_cost / net)
    return months if months <= investment.horizon_months else None


@dataclass(frozen=True)
class Appraisal:
    roi_pct: Decimal | None
    npv: Decimal
    payback_months: int | None


def appraise(investment: Investment, *, annual_rate: Decimal) -> Appraisal:
    return Appraisal(
        roi_pct=roi_pct(investment),
        npv=npv(investment, annual_rate=annual_rate),
        payback_months=payback_months(investment),
    )
