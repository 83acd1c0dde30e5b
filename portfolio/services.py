"""Writes to the portfolio: records, and the recompute of their derived figures."""
from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from portfolio import tasks
from portfolio.models import CostSnapshot, Deployment, ProofOfConcept, Team, UseCase
from pricing import costing
from pricing.selectors import MissingRate, PriceBook, price_book

logger = logging.getLogger(__name__)

RECOMPUTE_CHUNK_SIZE = 500


# --- Recording changes ------------------------------------------------------------------


def _enqueue_recompute(use_case_ids: Sequence[int]) -> None:
    """Queue a recompute once the transaction commits.

    The use cases are already flagged ``needs_recompute`` in that transaction, so a
    broker that cannot be reached costs a delay (the stale sweep picks them up), never
    the write itself.
    """

    def enqueue() -> None:
        for use_case_id in use_case_ids:
            try:
                tasks.recompute_use_case.delay(use_case_id)
            except Exception:  # Any broker failure: the sweep recovers it.
                logger.warning("Could not enqueue recompute of use case %s; left for the sweep.", use_case_id)
                return

    transaction.on_commit(enqueue)


def _enqueue_sweep() -> None:
    try:
        tasks.recompute_stale.delay()
    except Exception:  # Any broker failure: the periodic sweep runs anyway.
        logger.warning("Could not enqueue the stale sweep; the periodic sweep will run it.")


