"""Pricing of portfolio rows: a deployment or a use case costed from a ``PriceBook``.

Shared by the recompute (services) and the read-only what-if (selectors); the
arithmetic itself is ``pricing.costing``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _

from portfolio.models import Deployment, UseCase
from pricing import costing
from pricing.models import SelfHostingProfile
from pricing.selectors import MissingRate, PriceBook


class CostUnavailable(Exception):
    """A deployment cannot be priced from the catalogue in force."""


def no_rate_message(source: str, target: str, on: datetime.date) -> str:
    return _("No exchange rate from %(source)s to %(target)s in force on %(date)s.") % {
        "source": source,
        "target": target,
        "date": on,
    }


@dataclass(frozen=True)
class DeploymentCost:
    monthly_cost: Decimal | None
    line: dict[str, Any]


def _converted(amount: Decimal, source: str, target: str, book: PriceBook, used: dict[str, Any]) -> Decimal:
    try:
        rate = book.rate(source, target)
    except MissingRate:
        # Not priced at all rather than priced at nothing: the cost stays unknown until a rate exists.
        raise CostUnavailable(no_rate_message(source, target, book.on)) from None
    if rate.id is not None:
        used["exchange_rate_id"] = rate.id
    return costing.convert(amount, rate.rate)


def owned_hardware(profile: SelfHostingProfile) -> costing.OwnedHardware:
    """The cost model of a profile's own hardware (one with a ``capex``)."""
    return costing.OwnedHardware(
        capex=profile.capex,
        amortisation_months=profile.amortisation_months,
        salvage_ratio=profile.salvage_ratio,
        power_monthly_cost=profile.power_monthly_cost,
        operations_monthly_cost=profile.operations_monthly_cost,
        hours_per_month=profile.hours_per_month,
    )


def _hardware(
    deployment: Deployment, book: PriceBook, line: dict[str, Any]
) -> tuple[costing.GpuRental | costing.OwnedHardware, str]:
    """The deployment's hardware cost model and the currency it is priced in."""
    profile = deployment.self_hosting_profile
    if profile is not None:
        line["self_hosting_profile_id"] = profile.pk
        if profile.capex is not None:
            return owned_hardware(profile), profile.currency
        gpu_type, gpu_count, hourly, hours, currency = (
            profile.gpu_type,
            profile.gpu_count,
            profile.gpu_hourly_cost,
            profile.hours_per_month,
            profile.currency,
        )
    else:
        gpu_type, gpu_count, hourly, hours, currency = (
            deployment.gpu_type,
            deployment.gpu_count,
            deployment.gpu_hourly_cost,
            deployment.hours_per_month,
            deployment.use_case.currency,
        )
    if hourly is None:
        rate = book.gpu_rate(gpu_type)
        if rate is None:
            raise CostUnavailable(
                _("No GPU rate for %(gpu)s in force on %(date)s.") % {"gpu": gpu_type, "date": book.on}
            )
        hourly, currency = rate.hourly_cost, rate.currency
        line["gpu_rate_id"] = rate.id
    return costing.GpuRental(gpu_count=gpu_count, gpu_hourly_cost=hourly, hours_per_month=hours), currency


def deployment_cost(deployment: Deployment, book: PriceBook, *, currency: str) -> DeploymentCost:
    """Monthly cost of one deployment in ``currency``, with the catalogue rows it used."""
    line: dict[str, Any] = {"deployment_id": deployment.pk, "model": deployment.model.key, "status": deployment.status}
    fixed = deployment.monthly_fixed_cost
    try:
        if deployment.hosting == Deployment.Hosting.SELF_HOSTED:
            hardware, hardware_currency = _hardware(deployment, book, line)
            variable = _converted(hardware.monthly_cost(), hardware_currency, currency, book, line)
        else:
            price = book.price(deployment.model_id, deployment.use_case.team_id)
            if price is None:
                raise CostUnavailable(
                    _("No price for %(model)s in force on %(date)s.") % {"model": deployment.model.key, "date": book.on}
                )
            line["price_id"] = price.id
            usage = costing.ApiUsage(
                requests=deployment.requests_per_month,
                input_tokens=deployment.avg_input_tokens,
                output_tokens=deployment.avg_output_tokens,
                cached_ratio=deployment.cached_input_ratio,
            )
            variable = _converted(
                costing.monthly_api_cost(price.token_price, usage), price.currency, currency, book, line
            )
    except CostUnavailable as error:
        line["error"] = str(error)
        return DeploymentCost(monthly_cost=None, line=line)
    cost = variable + fixed
    line["monthly_cost"] = str(costing.quantize_money(cost, currency))
    return DeploymentCost(monthly_cost=cost, line=line)


@dataclass(frozen=True)
class UseCaseFigures:
    monthly_cost: Decimal
    monthly_benefit: Decimal
    roi_pct: Decimal | None
    npv: Decimal
    payback_months: int | None
    deployment_costs: dict[int, Decimal | None]
    breakdown: list[dict[str, Any]]

    def as_fields(self) -> dict[str, Any]:
        return {
            "monthly_cost": self.monthly_cost,
            "monthly_benefit": self.monthly_benefit,
            "roi_pct": self.roi_pct,
            "npv": self.npv,
            "payback_months": self.payback_months,
        }


def use_case_figures(
    use_case: UseCase, deployments: Iterable[Deployment], book: PriceBook, *, annual_rate: Decimal
) -> UseCaseFigures:
    """Cost, benefit, ROI, NPV and payback of a use case; only active deployments count."""
    currency = use_case.currency
    monthly_cost = use_case.monthly_fixed_cost
    deployment_costs: dict[int, Decimal | None] = {}
    breakdown = []
    for deployment in deployments:
        cost = deployment_cost(deployment, book, currency=currency)
        deployment_costs[deployment.pk] = (
            None if cost.monthly_cost is None else costing.quantize_money(cost.monthly_cost, currency)
        )
        breakdown.append(cost.line)
        if deployment.status == Deployment.Status.ACTIVE and cost.monthly_cost is not None:
            monthly_cost += cost.monthly_cost
    benefit = costing.monthly_benefit(
        hours_saved_per_month=use_case.hours_saved_per_month,
        hourly_rate=use_case.hourly_rate,
        other_monthly_benefit=use_case.other_monthly_benefit,
    )
    appraisal = costing.appraise(
        costing.Investment(
            one_time_cost=use_case.one_time_cost,
            monthly_cost=monthly_cost,
            monthly_benefit=benefit,
            horizon_months=use_case.horizon_months,
        ),
        annual_rate=annual_rate,
    )
    return UseCaseFigures(
        monthly_cost=costing.quantize_money(monthly_cost, currency),
        monthly_benefit=costing.quantize_money(benefit, currency),
        roi_pct=None if appraisal.roi_pct is None else costing.to_cents(appraisal.roi_pct),
        npv=costing.quantize_money(appraisal.npv, currency),
        payback_months=appraisal.payback_months,
        deployment_costs=deployment_costs,
        breakdown=breakdown,
    )
