from decimal import Decimal

import numpy_financial as npf
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pricing.costing import (
    ApiUsage,
    Appraisal,
    GpuRental,
    Investment,
    OwnedHardware,
    TokenPrice,
    appraise,
    break_even_requests,
    break_even_tokens,
    convert,
    cost_per_request,
    currency_exponent,
    effective_price_per_million,
    monthly_api_cost,
    monthly_benefit,
    monthly_discount_rate,
    monthly_self_hosted_cost,
    monthly_tokens,
    npv,
    payback_months,
    quantize_money,
    roi_pct,
    to_cents,
)

GPT_4O = TokenPrice(input=Decimal("2.50"), output=Decimal("10.00"))
GPT_4O_CACHED = TokenPrice(input=Decimal("2.50"), output=Decimal("10.00"), cached_input=Decimal("1.25"))
LLAMA_3_70B = TokenPrice(input=Decimal("0.50"), output=Decimal("0.75"))
DEEPSEEK_R1 = TokenPrice(input=Decimal("0.55"), output=Decimal("2.19"))
GPT_5_2_PRO = TokenPrice(input=Decimal("21"), output=Decimal("168"))

SUPPORT_BOT = ApiUsage(requests=1_000_000, input_tokens=1_000, output_tokens=300)

SECOND_EXAMPLE = Investment(
    one_time_cost=Decimal("120000"),
    monthly_cost=Decimal("8000"),
    monthly_benefit=Decimal("20000"),
    horizon_months=24,
)

FOUR_H100 = GpuRental(gpu_count=4, gpu_hourly_cost=Decimal("2.50"))
LLAMA_3_1_70B_VLLM_TOKENS_PER_S = Decimal("3543")

PROPERTY_SETTINGS = settings(max_examples=1000, deadline=None)


def with_cache(usage: ApiUsage, cached_ratio: Decimal) -> ApiUsage:
    return ApiUsage(
        requests=usage.requests,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_ratio=cached_ratio,
    )


def with_requests(usage: ApiUsage, requests: int) -> ApiUsage:
    return ApiUsage(
        requests=requests,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_ratio=usage.cached_ratio,
    )


def make_investment(one_time: str, cost: str, benefit: str, horizon: int) -> Investment:
    return Investment(
        one_time_cost=Decimal(one_time),
        monthly_cost=Decimal(cost),
        monthly_benefit=Decimal(benefit),
        horizon_months=horizon,
    )


def sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def brute_force_payback(investment: Investment) -> int | None:
    cumulative = Decimal(0)
    for month, flow in enumerate(investment.cash_flows()):
        cumulative += flow
        if cumulative >= 0:
            return month
    return None


def fixed_point(max_units: int, places: int) -> st.SearchStrategy[Decimal]:
    return st.integers(min_value=0, max_value=max_units).map(lambda units: Decimal(units).scaleb(-places))


amounts = fixed_point(1_000_000_000, 2)
annual_rates = fixed_point(5_000, 4)
horizons = st.integers(min_value=1, max_value=120)
investments = st.builds(
    Investment,
    one_time_cost=amounts,
    monthly_cost=amounts,
    monthly_benefit=amounts,
    horizon_months=horizons,
)

prices_per_million = fixed_point(100_000, 2)
token_prices = st.builds(
    TokenPrice,
    input=prices_per_million,
    output=prices_per_million,
    cached_input=st.none() | prices_per_million,
)
cached_ratios = fixed_point(10_000, 4)
request_counts = st.integers(min_value=0, max_value=1_000_000_000)
usages = st.builds(
    ApiUsage,
    requests=request_counts,
    input_tokens=st.integers(min_value=0, max_value=200_000),
    output_tokens=st.integers(min_value=0, max_value=200_000),
    cached_ratio=cached_ratios,
)


# --- Worked example: the support bot -------------------------------------------------


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (GPT_4O, Decimal("5500.00")),
        (LLAMA_3_70B, Decimal("725.00")),
        (DEEPSEEK_R1, Decimal("1207.00")),
        (GPT_5_2_PRO, Decimal("71400.00")),
    ],
    ids=["gpt-4o", "llama-3-70b", "deepseek-r1", "gpt-5.2-pro"],
)
def test_support_bot_monthly_cost(price: TokenPrice, expected: Decimal) -> None:
    assert to_cents(monthly_api_cost(price, SUPPORT_BOT)) == expected


