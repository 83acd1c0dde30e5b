"""Writes to the portfolio: records, and the recompute of their derived figures."""
from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, models, transaction
from django.db.models.functions import Least
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from portfolio import costs, selectors, tasks
from portfolio.models import (
    CostSnapshot,
    Deployment,
    Membership,
    PortfolioSnapshot,
    ProofOfConcept,
    RecomputeChunk,
    RecomputeJob,
    Team,
    UseCase,
)
from pricing import costing
from pricing.selectors import MissingRate, PriceBook, price_book

logger = logging.getLogger(__name__)



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
def flag_use_cases_of_models(*, model_ids: Sequence[int], reason: str = "catalogue changed") -> RecomputeJob:
    """Flag every use case deployed on these models and start a job that recomputes them."""
    affected = UseCase.objects.filter(deployments__model_id__in=model_ids).values("pk")
    UseCase.objects.filter(pk__in=affected).update(needs_recompute=True)
    return start_recompute_job(reason=reason, scope={"model_ids": sorted(set(model_ids))})


@transaction.atomic
def flag_self_hosted_use_cases(*, reason: str = "hardware costs changed") -> RecomputeJob:
    """Flag every use case with a self-hosted deployment (GPU rates, profiles) and start a job."""
    scope = {"self_hosted": True}
    UseCase.objects.filter(pk__in=_scope_queryset(scope).values("pk")).update(needs_recompute=True)
    return start_recompute_job(reason=reason, scope=scope)


@transaction.atomic
def flag_use_cases_in_currencies(*, currencies: Sequence[str], reason: str = "exchange rate changed") -> RecomputeJob:
    """Flag use cases that a change of exchange rate can reprice, and start a job for them.

    A use case in one of these currencies, or one whose deployments are priced in
    them, may convert at the changed rate; flagging a few more than strictly needed
    costs one idempotent recompute each.
    """
    UseCase.objects.filter(pk__in=_scope_queryset({"currencies": list(currencies)}).values("pk")).update(
        needs_recompute=True
    )
    return start_recompute_job(reason=reason, scope={"currencies": sorted(set(currencies))})


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
    for start in range(0, len(ids), settings.RECOMPUTE_CHUNK_SIZE):
        found, changed = _recompute_chunk(ids[start : start + settings.RECOMPUTE_CHUNK_SIZE], book=book, reason=reason)
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
        figures = costs.use_case_figures(use_case, deployments, book, annual_rate=annual_rate)
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
    """Recompute every use case in-process, chunk by chunk (the demo loader and tests use it)."""
    result = RecomputeResult()
    book = price_book()
    for chunk in _id_chunks(UseCase.objects.all()):
        found, changed = _recompute_chunk(chunk, book=book, reason=reason)
        result.use_cases += found
        result.changed.extend(changed)
    return result


# --- Recompute jobs ----------------------------------------------------------------------


def _scope_queryset(scope: dict[str, Any]) -> models.QuerySet[UseCase]:
    if scope.get("all"):
        return UseCase.objects.all()
    if "model_ids" in scope:
        return UseCase.objects.filter(
            pk__in=Deployment.objects.filter(model_id__in=scope["model_ids"]).values("use_case_id")
        )
    if "currencies" in scope:
        currencies = scope["currencies"]
        priced_in = Deployment.objects.filter(model__prices__currency__in=currencies).values("use_case_id")
        return UseCase.objects.filter(models.Q(currency__in=currencies) | models.Q(pk__in=priced_in))
    if "use_case_ids" in scope:
        return UseCase.objects.filter(pk__in=scope["use_case_ids"])
    if scope.get("self_hosted"):
        return UseCase.objects.filter(
            pk__in=Deployment.objects.filter(hosting=Deployment.Hosting.SELF_HOSTED).values("use_case_id")
        )
    raise ValueError(f"Unknown recompute scope: {scope!r}")


