"""Reads of the portfolio, scoped to what a user may see."""

from __future__ import annotations

import copy
import datetime
import functools
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.db import connection
from django.db.models import (
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    IntegerField,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)

from portfolio import costs
from portfolio.models import (
    MANAGERS_GROUP,
    ChecklistItem,
    ChecklistTemplate,
    CostSnapshot,
    Deployment,
    Membership,
    PortfolioSnapshot,
    ProofOfConcept,
    RecomputeJob,
    Team,
    UseCase,
    WebhookDelivery,
    WebhookSubscription,
)
from pricing import costing
from pricing.models import LanguageModel, Price, SelfHostingProfile
from pricing.selectors import MissingRate, PriceBook, price_book

User = AbstractBaseUser | AnonymousUser


def is_portfolio_manager(user: User) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    # Cached on the instance: asked on every request, answered by one query (token
    # authentication answers it in its own query: config.drf_speed.TokenAuthentication).
    if not hasattr(user, "_is_portfolio_manager"):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {manager_check_sql('%s')}", [user.pk, MANAGERS_GROUP])
            user._is_portfolio_manager = bool(cursor.fetchone()[0])
    return user._is_portfolio_manager


@functools.cache
def manager_check_sql(user_id: str) -> str:
    """SQL that is true when the user ``user_id`` (an SQL expression) is a portfolio manager.

    It takes the managers group's name as its one parameter. ``user.groups.filter(name=…)
    .exists()`` in SQL: every API request asks, and building the ORM query costs several
    times what the database takes to answer it.
    """
    q = connection.ops.quote_name
    memberships = get_user_model().groups.through._meta
    groups = Group._meta
    # Identifiers come from the models' metadata; values are bound by the caller.
    return (
        f"EXISTS(SELECT 1 FROM {q(memberships.db_table)} m JOIN {q(groups.db_table)} g "
        f"ON g.{q(groups.pk.column)} = m.{q(memberships.get_field('group').column)} "
        f"WHERE m.{q(memberships.get_field('user').column)} = {user_id} AND g.name = %s)"
    )


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


def rate_or_none(book: PriceBook, source: str, target: str) -> Decimal | None:
    """The rate in force from ``source`` to ``target``; ``None`` when no rate converts it."""
    try:
        return book.rate(source, target).rate
    except MissingRate:
        return None


def _unconverted(rows: Iterable[dict[str, Any]], *, book: PriceBook, currency: str) -> dict[str, Any]:
    """How many use cases ``rows`` (a ``count`` per ``currency``) hold in currencies no rate converts to ``currency``."""
    counts: dict[str, int] = {}
    for row in rows:
        if rate_or_none(book, row["currency"], currency) is None:
            counts[row["currency"]] = counts.get(row["currency"], 0) + row["count"]
    return {"count": sum(counts.values()), "currencies": sorted(counts)}


def _in_reporting_currency(rows, *, book: PriceBook, currency: str, sums: Sequence[str]) -> dict:
    """Fold rows grouped by (key, currency) into totals per key in ``currency``.

    Rows in a currency no rate converts are left out: one record must not make the
    whole answer fail. Callers report them with ``_unconverted``.
    """
    totals: dict = {}
    for row in rows:
        rate = rate_or_none(book, row["currency"], currency)
        if rate is None:
            continue
        bucket = totals.setdefault(row["key"], {"count": 0, **{name: Decimal(0) for name in sums}})
        bucket["count"] += row["count"]
        for name in sums:
            bucket[name] += (row[name] or Decimal(0)) * rate
    return {
        key: {
            name: value if name == "count" else costing.quantize_money(value, currency)
            for name, value in bucket.items()
        }
        for key, bucket in totals.items()
    }


def portfolio_summary(*, user: User, currency: str, book: PriceBook | None = None) -> dict[str, Any]:
    """Totals by team, stage and model in ``currency``, over the use cases ``user`` may see."""
    use_cases = visible_use_cases(user=user)
    return {
        **summarise(use_cases=use_cases, currency=currency, book=book),
        "compliance": compliance_summary(use_cases=use_cases),
    }