def test_swapping_gpt4o_for_llama_3_70b_saves_4775_a_month() -> None:
    saving = monthly_api_cost(GPT_4O, SUPPORT_BOT) - monthly_api_cost(LLAMA_3_70B, SUPPORT_BOT)
    assert to_cents(saving) == Decimal("4775.00")


# --- Cached input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "cached_ratio", "expected"),
    [
        (GPT_4O_CACHED, Decimal("0"), Decimal("5500.00")),
        (GPT_4O_CACHED, Decimal("0.5"), Decimal("4875.00")),
        (GPT_4O_CACHED, Decimal("1"), Decimal("4250.00")),
        (GPT_4O, Decimal("0.5"), Decimal("5500.00")),
        (GPT_4O, Decimal("1"), Decimal("5500.00")),
    ],
    ids=["no-cache", "half-cached", "all-cached", "no-cached-price-half", "no-cached-price-all"],
)
def test_cached_input_tokens_are_a_subset_of_input_tokens(
    price: TokenPrice, cached_ratio: Decimal, expected: Decimal
) -> None:
    assert to_cents(monthly_api_cost(price, with_cache(SUPPORT_BOT, cached_ratio))) == expected


def test_free_cached_input_leaves_only_uncached_input_and_output() -> None:
    price = TokenPrice(input=Decimal("2.50"), output=Decimal("10.00"), cached_input=Decimal("0"))
    assert to_cents(monthly_api_cost(price, with_cache(SUPPORT_BOT, Decimal("1")))) == Decimal("3000.00")
    assert to_cents(monthly_api_cost(price, with_cache(SUPPORT_BOT, Decimal("0.2")))) == Decimal("5000.00")


def test_cached_input_price_falls_back_to_input_price() -> None:
    assert GPT_4O.cached_input_or_input == Decimal("2.50")
    assert GPT_4O_CACHED.cached_input_or_input == Decimal("1.25")


def test_fixed_monthly_cost_is_added() -> None:
    cost = monthly_api_cost(GPT_4O_CACHED, with_cache(SUPPORT_BOT, Decimal("0.5")), fixed=Decimal("250.00"))
    assert to_cents(cost) == Decimal("5125.00")


def test_cost_per_request() -> None:
    assert cost_per_request(GPT_4O, SUPPORT_BOT) == Decimal("0.0055")


def test_monthly_tokens_count_cached_input_once() -> None:
    assert monthly_tokens(with_cache(SUPPORT_BOT, Decimal("0.5"))) == 1_300_000_000
    assert monthly_tokens(SUPPORT_BOT) == 1_300_000_000


# --- Self-hosting ---------------------------------------------------------------------


def test_gpu_rental_bills_every_gpu_for_730_hours_by_default() -> None:
    assert FOUR_H100.hours_per_month == Decimal("730")
    assert FOUR_H100.hourly_cost() == Decimal("10.00")
    assert FOUR_H100.monthly_cost() == Decimal("7300.00")


def test_gpu_rental_with_custom_hours() -> None:
    rental = GpuRental(gpu_count=2, gpu_hourly_cost=Decimal("3.00"), hours_per_month=Decimal("200"))
    assert rental.monthly_cost() == Decimal("1200.00")


def test_owned_hardware_amortises_capex_net_of_salvage() -> None:
    hardware = OwnedHardware(
        capex=Decimal("300000"),
        amortisation_months=36,
        salvage_ratio=Decimal("0.1"),
        power_monthly_cost=Decimal("1500"),
        operations_monthly_cost=Decimal("2000"),
    )
    assert hardware.monthly_cost() == Decimal("11000")
    assert hardware.hourly_cost() == Decimal("11000") / Decimal("730")


def test_owned_hardware_without_salvage_power_or_operations() -> None:
    hardware = OwnedHardware(capex=Decimal("360000"), amortisation_months=36)
    assert hardware.monthly_cost() == Decimal("10000")


def test_monthly_self_hosted_cost_adds_fixed_cost() -> None:
    assert monthly_self_hosted_cost(FOUR_H100) == Decimal("7300")
    assert monthly_self_hosted_cost(FOUR_H100, fixed=Decimal("500")) == Decimal("7800")


