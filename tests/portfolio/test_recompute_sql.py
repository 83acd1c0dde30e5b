"""The production recompute stores exactly the figures of the pure-Python maths, to the cent.

On PostgreSQL the recompute runs set-based in SQL (``services._recompute_chunk_sql``); on
SQLite it runs in Python. The same generated portfolios are checked on both against
``costs.use_case_figures`` (``pricing.costing`` underneath): every use case figure, every
deployment cost, every snapshot and its breakdown.
"""

import datetime
import random
from decimal import Decimal

import pytest
from django.db import connection

from portfolio import costs, services
from portfolio.models import CostSnapshot, Deployment, UseCase
from pricing.models import ExchangeRate, GpuRate, LanguageModel, Price, SelfHostingProfile
from pricing.selectors import price_book
from tests.factories import (
    DeploymentFactory,
    ExchangeRateFactory,
    GpuRateFactory,
    LanguageModelFactory,
    PriceFactory,
    TeamFactory,
    UseCaseFactory,
)

pytestmark = pytest.mark.django_db

FIGURES = ["monthly_cost", "monthly_benefit", "roi_pct", "npv", "payback_months"]
START = datetime.date(2025, 1, 1)


@pytest.fixture(autouse=True)
def only_the_path_of_this_database(monkeypatch):
    """On PostgreSQL, prove the SQL path runs: the Python one is not allowed to."""
    if connection.vendor == "postgresql":

        def python_path(*args, **kwargs):
            raise AssertionError("PostgreSQL must recompute in SQL")

        monkeypatch.setattr(services, "_recompute_chunk_python", python_path)


def money(rng: random.Random, high: int, places: int = 2) -> Decimal:
    return Decimal(rng.randint(0, high * 10**places)).scaleb(-places)


def make_catalogue(rng: random.Random, teams):
    """Models with public prices (some in CHF, which no rate converts), contract prices in USD and JPY,
    one model with no price, GPU rates."""
    open_models = list(LanguageModel.objects.filter(open_weights=True, prices__isnull=False).distinct())
    models = []
    for n in range(4):
        model = LanguageModelFactory(key=f"test/gen-{n}", open_weights=n % 2 == 0)
        PriceFactory(
            model=model,
            input_per_million=money(rng, 30, 6),
            output_per_million=money(rng, 90, 6),
            cached_input_per_million=rng.choice([None, money(rng, 3, 6)]),
            currency=rng.choice(["USD", "USD", "JPY", "CHF"]),
            effective_from=START,
        )
        models.append(model)
    unpriced = LanguageModelFactory(key="test/unpriced", open_weights=True)
    for team in teams[:2]:
        PriceFactory(
            model=models[0],
            team=team,
            input_per_million=money(rng, 20, 6),
            output_per_million=money(rng, 60, 6),
            currency="USD",
            effective_from=START,
            source=Price.Source.CONTRACT,
        )
    PriceFactory(
        model=models[1],
        team=teams[2],
        input_per_million=money(rng, 3000, 6),
        output_per_million=money(rng, 9000, 6),
        currency="JPY",
        effective_from=START,
        source=Price.Source.CONTRACT,
    )
    GpuRateFactory(gpu_type="T4", hourly_cost=money(rng, 3, 4), effective_from=START)
    GpuRateFactory(gpu_type="JP-GPU", hourly_cost=money(rng, 500, 4), currency="JPY", effective_from=START)
    return models + open_models, unpriced


