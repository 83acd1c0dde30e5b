"""Reads of the portfolio, scoped to what a user may see."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, F, Prefetch, Q, QuerySet, Sum, Value

from portfolio import costs
from portfolio.models import (
    MANAGERS_GROUP,
    CostSnapshot,
    Deployment,
    Membership,
    PortfolioSnapshot,
    ProofOfConcept,
    RecomputeJob,
    Team,
    UseCase,
)
from pricing import costing
from pricing.models import LanguageModel, Price
from pricing.selectors import PriceBook, price_book

User = AbstractBaseUser | AnonymousUser


def is_portfolio_manager(user: User) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    # Cached on the instance: asked on every request, answered by one query.
    if not hasattr(user, "_is_portfolio_manager"):
        user._is_portfolio_manager = user.groups.filter(name=MANAGERS_GROUP).exists()
    return user._is_portfolio_manager


def team_ids_of(user: User, *, role: str | None = None) -> QuerySet:
    memberships = Membership.objects.filter(user_id=user.pk)
    if role is not None:
        memberships = memberships.filter(role=role)
    return memberships.values("team_id")


def visible_teams(*, user: User) -> QuerySet[Team]:
    if is_portfolio_manager(user):
        return Team.objects.all()
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(pk__in=team_ids_of(user))


def visible_use_cases(*, user: User) -> QuerySet[UseCase]:
    # Scoping lives here, so no view can forget it.
    use_cases = UseCase.objects.select_related("team", "owner")
    if is_portfolio_manager(user):
        return use_cases
    if not user.is_authenticated:
        return use_cases.none()
    return use_cases.filter(team_id__in=team_ids_of(user))


def visible_deployments(*, user: User) -> QuerySet[Deployment]:
    return Deployment.objects.filter(use_case__in=visible_use_cases(user=user).values("pk")).select_related(
        "use_case__team", "model__licence", "self_hosting_profile"
    )


def visible_pocs(*, user: User) -> QuerySet[ProofOfConcept]:
    return ProofOfConcept.objects.filter(use_case__in=visible_use_cases(user=user).values("pk")).select_related(
        "use_case__team", "model"
    )


def use_case_detail(*, user: User) -> QuerySet[UseCase]:
    return visible_use_cases(user=user).prefetch_related(
        Prefetch("deployments", queryset=Deployment.objects.select_related("model__licence", "self_hosting_profile")),
        Prefetch("pocs", queryset=ProofOfConcept.objects.select_related("model")),
    )


# --- Portfolio figures -----------------------------------------------------------------


def _in_reporting_currency(rows, *, book: PriceBook, currency: str, sums: Sequence[str]) -> dict:
    """Fold rows grouped by (key, currency) into totals per key in ``currency``."""
    totals: dict = {}
    for row in rows:
        rate = book.rate(row["currency"], currency).rate
        bucket = totals.setdefault(row["key"], {"count": 0, **{name: Decimal(0) for name in sums}})
        bucket["count"] += row["count"]
        for name in sums:
            bucket[name] += (row[name] or Decimal(0)) * rate
    return {
        key: {name: value if name == "count" else costing.quantize_money(value, currency) for name, value in bucket.items()}
        for key, bucket in totals.items()
    }


def portfolio_summary(*, user: User, currency: str, book: PriceBook | None = None) -> dict[str, Any]:
    """Totals by team, stage and model in ``currency``, over the use cases ``user`` may see."""
    return summarise(use_cases=visible_use_cases(user=user), currency=currency, book=book)


def summarise(*, use_cases: QuerySet[UseCase], currency: str, book: PriceBook | None = None) -> dict[str, Any]:
    """Totals by team, stage and model in ``currency``.

    Aggregated by the database, grouped by currency, then converted at the rates in force.
    """
    book = book or price_book()
    use_cases = use_cases.order_by()
    sums = ["monthly_cost", "monthly_benefit", "npv"]
    aggregates = {name: Sum(name) for name in sums}

    def grouped(key: str):
        return use_cases.values(key=F(key), currency_=F("currency")).annotate(count=Count("pk"), **aggregates)

    def rows(queryset):
        return [{**row, "currency": row.pop("currency_")} for row in queryset]

    total = _in_reporting_currency(
        rows(use_cases.values(currency_=F("currency")).annotate(key=Value("all"), count=Count("pk"), **aggregates)),
        book=book, currency=currency, sums=sums,
    ).get("all", {"count": 0, **{name: Decimal(0) for name in sums}})
    deployments = (
        Deployment.objects.filter(use_case__in=use_cases.values("pk"), status=Deployment.Status.ACTIVE)
        .order_by()
        .values(key=F("model__key"), currency_=F("use_case__currency"))
        .annotate(count=Count("pk"), monthly_cost=Sum("monthly_cost"))
    )
    return {
        "currency": currency,
        "totals": {**total, "stale": use_cases.filter(needs_recompute=True).count()},
        "by_team": _in_reporting_currency(rows(grouped("team__slug")), book=book, currency=currency, sums=sums),
        "by_stage": _in_reporting_currency(rows(grouped("stage")), book=book, currency=currency, sums=sums),
        "by_model": _in_reporting_currency(rows(deployments), book=book, currency=currency, sums=["monthly_cost"]),
    }


def _licence_findings(model: LanguageModel, monthly_active_users: int) -> list[str]:
    """Licence problems a use case would have on ``model``; empty when none."""
    licence = model.licence
    if licence is None:
        return ["licence_unknown"]
    findings = []
    if not licence.commercial_use:
        findings.append("commercial_use_not_allowed")
    limit = licence.monthly_active_user_limit
    if limit is not None and monthly_active_users > limit:
        findings.append("monthly_active_user_limit_exceeded")
    return findings


def what_if(
    *,
    user: User,
    from_model: LanguageModel,
    to_model: LanguageModel,
    currency: str,
    team: Team | None = None,
    stage: str | None = None,
    book: PriceBook | None = None,
) -> dict[str, Any]:
    """Cost and licence effect of moving every active deployment on one model to another.

    Reads only: nothing is saved. A self-hosted deployment moved to a model without
    open weights is priced as an API deployment with the same traffic.
    """
    book = book or price_book()
    use_cases = visible_use_cases(user=user)
    if team is not None:
        use_cases = use_cases.filter(team=team)
    if stage:
        use_cases = use_cases.filter(stage=stage)
    deployments = (
        Deployment.objects.filter(use_case__in=use_cases.values("pk"), model=from_model, status=Deployment.Status.ACTIVE)
        .select_related("use_case__team", "model__licence", "self_hosting_profile")
        .order_by("use_case__team__slug", "use_case__title", "pk")
    )
    to_model = LanguageModel.objects.select_related("licence").get(pk=to_model.pk)
    affected: dict[int, dict[str, Any]] = {}
    current_total = projected_total = Decimal(0)
    unpriced = []
    for deployment in deployments:
        use_case = deployment.use_case
        swapped = copy.copy(deployment)
        swapped.model = to_model
        if deployment.hosting == Deployment.Hosting.SELF_HOSTED and not to_model.open_weights:
            swapped.hosting = Deployment.Hosting.API
        current = costs.deployment_cost(deployment, book, currency=use_case.currency).monthly_cost
        projected = costs.deployment_cost(swapped, book, currency=use_case.currency).monthly_cost
        if current is None or projected is None:
            unpriced.append(deployment.pk)
            continue
        rate = book.rate(use_case.currency, currency).rate
        current_total += current * rate
        projected_total += projected * rate
        entry = affected.setdefault(use_case.pk, {
            "id": use_case.pk,
            "title": use_case.title,
            "team": use_case.team.slug,
            "currency": use_case.currency,
            "current_monthly_cost": Decimal(0),
            "projected_monthly_cost": Decimal(0),
            "licence_findings_before": _licence_findings(from_model, use_case.expected_monthly_active_users),
            "licence_findings_after": _licence_findings(to_model, use_case.expected_monthly_active_users),
        })
        entry["current_monthly_cost"] += current
        entry["projected_monthly_cost"] += projected
    for entry in affected.values():
        money = entry["currency"]
        entry["current_monthly_cost"] = costing.quantize_money(entry["current_monthly_cost"], money)
        entry["projected_monthly_cost"] = costing.quantize_money(entry["projected_monthly_cost"], money)
        entry["monthly_savings"] = entry["current_monthly_cost"] - entry["projected_monthly_cost"]
        entry["governance_changes"] = entry["licence_findings_before"] != entry["licence_findings_after"]
    return {
        "from_model": from_model.key,
        "to_model": to_model.key,
        "currency": currency,
        "current_monthly_cost": costing.quantize_money(current_total, currency),
        "projected_monthly_cost": costing.quantize_money(projected_total, currency),
        "monthly_savings": costing.quantize_money(current_total - projected_total, currency),
        "affected_use_cases": list(affected.values()),
        "unpriced_deployments": unpriced,
    }


def recompute_jobs() -> QuerySet[RecomputeJob]:
    return RecomputeJob.objects.select_related("requested_by").order_by("-created_at", "-pk")


def portfolio_snapshots() -> QuerySet[PortfolioSnapshot]:
    return PortfolioSnapshot.objects.order_by("-taken_on")


# --- Memberships, snapshots and prices, scoped --------------------------------------------


def visible_memberships(*, user: User) -> QuerySet[Membership]:
    memberships = Membership.objects.select_related("user", "team")
    if is_portfolio_manager(user):
        return memberships
    if not user.is_authenticated:
        return memberships.none()
    return memberships.filter(team_id__in=team_ids_of(user))


def manages_members(*, user: User, team: Team | None = None) -> bool:
    """Managers manage every team's members, a lead their own team's (any team's when ``team`` is None)."""
    if is_portfolio_manager(user):
        return True
    if not user.is_authenticated:
        return False
    leads = team_ids_of(user, role=Membership.Role.LEAD)
    return (leads.filter(team_id=team.pk) if team is not None else leads).exists()


def visible_cost_snapshots(*, user: User) -> QuerySet[CostSnapshot]:
    return CostSnapshot.objects.filter(use_case__in=visible_use_cases(user=user).values("pk"))


def visible_prices(*, user: User) -> QuerySet[Price]:
    """Public prices, and the contract prices of the user's teams (of every team for managers)."""
    prices = Price.objects.select_related("model", "team")
    if is_portfolio_manager(user):
        return prices
    if not user.is_authenticated:
        return prices.none()
    return prices.filter(Q(team__isnull=True) | Q(team_id__in=team_ids_of(user)))