@pytest.mark.parametrize(
    ("utilisation", "expected"),
    [(Decimal("1"), Decimal("0.78")), (Decimal("0.3"), Decimal("2.61"))],
    ids=["fully-busy", "30-percent-busy"],
)
def test_llama_3_1_70b_on_four_h100_effective_price(utilisation: Decimal, expected: Decimal) -> None:
    price = effective_price_per_million(
        FOUR_H100.hourly_cost(),
        throughput_tokens_per_s=LLAMA_3_1_70B_VLLM_TOKENS_PER_S,
        utilisation=utilisation,
    )
    assert price is not None
    assert to_cents(price) == expected


@pytest.mark.parametrize(
    ("throughput", "utilisation"),
    [(Decimal("0"), Decimal("1")), (Decimal("3543"), Decimal("0"))],
    ids=["no-throughput", "never-busy"],
)
def test_effective_price_is_none_when_hardware_produces_nothing(throughput: Decimal, utilisation: Decimal) -> None:
    price = effective_price_per_million(
        FOUR_H100.hourly_cost(), throughput_tokens_per_s=throughput, utilisation=utilisation
    )
    assert price is None


@pytest.mark.parametrize(
    ("self_hosted_monthly_cost", "price", "expected"),
    [
        (Decimal("5500"), GPT_4O, Decimal("1000000")),
        (Decimal("7250"), LLAMA_3_70B, Decimal("10000000")),
    ],
    ids=["gpt-4o", "llama-3-70b"],
)
def test_break_even_requests(self_hosted_monthly_cost: Decimal, price: TokenPrice, expected: Decimal) -> None:
    assert break_even_requests(self_hosted_monthly_cost, price, SUPPORT_BOT) == expected


def test_break_even_requests_ignores_the_usage_request_count() -> None:
    one_request = with_requests(SUPPORT_BOT, 1)
    assert break_even_requests(Decimal("5500"), GPT_4O, one_request) == Decimal("1000000")


def test_break_even_requests_is_none_when_the_api_is_free() -> None:
    free = TokenPrice(input=Decimal("0"), output=Decimal("0"))
    assert break_even_requests(Decimal("7300"), free, SUPPORT_BOT) is None


def test_break_even_tokens() -> None:
    assert break_even_tokens(Decimal("7300"), Decimal("0.73")) == Decimal("10000000000")


def test_break_even_tokens_is_none_when_the_api_is_free() -> None:
    assert break_even_tokens(Decimal("7300"), Decimal("0")) is None


# --- Investment -----------------------------------------------------------------------


def test_monthly_benefit() -> None:
    benefit = monthly_benefit(
        hours_saved_per_month=Decimal("100"),
        hourly_rate=Decimal("50"),
        other_monthly_benefit=Decimal("1000"),
    )
    assert benefit == Decimal("6000")


def test_second_example_totals() -> None:
    assert SECOND_EXAMPLE.total_cost == Decimal("312000")
    assert SECOND_EXAMPLE.total_benefit == Decimal("480000")
    assert SECOND_EXAMPLE.monthly_net == Decimal("12000")
    assert SECOND_EXAMPLE.cash_flows() == [Decimal("-120000")] + [Decimal("12000")] * 24


def test_second_example_roi() -> None:
    roi = roi_pct(SECOND_EXAMPLE)
    assert roi is not None
    assert roi.quantize(Decimal("0.01")) == Decimal("53.85")


def test_second_example_payback() -> None:
    assert payback_months(SECOND_EXAMPLE) == 10


def test_second_example_npv_at_ten_percent() -> None:
    assert to_cents(npv(SECOND_EXAMPLE, annual_rate=Decimal("0.10"))) == Decimal("141174.81")


def test_second_example_npv_agrees_with_numpy_financial() -> None:
    rate = monthly_discount_rate(Decimal("0.10"))
    expected = npf.npv(float(rate), [float(flow) for flow in SECOND_EXAMPLE.cash_flows()])
    assert float(npv(SECOND_EXAMPLE, annual_rate=Decimal("0.10"))) == pytest.approx(expected, abs=0.005)


def test_excel_style_npv_discounts_month_zero_too() -> None:
    rate = monthly_discount_rate(Decimal("0.10"))
    excel_npv = npv(SECOND_EXAMPLE, annual_rate=Decimal("0.10")) / (1 + rate)
    assert to_cents(excel_npv) == Decimal("140057.97")