def _id_chunks(queryset: models.QuerySet[UseCase]) -> Iterator[list[int]]:
    """Ids in ascending chunks, read by keyset so memory stays flat whatever the size."""
    last = 0
    while True:
        chunk = list(
            queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:settings.RECOMPUTE_CHUNK_SIZE]
        )
        if not chunk:
            return
        yield chunk
        last = chunk[-1]


def _monthly_cost_total(queryset: models.QuerySet[UseCase], *, currency: str, book: PriceBook) -> Decimal | None:
    """Monthly cost of these use cases in ``currency``; ``None`` when a rate is missing."""
    total = Decimal(0)
    rows = queryset.order_by().values("currency").annotate(cost=models.Sum("monthly_cost"))
    try:
        for row in rows:
            total += (row["cost"] or Decimal(0)) * book.rate(row["currency"], currency).rate
    except MissingRate:
        return None
    return costing.quantize_money(total, currency)


def _enqueue_job(job_id: int) -> None:
    try:
        tasks.run_recompute_job.delay(job_id)
    except Exception:  # Any broker failure: the sweep re-enqueues queued jobs.
        logger.warning("Could not enqueue recompute job %s; left for the sweep.", job_id)


@transaction.atomic
def start_recompute_job(*, reason: str, scope: dict[str, Any], requested_by: Any = None) -> RecomputeJob:
    """Record a job and queue it once the transaction commits."""
    job = RecomputeJob.objects.create(
        reason=reason[:200], scope=scope, requested_by=requested_by, currency=settings.REPORTING_CURRENCY
    )
    transaction.on_commit(lambda: _enqueue_job(job.pk))
    return job


def run_recompute_job(*, job_id: int, inline: bool = False) -> RecomputeJob | None:
    """Fan a job out into chunk tasks (or run them here with ``inline``).

    Safe to run again after a crash: chunks already recomputed are recorded and skipped.
    """
    job = RecomputeJob.objects.filter(pk=job_id).first()
    if job is None or job.status in (RecomputeJob.Status.FINISHED, RecomputeJob.Status.FAILED):
        return job
    queryset = _scope_queryset(job.scope)
    book = price_book()
    updates: dict[str, Any] = {"status": RecomputeJob.Status.RUNNING, "total": queryset.count()}
    if job.started_at is None:
        updates["started_at"] = timezone.now()
        updates["monthly_cost_before"] = _monthly_cost_total(queryset, currency=job.currency, book=book)
    RecomputeJob.objects.filter(pk=job.pk).update(**updates)
    for chunk in _id_chunks(queryset):
        if inline:
            recompute_job_chunk(job_id=job.pk, use_case_ids=chunk)
        else:
            tasks.recompute_job_chunk.delay(job.pk, chunk)
    _finish_job_if_done(job.pk)
    job.refresh_from_db()
    return job


def recompute_job_chunk(*, job_id: int, use_case_ids: list[int]) -> int:
    """Recompute one chunk of a job and count it once; returns how many figures changed."""
    job = RecomputeJob.objects.filter(pk=job_id).only("pk", "reason").first()
    if job is None or not use_case_ids:
        return 0
    try:
        with transaction.atomic():
            _, created = RecomputeChunk.objects.get_or_create(
                job=job, first_id=min(use_case_ids), defaults={"size": len(use_case_ids)}
            )
            if not created:
                return 0  # Redelivered after it was done.
            _found, changed = _recompute_chunk(sorted(use_case_ids), book=price_book(), reason=job.reason)
            RecomputeJob.objects.filter(pk=job_id).update(
                done=Least(models.F("done") + len(use_case_ids), models.F("total")),
                changed=models.F("changed") + len(changed),
            )
    except DatabaseError as error:
        RecomputeJob.objects.filter(pk=job_id).update(errors=models.F("errors") + 1, last_error=str(error)[:2000])
        raise
    _finish_job_if_done(job_id)
    return len(changed)