def make_use_case(rng: random.Random, team, models, unpriced, profiles):
    currency = rng.choice(["USD", "JPY", "USD", "JPY", "CHF"])  # No rate converts CHF.
    scale = 150 if currency == "JPY" else 1
    use_case = UseCaseFactory(
        team=team,
        currency=currency,
        hours_saved_per_month=rng.choice([Decimal(0), money(rng, 900)]),
        hourly_rate=money(rng, 150) * scale,
        other_monthly_benefit=rng.choice([Decimal(0), money(rng, 20_000) * scale]),
        one_time_cost=rng.choice([Decimal(0), money(rng, 300_000) * scale]),
        monthly_fixed_cost=rng.choice([Decimal(0), money(rng, 50_000) * scale]),  # often a negative net
        horizon_months=rng.choice([1, 2, 12, 24, 36, 60, 120, rng.randint(1, 600)]),
    )
    for _ in range(rng.randint(0, 4)):
        status = rng.choice(Deployment.Status.values)
        fixed = rng.choice([Decimal(0), money(rng, 800)])
        model = rng.choice(models + [unpriced])
        if model.open_weights and rng.random() < 0.4:
            kind = rng.choice(["own", "catalogue", "missing", "profile"])
            fields = {"gpu_count": rng.randint(1, 16), "hours_per_month": money(rng, 744)}
            if kind == "own":
                fields["gpu_hourly_cost"] = money(rng, 5, 4) * scale
            elif kind == "catalogue":
                fields["gpu_type"] = rng.choice(["T4", "JP-GPU", "H100 80GB"])
            elif kind == "missing":
                fields["gpu_type"] = "unknown GPU"
            else:
                fields["self_hosting_profile"] = rng.choice(profiles)
            DeploymentFactory(
                use_case=use_case,
                model=model,
                hosting=Deployment.Hosting.SELF_HOSTED,
                status=status,
                monthly_fixed_cost=fixed,
                **fields,
            )
        else:
            DeploymentFactory(
                use_case=use_case,
                model=model,
                status=status,
                monthly_fixed_cost=fixed,
                requests_per_month=rng.choice([0, rng.randint(1, 5_000), rng.randint(1, 10**8)]),
                avg_input_tokens=rng.randint(0, 20_000),
                avg_output_tokens=rng.randint(0, 5_000),
                cached_input_ratio=rng.choice([Decimal(0), Decimal(1), money(rng, 1, 4)]),
            )
    return use_case


def expected_figures(use_case_ids, *, annual_rate):
    book = price_book()
    expected = {}
    for use_case in UseCase.objects.filter(pk__in=use_case_ids).select_related("team"):
        deployments = list(
            use_case.deployments.select_related("model", "self_hosting_profile", "use_case").order_by("pk")
        )
        expected[use_case.pk] = costs.use_case_figures(use_case, deployments, book, annual_rate=annual_rate)
    return expected


def assert_stored(expected):
    for use_case in UseCase.objects.filter(pk__in=expected):
        figures = expected[use_case.pk]
        assert {name: getattr(use_case, name) for name in FIGURES} == figures.as_fields(), use_case.pk
        assert use_case.needs_recompute is False and use_case.computed_at is not None
        stored = dict(Deployment.objects.filter(use_case=use_case).values_list("pk", "monthly_cost"))
        assert stored == figures.deployment_costs, use_case.pk
        # A cost that cannot be priced is not passed off as computed.
        uncomputed = set(
            Deployment.objects.filter(use_case=use_case, computed_at__isnull=True).values_list("pk", flat=True)
        )
        assert uncomputed == {pk for pk, cost in figures.deployment_costs.items() if cost is None}, use_case.pk


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("annual_rate", ["0.08", "0", "0.10"])
def test_the_recompute_stores_the_python_figures_to_the_cent(seed, annual_rate, settings):
    settings.ANNUAL_DISCOUNT_RATE = Decimal(annual_rate)
    settings.RECOMPUTE_CHUNK_SIZE = 7  # several chunks, and a last one that is not full
    rng = random.Random(seed)
    teams = [TeamFactory(slug=f"gen-{n}") for n in range(4)]
    if seed % 3 == 1:
        ExchangeRate.objects.all().delete()  # JPY and USD cannot convert: errors, not guesses
    elif seed % 3 == 2:
        # A newer JPY→USD row wins over the shipped USD→JPY one: its inverse converts.
        ExchangeRateFactory(base="JPY", quote="USD", rate=Decimal("0.00651234"), as_of=datetime.date(2025, 6, 1))
    models, unpriced = make_catalogue(rng, teams)
    profiles = list(SelfHostingProfile.objects.all())
    ids = [make_use_case(rng, rng.choice(teams), models, unpriced, profiles).pk for _ in range(30)]
    expected = expected_figures(ids, annual_rate=Decimal(annual_rate))

    result = services.recompute_use_cases(use_case_ids=ids, reason="generated")

    assert result.use_cases == len(ids) and sorted(result.changed) == sorted(ids)
    assert_stored(expected)
    for snapshot in CostSnapshot.objects.filter(use_case_id__in=ids):
        figures = expected[snapshot.use_case_id]
        assert {name: getattr(snapshot, name) for name in FIGURES} == figures.as_fields()
        assert snapshot.breakdown == figures.breakdown
        assert (snapshot.previous_monthly_cost, snapshot.reason, snapshot.priced_on) == (
            None,
            "generated",
            price_book().on,
        )

    # Nothing changed: no snapshot, the same figures.
    assert services.recompute_use_cases(use_case_ids=ids).changed == []
    assert CostSnapshot.objects.filter(use_case_id__in=ids).count() == len(ids)
    assert_stored(expected)