def test_appraise_combines_roi_npv_and_payback() -> None:
    appraisal = appraise(SECOND_EXAMPLE, annual_rate=Decimal("0.10"))
    assert appraisal == Appraisal(
        roi_pct=roi_pct(SECOND_EXAMPLE),
        npv=npv(SECOND_EXAMPLE, annual_rate=Decimal("0.10")),
        payback_months=10,
    )


def test_npv_at_zero_rate_is_the_undiscounted_sum() -> None:
    assert npv(SECOND_EXAMPLE, annual_rate=Decimal("0")) == Decimal("168000")


def test_roi_is_none_when_nothing_is_spent() -> None:
    assert roi_pct(make_investment("0", "0", "100", 12)) is None


def test_payback_is_immediate_without_one_time_cost() -> None:
    assert payback_months(make_investment("0", "500", "100", 12)) == 0


@pytest.mark.parametrize("benefit", ["8000", "7999.99"], ids=["net-zero", "net-negative"])
def test_payback_is_none_when_the_use_case_never_earns(benefit: str) -> None:
    assert payback_months(make_investment("120000", "8000", benefit, 24)) is None


@pytest.mark.parametrize(
    ("one_time_cost", "horizon_months", "expected"),
    [
        ("120000", 10, 10),
        ("120000", 9, None),
        ("120000.01", 11, 11),
        ("120000.01", 10, None),
        ("119999.99", 10, 10),
    ],
    ids=[
        "exact-at-horizon",
        "exact-beyond-horizon",
        "one-cent-over",
        "one-cent-over-beyond",
        "one-cent-under",
    ],
)
def test_payback_boundaries(one_time_cost: str, horizon_months: int, expected: int | None) -> None:
    assert payback_months(make_investment(one_time_cost, "8000", "20000", horizon_months)) == expected


def test_payback_month_is_the_one_whose_cumulative_cash_flow_reaches_exactly_zero() -> None:
    assert sum(SECOND_EXAMPLE.cash_flows()[:11]) == 0
    assert payback_months(SECOND_EXAMPLE) == 10


@pytest.mark.parametrize("annual_rate", ["0", "0.08", "0.10", "0.5"])
def test_monthly_discount_rate_compounds_to_the_annual_rate(annual_rate: str) -> None:
    rate = monthly_discount_rate(Decimal(annual_rate))
    assert abs((1 + rate) ** 12 - (1 + Decimal(annual_rate))) < Decimal("1e-20")


def test_monthly_discount_rate_is_zero_at_zero_annual_rate() -> None:
    assert monthly_discount_rate(Decimal("0")) == 0


# --- Currency -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("1234.565", "USD", "1234.57"),
        ("1234.564", "USD", "1234.56"),
        ("-1234.565", "USD", "-1234.57"),
        ("1234.5", "JPY", "1235"),
        ("1234.4", "JPY", "1234"),
        ("1234.5", "jpy", "1235"),
        ("1234.565", "CHF", "1234.57"),
    ],
    ids=[
        "usd-half-up",
        "usd-down",
        "usd-negative",
        "jpy-half-up",
        "jpy-down",
        "lowercase-code",
        "unknown-currency",
    ],
)
def test_quantize_money(amount: str, currency: str, expected: str) -> None:
    result = quantize_money(Decimal(amount), currency)
    assert result == Decimal(expected)
    assert result.as_tuple().exponent == Decimal(expected).as_tuple().exponent


def test_quantize_money_takes_amounts_longer_than_the_default_precision() -> None:
    # 10^18 a month converted at a rate of 10^7: 26 digits before the cents.
    assert str(quantize_money(Decimal("10000000000000000000000000.005"), "USD")) == "10000000000000000000000000.01"


def test_to_cents_rounds_half_up() -> None:
    assert to_cents(Decimal("0.005")) == Decimal("0.01")
    assert to_cents(Decimal("0.004")) == Decimal("0.00")


def test_convert_usd_to_jpy() -> None:
    yen = convert(Decimal("5500.00"), Decimal("150.123"))
    assert yen == Decimal("825676.50")
    assert quantize_money(yen, "JPY") == Decimal("825677")