def _finish_job_if_done(job_id: int) -> None:
    finished = RecomputeJob.objects.filter(
        pk=job_id, status=RecomputeJob.Status.RUNNING, done__gte=models.F("total")
    ).update(status=RecomputeJob.Status.FINISHED, finished_at=timezone.now())
    if not finished:
        return
    job = RecomputeJob.objects.get(pk=job_id)
    job.monthly_cost_after = _monthly_cost_total(_scope_queryset(job.scope), currency=job.currency, book=price_book())
    job.save(update_fields=["monthly_cost_after"])
    if job.scope.get("snapshot"):
        take_portfolio_snapshot()


def requeue_lost_jobs(*, older_than_seconds: int = 60) -> int:
    """Re-enqueue jobs still queued a while after creation (their enqueue failed)."""
    cutoff = timezone.now() - datetime.timedelta(seconds=older_than_seconds)
    ids = list(
        RecomputeJob.objects.filter(status=RecomputeJob.Status.QUEUED, created_at__lt=cutoff).values_list("pk", flat=True)
    )
    for job_id in ids:
        _enqueue_job(job_id)
    return len(ids)


# --- Portfolio snapshots -------------------------------------------------------------------


@transaction.atomic
def take_portfolio_snapshot(*, on: datetime.date | None = None) -> PortfolioSnapshot:
    """Store today's portfolio totals by team, stage and model; taken again, it is replaced."""
    on = on or timezone.localdate()
    summary = selectors.summarise(use_cases=UseCase.objects.all(), currency=settings.REPORTING_CURRENCY)
    totals = summary["totals"]
    snapshot, _ = PortfolioSnapshot.objects.update_or_create(
        taken_on=on,
        defaults={
            "currency": summary["currency"],
            "use_cases": totals["count"],
            "monthly_cost": totals["monthly_cost"],
            "monthly_benefit": totals["monthly_benefit"],
            "npv": totals["npv"],
            "by_team": _json_money(summary["by_team"]),
            "by_stage": _json_money(summary["by_stage"]),
            "by_model": _json_money(summary["by_model"]),
        },
    )
    return snapshot


def _json_money(groups: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {key: {name: str(value) if isinstance(value, Decimal) else value for name, value in row.items()}
            for key, row in groups.items()}


# --- Team memberships ----------------------------------------------------------------------


def _lock_team(team_id: int) -> None:
    # One membership change per team at a time, so two leads demoting each other at
    # once cannot leave the team without a lead.
    Team.objects.select_for_update().only("pk").get(pk=team_id)


def _refuse_removing_last_lead(membership: Membership) -> None:
    was_lead = Membership.objects.filter(pk=membership.pk, role=Membership.Role.LEAD).exists()
    other_leads = Membership.objects.filter(team_id=membership.team_id, role=Membership.Role.LEAD).exclude(
        pk=membership.pk
    )
    if was_lead and not other_leads.exists():
        raise ValidationError({"role": _("A team keeps at least one lead: make another member lead first.")})


@transaction.atomic
def add_member(*, team: Team, user: AbstractBaseUser, role: str = Membership.Role.MEMBER) -> Membership:
    _lock_team(team.pk)
    membership = Membership(team=team, user=user, role=role)
    membership.full_clean()
    try:
        with transaction.atomic():
            membership.save()
    except IntegrityError:  # Added concurrently by someone else: the constraint kept one.
        raise ValidationError({"user": _("This user is already a member of the team.")}) from None
    return membership


@transaction.atomic
def change_role(*, membership: Membership, role: str) -> Membership:
    _lock_team(membership.team_id)
    membership.role = role
    membership.full_clean()
    if role != Membership.Role.LEAD:
        _refuse_removing_last_lead(membership)
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def remove_member(*, membership: Membership) -> None:
    """Take a user out of a team; the team's last lead stays."""
    _lock_team(membership.team_id)
    _refuse_removing_last_lead(membership)
    membership.delete()