def _assign(instance: models.Model, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(instance, name, value)


@transaction.atomic
def create_use_case(*, team: Team, title: str, **fields: Any) -> UseCase:
    use_case = UseCase(team=team, title=title, needs_recompute=True)
    _assign(use_case, fields)
    use_case.full_clean()
    use_case.save()
    _enqueue_recompute([use_case.pk])
    return use_case


class StaleVersion(Exception):
    """The record changed since the client read it (optimistic concurrency)."""

    def __init__(self, current_version: int):
        super().__init__(f"The record is at version {current_version}.")
        self.current_version = current_version


@transaction.atomic
def update_use_case(*, use_case: UseCase, expected_version: int | None = None, **fields: Any) -> UseCase:
    """Change a use case's inputs; ``expected_version`` refuses a write based on a stale read."""
    current_version = UseCase.objects.select_for_update().values_list("version", flat=True).get(pk=use_case.pk)
    if expected_version is not None and expected_version != current_version:
        raise StaleVersion(current_version)
    _assign(use_case, fields)
    use_case.full_clean()
    use_case.needs_recompute = True
    use_case.version = current_version + 1
    # Only the inputs: the computed figures belong to the recompute, which may have
    # written newer ones since this instance was loaded.
    use_case.save(update_fields=[*fields, "needs_recompute", "version", "updated_at"])
    _enqueue_recompute([use_case.pk])
    return use_case


@transaction.atomic
def delete_use_case(*, use_case: UseCase) -> None:
    use_case.delete()


def upsert_use_case(*, team: Team, external_id: str, **fields: Any) -> tuple[UseCase, bool]:
    """Create or update the use case a sync client knows by ``external_id``; ``True`` when created.

    Two clients upserting the same id at once cannot make a duplicate: the unique
    constraint refuses the second insert, which then updates the row the first made.
    """
    for _attempt in range(2):
        existing = UseCase.objects.filter(team=team, external_id=external_id).first()
        if existing is not None:
            return update_use_case(use_case=existing, **fields), False
        try:
            with transaction.atomic():
                return create_use_case(team=team, external_id=external_id, **fields), True
        except IntegrityError:
            continue  # Lost the race to a concurrent insert: update that row instead.
    raise ValidationError({"external_id": _("This external id is being written concurrently; try again.")})


@dataclass(frozen=True)
class BulkRow:
    team: Team
    external_id: str
    fields: dict[str, Any]


@dataclass
class BulkResult:
    created: list[UseCase] = field(default_factory=list)
    updated: list[UseCase] = field(default_factory=list)


@transaction.atomic
def bulk_upsert_use_cases(*, rows: Sequence[BulkRow]) -> BulkResult:
    """Upsert many use cases in one transaction, a fixed number of queries for any size.

    Rows are validated one by one first; when any is invalid a ``ValidationError``
    maps row index to errors and nothing is saved.
    """
    keys = {(row.team.pk, row.external_id) for row in rows}
    existing = {
        (use_case.team_id, use_case.external_id): use_case
        for use_case in UseCase.objects.select_for_update().filter(
            team_id__in={team_id for team_id, _ in keys}, external_id__in={ext for _, ext in keys}
        )
    }
    result = BulkResult()
    errors: dict[str, Any] = {}
    seen: set[tuple[int, str]] = set()
    for index, row in enumerate(rows):
        key = (row.team.pk, row.external_id)
        if key in seen:
            errors[str(index)] = {"external_id": [_("This external id appears twice in the request.")]}
            continue
        seen.add(key)
        use_case = existing.get(key)
        created = use_case is None
        if created:
            use_case = UseCase(team=row.team, external_id=row.external_id)
        _assign(use_case, row.fields)
        use_case.needs_recompute = True
        try:
            # Uniqueness is settled by the lookup above and the constraint below.
            use_case.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as error:
            errors[str(index)] = error.message_dict
            continue
        if created:
            result.created.append(use_case)
        else:
            use_case.version += 1
            result.updated.append(use_case)
    if errors:
        raise ValidationError(errors)
    bulk_create_with_history(result.created, UseCase)
    if result.updated:
        names = sorted({name for row in rows for name in row.fields} | {"needs_recompute", "version", "updated_at"})
        now = timezone.now()
        for use_case in result.updated:
            use_case.updated_at = now
        bulk_update_with_history(result.updated, UseCase, names)
    transaction.on_commit(_enqueue_sweep)
    return result


def _touch_use_case(use_case_id: int) -> None:
    UseCase.objects.filter(pk=use_case_id).update(needs_recompute=True, version=models.F("version") + 1)
    _enqueue_recompute([use_case_id])


@transaction.atomic
def request_recompute(*, use_case_ids: Sequence[int]) -> None:
    """Flag use cases whose inputs changed outside these services (admin) and queue them."""
    UseCase.objects.filter(pk__in=use_case_ids).update(needs_recompute=True)
    _enqueue_recompute(use_case_ids)


@transaction.atomic
def flag_use_cases_of_models(*, model_ids: Sequence[int]) -> int:
    """Flag every use case deployed on these models; the sweep task recomputes them in chunks."""
    affected = UseCase.objects.filter(deployments__model_id__in=model_ids)
    count = UseCase.objects.filter(pk__in=affected.values("pk")).update(needs_recompute=True)
    transaction.on_commit(_enqueue_sweep)
    return count


@transaction.atomic
def flag_use_cases_in_currencies(*, currencies: Sequence[str]) -> int:
    """Flag use cases that a change of exchange rate can reprice.

    A use case in one of these currencies, or one whose deployments are priced in
    them, may convert at the changed rate; flagging a few more than strictly needed
    costs one idempotent recompute each.
    """
    affected = UseCase.objects.filter(
        models.Q(currency__in=currencies) | models.Q(deployments__model__prices__currency__in=currencies)
    )
    count = UseCase.objects.filter(pk__in=affected.values("pk")).update(needs_recompute=True)
    transaction.on_commit(_enqueue_sweep)
    return count


@transaction.atomic
def create_deployment(*, use_case: UseCase, **fields: Any) -> Deployment:
    deployment = Deployment(use_case=use_case)
    _assign(deployment, fields)
    deployment.full_clean()
    deployment.save()
    _touch_use_case(use_case.pk)
    return deployment


@transaction.atomic
def update_deployment(*, deployment: Deployment, **fields: Any) -> Deployment:
    _assign(deployment, fields)
    deployment.full_clean()
    deployment.save(update_fields=[*fields, "updated_at"])
    _touch_use_case(deployment.use_case_id)
    return deployment


@transaction.atomic
def delete_deployment(*, deployment: Deployment) -> None:
    use_case_id = deployment.use_case_id
    deployment.delete()
    _touch_use_case(use_case_id)


@transaction.atomic
def create_poc(*, use_case: UseCase, hypothesis: str, **fields: Any) -> ProofOfConcept:
    poc = ProofOfConcept(use_case=use_case, hypothesis=hypothesis)
    _assign(poc, fields)
    poc.full_clean()
    poc.save()
    return poc


@transaction.atomic
def delete_poc(*, poc: ProofOfConcept) -> None:
    poc.delete()


@transaction.atomic
def update_poc(*, poc: ProofOfConcept, **fields: Any) -> ProofOfConcept:
    _assign(poc, fields)
    poc.full_clean()
    poc.save()
    return poc


# --- Recompute ---------------------------------------------------------------------------


class CostUnavailable(Exception):
    """A deployment cannot be priced from the catalogue in force."""


@dataclass(frozen=True)
class DeploymentCost:
    monthly_cost: Decimal | None
    line: dict[str, Any]


def _converted(amount: Decimal, source: str, target: str, book: PriceBook, used: dict[str, Any]) -> Decimal:
    rate = book.rate(source, target)
    if rate.id is not None:
        used["exchange_rate_id"] = rate.id
    return costing.convert(amount, rate.rate)


def _hardware(deployment: Deployment, book: PriceBook, line: dict[str, Any]) -> tuple[costing.GpuRental | costing.OwnedHardware, str]:
    """The deployment's hardware cost model and the currency it is priced in."""
    profile = deployment.self_hosting_profile
    if profile is not None:
        line["self_hosting_profile_id"] = profile.pk
        if profile.capex is not None:
            return (
                costing.OwnedHardware(
                    capex=profile.capex,
                    amortisation_months=profile.amortisation_months,
                    salvage_ratio=profile.salvage_ratio,
                    power_monthly_cost=profile.power_monthly_cost,
                    operations_monthly_cost=profile.operations_monthly_cost,
                    hours_per_month=profile.hours_per_month,
                ),
                profile.currency,
            )
        gpu_type, gpu_count, hourly, hours, currency = (
            profile.gpu_type, profile.gpu_count, profile.gpu_hourly_cost, profile.hours_per_month, profile.currency,
        )
    else:
        gpu_type, gpu_count, hourly, hours, currency = (
            deployment.gpu_type, deployment.gpu_count, deployment.gpu_hourly_cost,
            deployment.hours_per_month, deployment.use_case.currency,
        )
    if hourly is None:
        rate = book.gpu_rate(gpu_type)
        if rate is None:
            raise CostUnavailable(_("No GPU rate for %(gpu)s in force on %(date)s.") % {"gpu": gpu_type, "date": book.on})
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
            variable = _converted(costing.monthly_api_cost(price.token_price, usage), price.currency, currency, book, line)
    except (CostUnavailable, MissingRate) as error:
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


@dataclass
class RecomputeResult:
    use_cases: int = 0
    changed: list[int] = field(default_factory=list)


def recompute_use_cases(
    *, use_case_ids: Iterable[int], on: datetime.date | None = None, reason: str = ""
) -> RecomputeResult:
    """Recompute deployments and use cases from the catalogue in force on ``on``.

    Runs in chunks, each its own transaction with its rows locked, so concurrent
    recomputes of the same use case serialise and a rerun gives the same result.
    A cost snapshot is written for every use case whose figures changed.
    """
    ids = sorted(set(use_case_ids))
    book = price_book(on=on)
    result = RecomputeResult()
    for start in range(0, len(ids), RECOMPUTE_CHUNK_SIZE):
        found, changed = _recompute_chunk(ids[start : start + RECOMPUTE_CHUNK_SIZE], book=book, reason=reason)
        result.use_cases += found
        result.changed.extend(changed)
    return result


@transaction.atomic
def _recompute_chunk(use_case_ids: list[int], *, book: PriceBook, reason: str) -> tuple[int, list[int]]:
    now = timezone.now()
    annual_rate = settings.ANNUAL_DISCOUNT_RATE
    use_cases = list(
        UseCase.objects.select_for_update(of=("self",))
        .filter(pk__in=use_case_ids)
        .select_related("team")
        .prefetch_related(
            models.Prefetch(
                "deployments",
                queryset=Deployment.objects.select_related("model", "self_hosting_profile").order_by("pk"),
            )
        )
        .order_by("pk")
    )
    changed_deployments = []
    snapshots = []
    for use_case in use_cases:
        deployments = list(use_case.deployments.all())
        for deployment in deployments:
            deployment.use_case = use_case  # Already loaded: avoids a query per row.
        figures = use_case_figures(use_case, deployments, book, annual_rate=annual_rate)
        for deployment in deployments:
            cost = figures.deployment_costs[deployment.pk]
            if deployment.monthly_cost != cost or deployment.computed_at is None:
                deployment.monthly_cost = cost
                deployment.computed_at = now
                changed_deployments.append(deployment)
        new_fields = figures.as_fields()
        previous_cost = use_case.monthly_cost
        if use_case.computed_at is None or any(getattr(use_case, k) != v for k, v in new_fields.items()):
            snapshots.append(
                CostSnapshot(
                    use_case=use_case,
                    priced_on=book.on,
                    reason=reason[:200],
                    currency=use_case.currency,
                    previous_monthly_cost=previous_cost,
                    breakdown=figures.breakdown,
                    **new_fields,
                )
            )
        _assign(use_case, new_fields)
        use_case.computed_at = now
        use_case.needs_recompute = False
    Deployment.objects.bulk_update(changed_deployments, ["monthly_cost", "computed_at"])
    UseCase.objects.bulk_update(
        use_cases, ["monthly_cost", "monthly_benefit", "roi_pct", "npv", "payback_months", "computed_at", "needs_recompute"]
    )
    CostSnapshot.objects.bulk_create(snapshots)
    return len(use_cases), [snapshot.use_case_id for snapshot in snapshots]


def recompute_use_case(*, use_case_id: int, reason: str = "") -> bool:
    """Recompute one use case; ``False`` when it no longer exists."""
    return recompute_use_cases(use_case_ids=[use_case_id], reason=reason).use_cases == 1


def recompute_stale(*, limit: int = 10_000) -> RecomputeResult:
    ids = list(UseCase.objects.filter(needs_recompute=True).order_by("pk").values_list("pk", flat=True)[:limit])
    return recompute_use_cases(use_case_ids=ids, reason="stale sweep")


def recompute_portfolio(*, reason: str = "full recompute") -> RecomputeResult:
    return recompute_use_cases(use_case_ids=UseCase.objects.values_list("pk", flat=True), reason=reason)