# --- Properties -----------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(investment=investments, annual_rate=annual_rates)
@example(investment=SECOND_EXAMPLE, annual_rate=Decimal("0.10"))
def test_npv_agrees_with_numpy_financial(investment: Investment, annual_rate: Decimal) -> None:
    rate = monthly_discount_rate(annual_rate)
    expected = npf.npv(float(rate), [float(flow) for flow in investment.cash_flows()])
    assert abs(npv(investment, annual_rate=annual_rate) - Decimal(expected)) <= Decimal("0.01")


@PROPERTY_SETTINGS
@given(investment=investments)
@example(investment=SECOND_EXAMPLE)
@example(investment=make_investment("120000", "8000", "20000", 10))
@example(investment=make_investment("120000", "8000", "20000", 9))
def test_payback_matches_brute_force(investment: Investment) -> None:
    assert payback_months(investment) == brute_force_payback(investment)


@PROPERTY_SETTINGS
@given(price=token_prices, usage=usages, more_requests=request_counts, fixed=amounts)
def test_api_cost_is_linear_in_requests_and_never_negative(
    price: TokenPrice, usage: ApiUsage, more_requests: int, fixed: Decimal
) -> None:
    cost = monthly_api_cost(price, usage)
    more = monthly_api_cost(price, with_requests(usage, more_requests))
    combined = monthly_api_cost(price, with_requests(usage, usage.requests + more_requests))
    assert combined == cost + more
    assert cost == usage.requests * cost_per_request(price, usage)
    assert cost >= 0
    assert monthly_api_cost(price, usage, fixed=fixed) == cost + fixed


@PROPERTY_SETTINGS
@given(input_price=prices_per_million, output_price=prices_per_million, usage=usages)
def test_cached_price_equal_to_input_price_changes_nothing(
    input_price: Decimal, output_price: Decimal, usage: ApiUsage
) -> None:
    cached = TokenPrice(input=input_price, output=output_price, cached_input=input_price)
    uncached = TokenPrice(input=input_price, output=output_price)
    assert monthly_api_cost(cached, usage) == monthly_api_cost(uncached, with_cache(usage, Decimal("0")))


@PROPERTY_SETTINGS
@given(investment=investments)
def test_roi_sign_matches_net_return(investment: Investment) -> None:
    roi = roi_pct(investment)
    if investment.total_cost == 0:
        assert roi is None
    else:
        assert roi is not None
        assert sign(roi) == sign(investment.total_benefit - investment.total_cost)


currencies = st.sampled_from(["USD", "EUR", "JPY", "KRW", "BHD", "CHF"])
signed_amounts = st.integers(min_value=-(10**15), max_value=10**15).map(lambda units: Decimal(units).scaleb(-6))
rates = st.integers(min_value=1, max_value=10**8).map(lambda units: Decimal(units).scaleb(-4))
hardware = st.builds(
    OwnedHardware,
    capex=amounts,
    amortisation_months=st.integers(min_value=1, max_value=120),
    salvage_ratio=fixed_point(10_000, 4),
    power_monthly_cost=amounts,
    operations_monthly_cost=amounts,
)
rentals = st.builds(
    GpuRental,
    gpu_count=st.integers(min_value=1, max_value=64),
    gpu_hourly_cost=fixed_point(100_000, 4),
    hours_per_month=fixed_point(744, 0),
)
TOLERANCE = Decimal("1e-18")  # Relative: Decimal division keeps 28 significant digits.


@PROPERTY_SETTINGS
@given(self_hosted=amounts, price=token_prices, usage=usages)
def test_at_the_break_even_volume_the_api_costs_what_self_hosting_does(
    self_hosted: Decimal, price: TokenPrice, usage: ApiUsage
) -> None:
    requests = break_even_requests(self_hosted, price, usage)
    per_request = cost_per_request(price, usage)
    if per_request == 0:
        assert requests is None
        return
    assert requests is not None and requests >= 0
    assert abs(requests * per_request - self_hosted) <= self_hosted * TOLERANCE + TOLERANCE


@PROPERTY_SETTINGS
@given(self_hosted=amounts, price_per_million=prices_per_million)
def test_break_even_tokens_priced_at_the_blend_cost_what_self_hosting_does(
    self_hosted: Decimal, price_per_million: Decimal
) -> None:
    tokens = break_even_tokens(self_hosted, price_per_million)
    if price_per_million == 0:
        assert tokens is None
        return
    assert abs(tokens * price_per_million / 1_000_000 - self_hosted) <= self_hosted * TOLERANCE + TOLERANCE