def summarise(*, use_cases: QuerySet[UseCase], currency: str, book: PriceBook | None = None) -> dict[str, Any]:
    """Totals by team, stage and model in ``currency``.

    Aggregated by the database in two reads, use cases by (team, stage, currency) and
    active deployments by (model, currency); the totals, teams and stages are folded from
    those few hundred groups, then converted at the rates in force. Use cases in a
    currency no rate converts, and their deployments, are left out of every figure and
    counted in ``unconverted``.
    """
    book = book or price_book()
    use_cases = use_cases.order_by()
    sums = ["monthly_cost", "monthly_benefit", "npv"]
    groups = list(
        use_cases.values("stage", "currency", team_slug=F("team__slug")).annotate(
            count=Count("pk"), stale=Count("pk", filter=Q(needs_recompute=True)), **{name: Sum(name) for name in sums}
        )
    )

    def keyed(key: str) -> list[dict[str, Any]]:
        return [{**group, "key": group[key] if key else "all"} for group in groups]

    total = _in_reporting_currency(keyed(""), book=book, currency=currency, sums=sums).get(
        "all", {"count": 0, **{name: Decimal(0) for name in sums}}
    )
    # Joined from the use cases, so a scoped queryset filters the deployments without a subquery.
    deployments = (
        use_cases.filter(deployments__status=Deployment.Status.ACTIVE)
        .values("currency", key=F("deployments__model__key"))
        .annotate(count=Count("deployments"), monthly_cost=Sum("deployments__monthly_cost"))
    )
    stale = sum(group["stale"] for group in groups if rate_or_none(book, group["currency"], currency) is not None)
    return {
        "currency": currency,
        "totals": {**total, "stale": stale},
        "by_team": _in_reporting_currency(keyed("team_slug"), book=book, currency=currency, sums=sums),
        "by_stage": _in_reporting_currency(keyed("stage"), book=book, currency=currency, sums=sums),
        "by_model": _in_reporting_currency(deployments, book=book, currency=currency, sums=["monthly_cost"]),
        "unconverted": _unconverted(groups, book=book, currency=currency),
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
    open weights is priced as an API deployment with the same traffic. A use case in a
    currency no rate converts to ``currency`` is listed, in its own currency, but left
    out of the totals and counted in ``unconverted``.
    """
    book = book or price_book()
    use_cases = visible_use_cases(user=user)
    if team is not None:
        use_cases = use_cases.filter(team=team)
    if stage:
        use_cases = use_cases.filter(stage=stage)
    deployments = (
        Deployment.objects.filter(
            use_case__in=use_cases.values("pk"), model=from_model, status=Deployment.Status.ACTIVE
        )
        .select_related("use_case__team", "model__licence", "self_hosting_profile")
        .order_by("use_case__team__slug", "use_case__title", "pk")
    )
    to_model = LanguageModel.objects.select_related("licence").get(pk=to_model.pk)
    affected: dict[int, dict[str, Any]] = {}
    current_total = projected_total = Decimal(0)
    unpriced = []
    unconverted: dict[int, str] = {}
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
        rate = rate_or_none(book, use_case.currency, currency)
        if rate is None:
            unconverted[use_case.pk] = use_case.currency
        else:
            current_total += current * rate
            projected_total += projected * rate
        entry = affected.setdefault(
            use_case.pk,
            {
                "id": use_case.pk,
                "title": use_case.title,
                "team": use_case.team.slug,
                "currency": use_case.currency,
                "current_monthly_cost": Decimal(0),
                "projected_monthly_cost": Decimal(0),
                "licence_findings_before": _licence_findings(from_model, use_case.expected_monthly_active_users),
                "licence_findings_after": _licence_findings(to_model, use_case.expected_monthly_active_users),
            },
        )
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
        "unconverted": {"count": len(unconverted), "currencies": sorted(set(unconverted.values()))},
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


# --- Governance ----------------------------------------------------------------------------


def visible_checklist_items(*, user: User) -> QuerySet[ChecklistItem]:
    return ChecklistItem.objects.filter(use_case__in=visible_use_cases(user=user).values("pk")).select_related(
        "template", "use_case__team", "recorded_by", "waived_by"
    )


def compliance_summary(*, use_cases: QuerySet[UseCase]) -> dict[str, Any]:
    """Use cases by governance status, the share compliant, and required items by category and status."""
    use_cases = use_cases.order_by()
    counts = dict(use_cases.values_list("governance_status").annotate(count=Count("pk")))
    by_status = {status: counts.get(status, 0) for status in UseCase.GovernanceStatus.values}
    total = sum(by_status.values())
    by_category = {
        status: {category: 0 for category in ChecklistTemplate.Category.values}
        for status in (ChecklistItem.Status.FAILED, ChecklistItem.Status.OPEN, ChecklistItem.Status.WAIVED)
    }
    items = (
        ChecklistItem.objects.filter(use_case__in=use_cases.values("pk"), required=True, status__in=by_category)
        .order_by()
        .values_list("template__category", "status")
        .annotate(count=Count("pk"))
    )
    for category, status, count in items:
        by_category[status][category] = count
    compliant = by_status[UseCase.GovernanceStatus.COMPLIANT]
    return {
        "use_cases": by_status,
        "compliant_pct": None if total == 0 else costing.to_cents(Decimal(compliant * 100) / total),
        "failed_items_by_category": by_category[ChecklistItem.Status.FAILED],
        "open_items_by_category": by_category[ChecklistItem.Status.OPEN],
        "waived_items_by_category": by_category[ChecklistItem.Status.WAIVED],
    }


def _plain(value: Any) -> Any:
    """A value as JSON shows it: decimals and dates as strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def audit_trail(*, records: QuerySet) -> list[dict[str, Any]]:
    """Who changed what and when, newest first, from a record's django-simple-history rows.

    Each entry lists the fields that differ from the entry before it (all set fields
    for the first). Only the inputs people edit are compared; computed figures are not.
    """
    rows = list(records.select_related("history_user").order_by("-history_date", "-history_id"))
    entries = []
    # Each row with the one before it; a record without history rows (loaded by a
    # migration, say) has an empty trail.
    for newer, older in zip(rows, [*rows[1:], None] if rows else [], strict=True):
        if older is None:
            editable = [f for f in newer.tracked_fields if f.editable and not f.primary_key]
            changes = [
                {"field": f.name, "old": None, "new": _plain(getattr(newer, f.attname))}
                for f in editable
                if getattr(newer, f.attname) not in (None, "", [], {})
            ]
        else:
            changes = [
                {"field": change.field, "old": _plain(change.old), "new": _plain(change.new)}
                for change in newer.diff_against(older).changes
            ]
        entries.append(
            {
                "history_id": newer.history_id,
                "history_date": newer.history_date,
                "history_type": {"+": "created", "~": "changed", "-": "deleted"}[newer.history_type],
                "history_user": newer.history_user.get_username() if newer.history_user else None,
                "history_change_reason": newer.history_change_reason or "",
                "changes": changes,
            }
        )
    return entries


# --- Web UI: lists, dashboard, break-even ---------------------------------------------------

USE_CASE_ORDERINGS = frozenset(
    {
        "title",
        "-title",
        "team",
        "-team",
        "stage",
        "-stage",
        "monthly_cost",
        "-monthly_cost",
        "roi_pct",
        "-roi_pct",
        "npv",
        "-npv",
        "updated_at",
        "-updated_at",
    }
)
_WIDE_DECIMAL = DecimalField(max_digits=30, decimal_places=6)


def _in_currency(field: str, *, currency: str, book: PriceBook) -> Case:
    """``field`` converted to ``currency`` at the rates in force, so yen and dollars sort together.

    NULL in a currency no rate converts: such use cases sort last, not among the others by their bare number.
    """
    whens = []
    for source in sorted({currency} | {code for pair in book.exchange_rates for code in pair}):
        rate = rate_or_none(book, source, currency)
        if rate is None:
            continue
        whens.append(When(currency=source, then=ExpressionWrapper(F(field) * Value(rate), output_field=_WIDE_DECIMAL)))
    return Case(*whens, default=Value(None), output_field=_WIDE_DECIMAL)


def list_use_cases(
    *,
    user: User,
    team: Team | None = None,
    stage: str = "",
    risk_tier: str = "",
    governance_status: str = "",
    search: str = "",
    ordering: str = "",
    currency: str | None = None,
    book: PriceBook | None = None,
) -> QuerySet[UseCase]:
    """The use cases ``user`` may see, filtered, searched and ordered for a list page.

    With ``currency``, monthly cost and NPV sort by their value in it rather than by the bare number.
    """
    use_cases = visible_use_cases(user=user)
    if team is not None:
        use_cases = use_cases.filter(team=team)
    if stage:
        use_cases = use_cases.filter(stage=stage)
    if risk_tier:
        use_cases = use_cases.filter(risk_tier=risk_tier)
    if governance_status:
        use_cases = use_cases.filter(governance_status=governance_status)
    if search:
        use_cases = use_cases.filter(
            Q(title__icontains=search) | Q(description__icontains=search) | Q(external_id__icontains=search)
        )
    ordering = ordering if ordering in USE_CASE_ORDERINGS else "title"
    name = ordering.lstrip("-")
    if name in ("monthly_cost", "npv") and currency:
        key = _in_currency(name, currency=currency, book=book or price_book())
    elif name == "stage":
        key = Case(
            *[When(stage=stage, then=Value(rank)) for rank, stage in enumerate(UseCase.Stage.values)],
            output_field=IntegerField(),
        )
    elif name == "team":
        key = F("team__name")
    else:
        key = F(name)
    key = key.desc(nulls_last=True) if ordering.startswith("-") else key.asc(nulls_last=True)
    return use_cases.order_by(key, "title", "pk")


def unconverted_use_cases(*, use_cases: QuerySet[UseCase], currency: str, book: PriceBook) -> dict[str, Any]:
    """How many of ``use_cases`` are in a currency no rate in force converts to ``currency``, and which currencies."""
    rows = use_cases.order_by().values("currency").annotate(count=Count("pk"))
    return _unconverted(rows, book=book, currency=currency)


def portfolio_returns(*, user: User, currency: str, book: PriceBook | None = None) -> dict[str, Any]:
    """Return on investment of the portfolio and of each team, in ``currency``.

    Each use case counts its one-time cost and its monthly figures over its own
    horizon; ROI is (total benefit − total cost) / total cost × 100, as for one use case.
    Use cases in a currency no rate converts are left out and counted in ``unconverted``.
    """
    book = book or price_book()
    horizon_cost = ExpressionWrapper(
        F("one_time_cost") + F("horizon_months") * F("monthly_cost"), output_field=_WIDE_DECIMAL
    )
    horizon_benefit = ExpressionWrapper(F("horizon_months") * F("monthly_benefit"), output_field=_WIDE_DECIMAL)
    rows = list(
        visible_use_cases(user=user)
        .order_by()
        .values("team__slug", "team__name", "currency")
        .annotate(count=Count("pk"), total_cost=Sum(horizon_cost), total_benefit=Sum(horizon_benefit))
    )
    total = {"total_cost": Decimal(0), "total_benefit": Decimal(0)}
    teams: dict[str, dict[str, Any]] = {}
    for row in rows:
        rate = rate_or_none(book, row["currency"], currency)
        if rate is None:
            continue
        bucket = teams.setdefault(
            row["team__slug"],
            {
                "slug": row["team__slug"],
                "name": row["team__name"],
                "total_cost": Decimal(0),
                "total_benefit": Decimal(0),
            },
        )
        for name in ("total_cost", "total_benefit"):
            value = (row[name] or Decimal(0)) * rate
            bucket[name] += value
            total[name] += value

    def finished(bucket: dict[str, Any]) -> dict[str, Any]:
        cost, benefit = bucket["total_cost"], bucket["total_benefit"]
        return {
            **bucket,
            "total_cost": costing.quantize_money(cost, currency),
            "total_benefit": costing.quantize_money(benefit, currency),
            "roi_pct": None if cost == 0 else costing.to_cents((benefit - cost) / cost * 100),
        }

    return {
        "currency": currency,
        "totals": finished(total),
        "by_team": [finished(bucket) for bucket in sorted(teams.values(), key=lambda bucket: bucket["name"])],
        "unconverted": _unconverted(rows, book=book, currency=currency),
    }


def use_cases_needing_attention(*, user: User, limit: int = 10) -> QuerySet[UseCase]:
    """Live use cases with failed governance, a negative return or figures not yet recomputed; worst first."""
    return (
        visible_use_cases(user=user)
        .exclude(stage=UseCase.Stage.RETIRED)
        .filter(
            Q(governance_status=UseCase.GovernanceStatus.FAILED)
            | Q(roi_pct__lt=0)
            | Q(needs_recompute=True)
            | Q(computed_at__isnull=True)
        )
        .annotate(
            governance_rank=Case(
                When(governance_status=UseCase.GovernanceStatus.FAILED, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("governance_rank", F("roi_pct").asc(nulls_first=True), "title", "pk")[:limit]
    )


def cost_history(*, use_case: UseCase, limit: int = 24) -> QuerySet[CostSnapshot]:
    return use_case.cost_snapshots.order_by("-created_at", "-pk")[:limit]


def assignable_owners(*, user: User) -> QuerySet:
    """Users who may own a use case ``user`` edits: members of ``user``'s teams (anyone, for managers)."""
    users = get_user_model().objects.filter(is_active=True)
    if not is_portfolio_manager(user):
        users = users.filter(Q(pk=user.pk) | Q(memberships__team_id__in=team_ids_of(user)))
    return users.distinct().order_by("username")


def visible_price_history(*, user: User, model: LanguageModel) -> QuerySet[Price]:
    """A model's prices, newest first: the public ones and the contract prices ``user`` may see."""
    return visible_prices(user=user).filter(model=model).order_by("-effective_from", "team__name", "pk")


def break_even(
    *,
    profile: SelfHostingProfile,
    requests: int,
    input_tokens: int,
    output_tokens: int,
    cached_ratio: Decimal,
    currency: str,
    models: Sequence[LanguageModel],
    book: PriceBook | None = None,
) -> dict[str, Any]:
    """Self-hosting on ``profile`` against each model's public API price, for one monthly volume.

    Priced exactly as deployments are (``portfolio.costs``), from unsaved deployments:
    nothing is saved. ``break_even_requests`` is the monthly volume above which the
    profile is cheaper than the API.
    """
    book = book or price_book()
    holder = UseCase(currency=currency)  # Unsaved: prices in ``currency`` at public prices.
    hosted = Deployment(
        use_case=holder,
        model=LanguageModel(key=f"self-hosted/{profile.pk}"),
        hosting=Deployment.Hosting.SELF_HOSTED,
        self_hosting_profile=profile,
    )
    hosted_cost = costs.deployment_cost(hosted, book, currency=currency)
    self_hosted = hosted_cost.monthly_cost
    effective_price = None
    if self_hosted is not None and profile.throughput_tokens_per_s and profile.hours_per_month:
        effective_price = costing.effective_price_per_million(
            self_hosted / profile.hours_per_month,
            throughput_tokens_per_s=profile.throughput_tokens_per_s,
            utilisation=profile.utilisation,
        )
    usage = costing.ApiUsage(
        requests=requests, input_tokens=input_tokens, output_tokens=output_tokens, cached_ratio=cached_ratio
    )
    rows = []
    for model in models:
        price = book.price(model.pk)
        if price is None:
            continue
        api = Deployment(
            use_case=holder,
            model=model,
            hosting=Deployment.Hosting.API,
            requests_per_month=requests,
            avg_input_tokens=input_tokens,
            avg_output_tokens=output_tokens,
            cached_input_ratio=cached_ratio,
        )
        api_cost = costs.deployment_cost(api, book, currency=currency).monthly_cost
        threshold = None
        to_price_currency = rate_or_none(book, currency, price.currency)
        if self_hosted is not None and to_price_currency is not None:
            in_price_currency = costing.convert(self_hosted, to_price_currency)
            threshold = costing.break_even_requests(in_price_currency, price.token_price, usage)
        rows.append(
            {
                "model": model,
                "price": price,
                "api_monthly_cost": None if api_cost is None else costing.quantize_money(api_cost, currency),
                "break_even_requests": None if threshold is None else math.ceil(threshold),
                "self_hosting_cheaper": None if api_cost is None or self_hosted is None else self_hosted < api_cost,
            }
        )
    rows.sort(key=lambda row: (row["api_monthly_cost"] is None, row["api_monthly_cost"] or 0), reverse=False)
    return {
        "currency": currency,
        "profile": profile,
        "self_hosted_monthly_cost": None if self_hosted is None else costing.quantize_money(self_hosted, currency),
        "self_hosted_error": hosted_cost.line.get("error", ""),
        "effective_price_per_million": (
            None if effective_price is None else costing.quantize_money(effective_price, currency)
        ),
        "monthly_tokens": costing.monthly_tokens(usage),
        "rows": rows,
    }


def portfolio_trend(*, currency: str, limit: int = 90, book: PriceBook | None = None) -> list[dict[str, Any]]:
    """The latest portfolio snapshots, oldest first, in ``currency`` at the rates in force."""
    book = book or price_book()
    points = []
    for snapshot in reversed(list(portfolio_snapshots()[:limit])):
        rate = rate_or_none(book, snapshot.currency, currency)
        if rate is None:
            continue
        points.append(
            {
                "taken_on": snapshot.taken_on,
                "use_cases": snapshot.use_cases,
                "monthly_cost": costing.quantize_money(snapshot.monthly_cost * rate, currency),
                "monthly_benefit": costing.quantize_money(snapshot.monthly_benefit * rate, currency),
            }
        )
    return points


# --- Webhooks ------------------------------------------------------------------------------


def manages_webhooks(*, user: User, team: Team | None) -> bool:
    """Managers manage whole-portfolio and every team's webhooks; a team's leads manage that team's."""
    if is_portfolio_manager(user):
        return True
    if team is None or not user.is_authenticated:
        return False
    return team_ids_of(user, role=Membership.Role.LEAD).filter(team_id=team.pk).exists()


def webhook_teams(*, user: User) -> QuerySet[Team]:
    """Teams whose webhooks ``user`` manages: every team for managers, the teams they lead otherwise."""
    if is_portfolio_manager(user):
        return Team.objects.all()
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(pk__in=team_ids_of(user, role=Membership.Role.LEAD))


def visible_webhook_subscriptions(*, user: User) -> QuerySet[WebhookSubscription]:
    subscriptions = WebhookSubscription.objects.select_related("team", "owner")
    if is_portfolio_manager(user):
        return subscriptions
    if not user.is_authenticated:
        return subscriptions.none()
    return subscriptions.filter(team_id__in=team_ids_of(user, role=Membership.Role.LEAD))


def visible_webhook_deliveries(*, user: User) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(
        subscription__in=visible_webhook_subscriptions(user=user).values("pk")
    ).select_related("subscription__team")