def test_a_price_change_snapshots_before_and_after_with_the_new_price_row(team, gpt4o):
    jpy = UseCaseFactory(
        team=team,
        currency="JPY",
        horizon_months=24,
        one_time_cost=Decimal("1000000"),
        other_monthly_benefit=Decimal("900000"),
    )
    DeploymentFactory(
        use_case=jpy,
        model=gpt4o,
        requests_per_month=123_457,
        avg_input_tokens=777,
        avg_output_tokens=333,
        cached_input_ratio=Decimal("0.3333"),
    )
    services.recompute_use_case(use_case_id=jpy.pk)
    before = UseCase.objects.get(pk=jpy.pk).monthly_cost
    new = PriceFactory(
        model=gpt4o,
        input_per_million=Decimal("1.234567"),
        output_per_million=Decimal("7.654321"),
        cached_input_per_million=Decimal("0.5"),
        effective_from=datetime.date(2025, 2, 1),
    )
    expected = expected_figures([jpy.pk], annual_rate=Decimal("0.08"))

    assert services.recompute_use_cases(use_case_ids=[jpy.pk]).changed == [jpy.pk]

    assert_stored(expected)
    latest = CostSnapshot.objects.filter(use_case=jpy).latest()
    assert latest.previous_monthly_cost == before
    assert latest.breakdown == expected[jpy.pk].breakdown
    assert latest.breakdown[0]["price_id"] == new.pk
    assert latest.breakdown[0]["exchange_rate_id"] == ExchangeRate.objects.get().pk


@pytest.mark.parametrize(
    ("fields", "figure", "value"),
    [
        # ROI of exactly -0.005 % and +0.005 %: half away from zero, as ROUND_HALF_UP.
        (
            {"monthly_fixed_cost": Decimal("20000"), "other_monthly_benefit": Decimal("19999")},
            "roi_pct",
            Decimal("-0.01"),
        ),
        (
            {"monthly_fixed_cost": Decimal("20000"), "other_monthly_benefit": Decimal("20001")},
            "roi_pct",
            Decimal("0.01"),
        ),
        # Nothing spent: no ROI; nothing to pay back: month 0.
        ({}, "roi_pct", None),
        ({"other_monthly_benefit": Decimal("5")}, "payback_months", 0),
        # A net that never pays back, and one that pays back in the very last month.
        ({"one_time_cost": Decimal("100"), "monthly_fixed_cost": Decimal("10")}, "payback_months", None),
        (
            {"one_time_cost": Decimal("120"), "other_monthly_benefit": Decimal("10"), "horizon_months": 12},
            "payback_months",
            12,
        ),
        (
            {"one_time_cost": Decimal("121"), "other_monthly_benefit": Decimal("10"), "horizon_months": 12},
            "payback_months",
            None,
        ),
    ],
)
def test_edge_figures(team, fields, figure, value):
    use_case = UseCaseFactory(team=team, **fields)
    services.recompute_use_case(use_case_id=use_case.pk)
    assert getattr(UseCase.objects.get(pk=use_case.pk), figure) == value


@pytest.mark.parametrize(
    ("currency", "tokens", "cost"),
    [("USD", 5_000, "0.01"), ("USD", 4_999, "0.00"), ("JPY", 500_000, "1"), ("JPY", 499_999, "0")],
)
def test_half_a_minor_unit_rounds_up(team, currency, tokens, cost):
    model = LanguageModelFactory()
    PriceFactory(model=model, input_per_million=Decimal("1"), output_per_million=Decimal("0"), currency=currency)
    use_case = UseCaseFactory(team=team, currency=currency)
    deployment = DeploymentFactory(use_case=use_case, model=model, requests_per_month=1, avg_input_tokens=tokens)

    services.recompute_use_case(use_case_id=use_case.pk)

    assert Deployment.objects.get(pk=deployment.pk).monthly_cost == Decimal(cost)
    assert UseCase.objects.get(pk=use_case.pk).monthly_cost == Decimal(cost)


def test_a_gpu_rate_in_another_currency_is_converted(team, llama70b):
    GpuRate.objects.create(gpu_type="JP-GPU", hourly_cost=Decimal("300"), currency="JPY", effective_from=START)
    use_case = UseCaseFactory(team=team)
    DeploymentFactory(
        use_case=use_case,
        model=llama70b,
        hosting=Deployment.Hosting.SELF_HOSTED,
        gpu_type="JP-GPU",
        gpu_count=2,
        hours_per_month=Decimal("100"),
    )
    expected = expected_figures([use_case.pk], annual_rate=Decimal("0.08"))

    services.recompute_use_case(use_case_id=use_case.pk)

    assert_stored(expected)
    assert UseCase.objects.get(pk=use_case.pk).monthly_cost == Decimal("400.00")  # 60,000 yen at 150