@PROPERTY_SETTINGS
@given(amount=signed_amounts, other=signed_amounts, currency=currencies)
def test_quantized_money_is_within_half_a_minor_unit_idempotent_and_monotonic(
    amount: Decimal, other: Decimal, currency: str
) -> None:
    rounded = quantize_money(amount, currency)
    unit = Decimal(1).scaleb(-currency_exponent(currency))
    assert rounded.as_tuple().exponent == -currency_exponent(currency)
    assert abs(rounded - amount) <= unit / 2
    assert quantize_money(rounded, currency) == rounded
    low, high = sorted((amount, other))
    assert quantize_money(low, currency) <= quantize_money(high, currency)


@PROPERTY_SETTINGS
@given(amount=signed_amounts, rate=rates)
def test_converting_there_and_back_returns_the_amount(amount: Decimal, rate: Decimal) -> None:
    assert abs(convert(convert(amount, rate), 1 / rate) - amount) <= abs(amount) * TOLERANCE + TOLERANCE


@PROPERTY_SETTINGS
@given(investment=investments, low=annual_rates, high=annual_rates)
def test_npv_falls_as_the_discount_rate_rises_when_every_month_earns(
    investment: Investment, low: Decimal, high: Decimal
) -> None:
    low, high = sorted((low, high))
    if investment.monthly_net >= 0:
        assert npv(investment, annual_rate=high) <= npv(investment, annual_rate=low) + Decimal("1e-12")
    else:
        assert npv(investment, annual_rate=high) >= npv(investment, annual_rate=low) - Decimal("1e-12")


@PROPERTY_SETTINGS
@given(owned=hardware, rental=rentals, fixed=amounts)
@example(  # Once found: 13.91 / 11 summed in two orders differs in the 28th significant digit.
    owned=OwnedHardware(
        capex=Decimal("13.91"),
        amortisation_months=11,
        power_monthly_cost=Decimal("98.74"),
        operations_monthly_cost=Decimal("900.00"),
    ),
    rental=GpuRental(gpu_count=1, gpu_hourly_cost=Decimal("0"), hours_per_month=Decimal("0")),
    fixed=Decimal("0"),
)
def test_self_hosted_costs_add_up(owned: OwnedHardware, rental: GpuRental, fixed: Decimal) -> None:
    running = owned.power_monthly_cost + owned.operations_monthly_cost
    most = running + owned.capex / owned.amortisation_months
    # Summed in another order than monthly_cost() does: the 28th significant digit may differ.
    assert running <= owned.monthly_cost() <= most + most * TOLERANCE
    assert rental.monthly_cost() == rental.hourly_cost() * rental.hours_per_month
    assert monthly_self_hosted_cost(rental, fixed=fixed) == rental.monthly_cost() + fixed


@PROPERTY_SETTINGS
@given(hourly=fixed_point(10_000_000, 4), throughput=fixed_point(1_000_000, 1), utilisation=fixed_point(10_000, 4))
def test_doubling_the_utilisation_halves_the_effective_price(
    hourly: Decimal, throughput: Decimal, utilisation: Decimal
) -> None:
    price = effective_price_per_million(hourly, throughput_tokens_per_s=throughput, utilisation=utilisation)
    if throughput == 0 or utilisation == 0:
        assert price is None
        return
    doubled = effective_price_per_million(hourly, throughput_tokens_per_s=throughput, utilisation=utilisation * 2)
    assert abs(doubled * 2 - price) <= price * TOLERANCE + TOLERANCE


@PROPERTY_SETTINGS
@given(hours=amounts, rate=amounts, other=amounts, investment=investments)
def test_benefit_is_linear_and_payback_falls_within_the_horizon(
    hours: Decimal, rate: Decimal, other: Decimal, investment: Investment
) -> None:
    benefit = monthly_benefit(hours_saved_per_month=hours, hourly_rate=rate, other_monthly_benefit=other)
    assert benefit == monthly_benefit(hours_saved_per_month=hours, hourly_rate=rate) + other
    month = payback_months(investment)
    assert month is None or 0 <= month <= investment.horizon_months
