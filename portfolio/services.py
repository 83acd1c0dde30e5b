"""Writes to the portfolio: records, and the recompute of their derived figures."""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.db.models.expressions import RawSQL
from django.db.models.functions import Least
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.celery import app as celery_app
from config.celery import enqueue, enqueue_on_commit
from portfolio import costs, events, governance, selectors
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
    WebhookEvent,
)
from pricing import costing
from pricing.models import LanguageModel
from pricing.selectors import MissingRate, PriceBook, price_book

# --- Recording changes ------------------------------------------------------------------


RUN_JOB_TASK = "portfolio.tasks.run_recompute_job"
CHUNK_TASK = "portfolio.tasks.recompute_job_chunk"


def _assign(instance: models.Model, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(instance, name, value)


def _clean_use_case(use_case: UseCase, *, changed: Iterable[str] | None = None, unique: bool = True) -> None:
    """Validate a use case about to be saved without asking the database what is known.

    The field validators mirror the table's check constraints (a test holds them to it),
    so those are not evaluated again by a query each; the team was read by the caller.
    ``changed`` limits validation to what an update sets: the rest was validated when
    stored. The external id's uniqueness in its team is checked when it is set, unless
    the caller settles it (``unique=False``).
    """
    # The owner is left to check_owner (or a bulk write's one query for all rows): a
    # member of the team is a user that exists.
    exclude = {"team", "owner"}
    if changed is not None:
        exclude |= {field.name for field in UseCase._meta.fields if field.name not in changed}
    use_case.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    if unique and use_case.external_id and (changed is None or "external_id" in changed):
        for constraint in UseCase._meta.constraints:
            if isinstance(constraint, models.UniqueConstraint):
                try:
                    constraint.validate(UseCase, use_case)
                except ValidationError as error:  # Reported as full_clean reports it.
                    raise ValidationError({NON_FIELD_ERRORS: error.error_list}) from None


# One message for an unknown username and for a user outside the team, so a refusal
# never tells whether a username exists.
OWNER_OUTSIDE_TEAM = gettext_lazy("Choose a member of this use case's team.")


def check_owner(*, team_id: int, owner: AbstractBaseUser | None) -> None:
    """Refuse an owner who is not a member of the team (any role).

    An unsaved user stands for a username that matched no one: refused alike.
    """
    if owner is None:
        return
    if owner.pk is None or not Membership.objects.filter(team_id=team_id, user_id=owner.pk).exists():
        raise ValidationError({"owner": OWNER_OUTSIDE_TEAM})


def _owner_errors(use_cases: Sequence[tuple[str, UseCase]]) -> dict[str, list[str]]:
    """Row errors of a bulk write for owners outside their use case's team, read in one query."""
    pairs = {(use_case.team_id, use_case.owner.pk) for _key, use_case in use_cases}
    user_ids = {user_id for _team_id, user_id in pairs if user_id is not None}
    members: set[tuple[int, int]] = set()
    if user_ids:
        members = set(
            Membership.objects.filter(
                team_id__in={team_id for team_id, _user_id in pairs}, user_id__in=user_ids
            ).values_list("team_id", "user_id")
        )
    return {
        key: [f"owner: {OWNER_OUTSIDE_TEAM}"]
        for key, use_case in use_cases
        if (use_case.team_id, use_case.owner.pk) not in members
    }


@transaction.atomic
def create_use_case(*, team: Team, title: str, **fields: Any) -> UseCase:
    use_case = UseCase(team=team, title=title, needs_recompute=True)
    _assign(use_case, fields)
    _clean_use_case(use_case)
    check_owner(team_id=team.pk, owner=use_case.owner)
    use_case.save()
    if governance.moves_into_gate(previous_stage=None, stage=use_case.stage):
        governance.enforce_gate(use_case=use_case)
    events.record(WebhookEvent.USE_CASE_CREATED, use_case, use_case.team_id)
    events.request_recompute([use_case.pk])
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
    previous_stage = use_case.stage
    _assign(use_case, fields)
    _clean_use_case(use_case, changed=fields)
    if "owner" in fields or "team" in fields:
        # A move to another team keeps the owner only when they are a member there too.
        check_owner(team_id=use_case.team_id, owner=use_case.owner)
    use_case.needs_recompute = True
    use_case.version = current_version + 1
    # Only the inputs: the computed figures belong to the recompute, which may have
    # written newer ones since this instance was loaded.
    use_case.save(update_fields=[*fields, "needs_recompute", "version", "updated_at"])
    if governance.moves_into_gate(previous_stage=previous_stage, stage=use_case.stage):
        # Evaluated on the saved inputs; a refusal rolls the whole change back.
        governance.enforce_gate(use_case=use_case)
    events.record(WebhookEvent.USE_CASE_UPDATED, use_case, use_case.team_id)
    if use_case.stage != previous_stage:
        events.record(WebhookEvent.USE_CASE_STAGE_CHANGED, use_case, use_case.team_id, previous_stage=previous_stage)
    events.request_recompute([use_case.pk])
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
            existing.team = team  # The caller's row: showing the result reads it no more.
            return update_use_case(use_case=existing, **fields), False
        try:
            with transaction.atomic():
                return create_use_case(team=team, external_id=external_id, **fields), True
        except IntegrityError:
            continue  # Lost the race to a concurrent insert: update that row instead.
        except ValidationError:
            # full_clean's uniqueness check saw a row committed since the lookup: update it.
            if UseCase.objects.filter(team=team, external_id=external_id).exists():
                continue
            raise
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
def bulk_upsert_use_cases(*, rows: Sequence[BulkRow], dry_run: bool = False) -> BulkResult:
    """Upsert many use cases in one transaction, a fixed number of queries for any size.

    Rows are validated one by one first; when any is invalid a ``ValidationError``
    maps row index to errors and nothing is saved. ``dry_run`` validates and reports
    what would be created and updated, and saves nothing (the web import's preview).
    """
    existing = _existing_use_cases([(row.team.pk, row.external_id) for row in rows])
    result = BulkResult()
    errors: dict[str, Any] = {}
    gated: dict[str, UseCase] = {}
    moved: list[tuple[UseCase, str]] = []  # Updated rows whose stage changed, with their previous stage.
    owned: list[tuple[str, UseCase]] = []  # Rows that set an owner, checked together below.
    seen: set[tuple[int, str]] = set()
    for index, row in enumerate(rows):
        key = (row.team.pk, row.external_id)
        if key in seen:
            errors[str(index)] = [f"external_id: {_('This external id appears twice in the request.')}"]
            continue
        seen.add(key)
        use_case = existing.get(key)
        created = use_case is None
        if created:
            use_case = UseCase(team=row.team, external_id=row.external_id)
        else:
            use_case.team = row.team  # The same row, already loaded: no query per row later.
        previous_stage = None if created else use_case.stage
        _assign(use_case, row.fields)
        use_case.needs_recompute = True
        try:
            # Uniqueness is settled by the lookup above and the constraint below.
            _clean_use_case(use_case, changed=None if created else row.fields, unique=False)
        except ValidationError as error:
            # Flat messages per row: Django's ValidationError cannot nest a field dict in a row.
            errors[str(index)] = [
                message if name == NON_FIELD_ERRORS else f"{name}: {message}"
                for name, messages in error.message_dict.items()
                for message in messages
            ]
            continue
        if row.fields.get("owner") is not None:
            owned.append((str(index), use_case))
        if created:
            result.created.append(use_case)
        else:
            use_case.version += 1
            result.updated.append(use_case)
        if governance.moves_into_gate(previous_stage=previous_stage, stage=use_case.stage):
            gated[str(index)] = use_case
        if not created and use_case.stage != previous_stage:
            moved.append((use_case, previous_stage))
    errors.update(_owner_errors(owned))
    if errors:
        raise ValidationError(errors)
    if dry_run:
        return result
    _insert_rows(UseCase, result.created)
    _write_history(UseCase, result.created, history_type="+")
    if result.updated:
        names = sorted({name for row in rows for name in row.fields} | {"needs_recompute", "version", "updated_at"})
        now = timezone.now()
        for use_case in result.updated:
            use_case.updated_at = now
        _update_rows(UseCase, result.updated, names)
        _write_history(UseCase, result.updated, history_type="~")
    # Evaluated on the saved rows; a refused gate is a row error and rolls everything back.
    refused = governance.gate_errors(use_cases=gated)
    if refused:
        raise ValidationError(refused)
    events.record_many(WebhookEvent.USE_CASE_CREATED, [(use_case, use_case.team_id) for use_case in result.created])
    events.record_many(WebhookEvent.USE_CASE_UPDATED, [(use_case, use_case.team_id) for use_case in result.updated])
    events.record_many(
        WebhookEvent.USE_CASE_STAGE_CHANGED,
        [(use_case, use_case.team_id) for use_case, _stage in moved],
        extras=[{"previous_stage": stage} for _use_case, stage in moved],
    )
    # Many rows at once: one sweep recomputes them, rather than a task per row.
    events.request_recompute([use_case.pk for use_case in (*result.created, *result.updated)], sweep=True)
    return result


# The bulk upsert's reads and writes, one statement each for any number of rows. On
# PostgreSQL every column travels as one array parameter that the statement unnests:
# Django's PostgreSQL backend binds parameters on the client, quoting each into the SQL,
# which for a thousand rows of twenty columns costs more than the writes themselves.


def _existing_use_cases(keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], UseCase]:
    """The use cases with these (team id, external id) keys, locked in id order."""
    if connection.vendor == "postgresql":
        match = models.Q(
            pk__in=RawSQL(
                f"SELECT u.id FROM {UseCase._meta.db_table} u JOIN unnest(%s::bigint[], %s::text[]) AS k(team_id, "
                "external_id) ON u.team_id = k.team_id AND u.external_id = k.external_id",
                [[team_id for team_id, _external_id in keys], [external_id for _team_id, external_id in keys]],
            )
        )
    else:
        external_ids: dict[int, set[str]] = {}
        for team_id, external_id in keys:
            external_ids.setdefault(team_id, set()).add(external_id)
        # One branch per team, so each reads the (team, external id) unique index.
        match = models.Q(pk__in=[])
        for team_id, team_external_ids in external_ids.items():
            match |= models.Q(team_id=team_id, external_id__in=team_external_ids)
    use_cases = UseCase.objects.select_for_update(of=("self",)).filter(match).order_by("pk")
    return {(use_case.team_id, use_case.external_id): use_case for use_case in use_cases}


def _unnested(fields: Sequence[models.Field], columns: list[list[Any]]) -> tuple[str, list[str], list[list[Any]]]:
    """``unnest(%s::type[], …)``, the typed column of each field to select from it, and the arrays."""
    quote = connection.ops.quote_name
    casts, selects, arrays = [], [], []
    for model_field, values in zip(fields, columns, strict=True):
        if isinstance(model_field, models.JSONField):
            casts.append("%s::text[]")
            selects.append(f"v.{quote(model_field.column)}::jsonb")
            values = [None if value is None else json.dumps(value, cls=model_field.encoder) for value in values]
        else:
            casts.append(f"%s::{model_field.cast_db_type(connection)}[]")
            selects.append(f"v.{quote(model_field.column)}")
        arrays.append(values)
    return f"unnest({', '.join(casts)})", selects, arrays


def _insert_rows(model: type[models.Model], objs: Sequence[models.Model]) -> None:
    """``bulk_create`` of new rows; on PostgreSQL one ``INSERT … SELECT FROM unnest(…)``, ids read back in order."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs)
        return
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [field for field in meta.concrete_fields if field is not meta.pk]
    source, selects, arrays = _unnested(fields, [[field.pre_save(obj, True) for obj in objs] for field in fields])
    columns = ", ".join(quote(field.column) for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {', '.join(selects)} "
            f"FROM {source} WITH ORDINALITY AS v({columns}, n) ORDER BY v.n RETURNING {quote(meta.pk.column)}",
            arrays,
        )
        for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = pk
            obj._state.adding = False
            obj._state.db = connection.alias


def _update_rows(model: type[models.Model], objs: Sequence[models.Model], names: Sequence[str]) -> None:
    """Write these fields of saved rows with one ``UPDATE … FROM`` a list of their values.

    ``QuerySet.bulk_update`` builds a ``CASE`` per field and row, which takes seconds for
    a thousand rows; this is one join. SQLite gets a ``VALUES`` list, uncast: a datetime
    cast to its numeric affinity would keep only the year.
    """
    if not objs:
        return
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [meta.pk, *(meta.get_field(name) for name in names)]
    columns = ", ".join(quote(field.column) for field in fields)
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            source, selects, arrays = _unnested(
                fields, [[getattr(obj, field.attname) for obj in objs] for field in fields]
            )
            assignments = ", ".join(
                f"{quote(field.column)} = {select}" for field, select in zip(fields[1:], selects[1:], strict=True)
            )
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM {source} AS v({columns}) WHERE {table}.{pk} = v.{pk}", arrays
            )
            return
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        assignments = ", ".join(f"{quote(field.column)} = v.{quote(field.column)}" for field in fields[1:])
        for start in range(0, len(objs), 500):
            batch = objs[start : start + 500]
            cursor.execute(
                f"WITH v ({columns}) AS (VALUES {', '.join([row] * len(batch))}) "
                f"UPDATE {table} SET {assignments} FROM v WHERE {table}.{pk} = v.{pk}",
                [field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in batch for field in fields],
            )


def _write_history(model: type[models.Model], objs: Sequence[models.Model], *, history_type: str) -> None:
    """The audit rows simple_history's bulk helpers write, copied from the saved rows by ``INSERT … SELECT``.

    Same columns and values (tracked fields, now, no change reason, the request's user);
    building a historical instance per row in Python costs more than the rows' own write.
    """
    if not objs or not getattr(settings, "SIMPLE_HISTORY_ENABLED", True):
        return
    history = model.history.model
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in history.tracked_fields)
    user = history.get_default_history_user(objs[0])
    when = history._meta.get_field("history_date").get_db_prep_save(timezone.now(), connection)
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), 500):
            batch = [obj.pk for obj in objs[start : start + 500]]
            cursor.execute(
                f"INSERT INTO {quote(history._meta.db_table)} ({columns}, history_date, history_change_reason, "
                f"history_type, history_user_id) SELECT {columns}, %s, NULL, %s, %s FROM {table} "
                f"WHERE {pk} IN ({', '.join(['%s'] * len(batch))})",
                [when, history_type, getattr(user, "pk", None), *batch],
            )


def _touch_use_case(use_case_id: int) -> None:
    UseCase.objects.filter(pk=use_case_id).update(needs_recompute=True, version=models.F("version") + 1)
    events.request_recompute([use_case_id])


@transaction.atomic
def request_recompute(*, use_case_ids: Sequence[int]) -> None:
    """Flag use cases for a recompute and queue them (the admin's "Recompute" action)."""
    UseCase.objects.filter(pk__in=use_case_ids).update(needs_recompute=True)
    events.request_recompute(use_case_ids)


@transaction.atomic
def flag_use_cases_of_models(
    *, model_ids: Sequence[int], reason: str = "catalogue changed", governance: bool = False
) -> RecomputeJob:
    """Flag every use case deployed on these models and start a job that recomputes them.

    ``governance`` also re-evaluates their checklists when the job ends (a licence or
    model change moves the licensing checks; a new price does not).
    """
    affected = Deployment.objects.filter(model_id__in=model_ids).values("use_case_id")
    UseCase.objects.filter(pk__in=affected, needs_recompute=False).update(needs_recompute=True)
    scope: dict[str, Any] = {"model_ids": sorted(set(model_ids))}
    if governance:
        scope["governance"] = True
    return start_recompute_job(reason=reason, scope=scope)


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
    events.record(WebhookEvent.DEPLOYMENT_CHANGED, deployment, use_case.team_id, action="created")
    return deployment


@transaction.atomic
def update_deployment(*, deployment: Deployment, **fields: Any) -> Deployment:
    _assign(deployment, fields)
    deployment.full_clean()
    deployment.save(update_fields=[*fields, "updated_at"])
    _touch_use_case(deployment.use_case_id)
    events.record(WebhookEvent.DEPLOYMENT_CHANGED, deployment, deployment.use_case.team_id, action="updated")
    return deployment


@transaction.atomic
def delete_deployment(*, deployment: Deployment) -> None:
    use_case_id = deployment.use_case_id
    # Shown as it was, before the row goes.
    events.record(WebhookEvent.DEPLOYMENT_CHANGED, deployment, deployment.use_case.team_id, action="deleted")
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
    """Recompute one chunk in one transaction, its use cases locked; ``(found, ids whose figures changed)``.

    PostgreSQL recomputes set-based in SQL, with exact decimals. Elsewhere (SQLite
    stores decimals as floating point) the chunk is recomputed in Python. Both store
    the figures of ``costs.use_case_figures`` to the cent (``tests/portfolio/test_recompute_sql.py``).
    """
    if connection.vendor == "postgresql":
        return _recompute_chunk_sql(use_case_ids, book=book, reason=reason)
    return _recompute_chunk_python(use_case_ids, book=book, reason=reason)


def _recompute_chunk_python(use_case_ids: list[int], *, book: PriceBook, reason: str) -> tuple[int, list[int]]:
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
            # A cost that cannot be priced (no price, GPU rate or exchange rate) stays
            # uncomputed; the reason is in the snapshot's breakdown.
            if deployment.monthly_cost != cost or (deployment.computed_at is None) != (cost is None):
                deployment.monthly_cost = cost
                deployment.computed_at = None if cost is None else now
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
        use_cases,
        ["monthly_cost", "monthly_benefit", "roi_pct", "npv", "payback_months", "computed_at", "needs_recompute"],
    )
    CostSnapshot.objects.bulk_create(snapshots)
    return len(use_cases), [snapshot.use_case_id for snapshot in snapshots]


# The set-based recompute. The catalogue comes in as JSON from the ``PriceBook``
# (prices in force per model and team, exchange rates per currency pair, annuity
# factors per horizon), so SQL and Python read the very same numbers; the self-hosted
# deployments, few and varied, come in already costed by ``costs``. Decimal arithmetic
# in PostgreSQL is exact, ``round`` rounds half away from zero like ROUND_HALF_UP, and
# dividing by a million is a multiplication by 0.000001.
#
# ``_COSTS_CTES`` costs every deployment of the use cases in ``{scope}`` (a condition on
# ``u``) into ``costs``; ``_FIGURES_CTES`` sums them into each use case's new figures,
# ``figures`` (``new_*``, beside the stored ``old_*``). A chunk adds its locks, the writes
# of what changed and the snapshots; the benchmark's floor writes every row of them.
_COSTS_CTES = f"""
prices AS (
    SELECT * FROM jsonb_to_recordset(%(prices)s::jsonb) AS x(
        model_id bigint, team_id bigint, id bigint, input numeric, output numeric, cached numeric, currency text)
), rates AS (
    SELECT * FROM jsonb_to_recordset(%(rates)s::jsonb) AS x(
        source text, target text, id bigint, rate numeric, error text)
), factors AS (
    SELECT * FROM jsonb_to_recordset(%(factors)s::jsonb) AS x(horizon integer, factor numeric)
), hosted AS (
    SELECT * FROM jsonb_to_recordset(%(hosted)s::jsonb) AS x(deployment_id bigint, cost numeric, line jsonb)
), use_cases AS (
    SELECT u.*, coalesce((%(places)s::jsonb ->> u.currency)::integer, 2) AS places
    FROM {UseCase._meta.db_table} u WHERE {{scope}}
), api AS (
    -- The team's contract price when there is one, else the public price.
    SELECT d.id, d.use_case_id, d.status, d.monthly_fixed_cost AS fixed, m.key AS model_key,
           u.currency AS target, u.places,
           coalesce(pc.id, pp.id) AS price_id, coalesce(pc.currency, pp.currency) AS source,
           d.requests_per_month * (
               (d.avg_input_tokens - d.avg_input_tokens * d.cached_input_ratio) * coalesce(pc.input, pp.input)
               + d.avg_input_tokens * d.cached_input_ratio * coalesce(pc.cached, pp.cached, pc.input, pp.input)
               + d.avg_output_tokens * coalesce(pc.output, pp.output)
           ) * 0.000001 AS variable
    FROM {Deployment._meta.db_table} d
    JOIN use_cases u ON u.id = d.use_case_id
    JOIN {LanguageModel._meta.db_table} m ON m.id = d.model_id
    LEFT JOIN prices pc ON pc.model_id = d.model_id AND pc.team_id = u.team_id
    LEFT JOIN prices pp ON pp.model_id = d.model_id AND pp.team_id IS NULL AND pc.id IS NULL
    WHERE d.hosting <> %(self_hosted)s
), costs AS (
    SELECT a.id, a.use_case_id, a.status, a.places, a.model_key, a.price_id, r.id AS rate_id, r.error AS rate_error,
           CASE WHEN a.price_id IS NULL THEN NULL
                WHEN a.source = a.target THEN a.variable + a.fixed
                ELSE a.variable * r.rate + a.fixed END AS cost,
           NULL::jsonb AS line
    FROM api a LEFT JOIN rates r ON r.source = a.source AND r.target = a.target
    UNION ALL
    SELECT h.deployment_id, d.use_case_id, d.status, u.places, NULL, NULL, NULL, NULL, h.cost, h.line
    FROM hosted h JOIN {Deployment._meta.db_table} d ON d.id = h.deployment_id JOIN use_cases u ON u.id = d.use_case_id
)"""
_FIGURES_CTES = """
per_use_case AS (
    -- Only active deployments count towards the use case; unpriced ones count nothing.
    SELECT use_case_id, sum(cost) FILTER (WHERE status = %(active)s) AS cost FROM costs GROUP BY use_case_id
), inputs AS (
    SELECT u.id, u.currency, u.places, u.horizon_months AS horizon, u.one_time_cost AS one_time, f.factor,
           u.monthly_cost AS old_cost, u.monthly_benefit AS old_benefit, u.roi_pct AS old_roi, u.npv AS old_npv,
           u.payback_months AS old_payback, u.computed_at AS old_computed_at,
           u.monthly_fixed_cost + coalesce(p.cost, 0) AS cost,
           u.hours_saved_per_month * u.hourly_rate + u.other_monthly_benefit AS benefit
    FROM use_cases u JOIN factors f ON f.horizon = u.horizon_months LEFT JOIN per_use_case p ON p.use_case_id = u.id
), figures AS (
    SELECT i.*,
           round(i.cost, i.places) AS new_cost,
           round(i.benefit, i.places) AS new_benefit,
           CASE WHEN i.one_time + i.horizon * i.cost = 0 THEN NULL
                ELSE round((i.horizon * i.benefit - (i.one_time + i.horizon * i.cost))
                           / (i.one_time + i.horizon * i.cost) * 100, 2) END AS new_roi,
           -- NPV in closed form: the monthly net is an annuity over the horizon.
           round((i.benefit - i.cost) * i.factor - i.one_time, i.places) AS new_npv,
           CASE WHEN i.one_time <= 0 THEN 0
                WHEN i.benefit - i.cost <= 0 THEN NULL
                WHEN ceil(i.one_time / (i.benefit - i.cost)) <= i.horizon
                    THEN ceil(i.one_time / (i.benefit - i.cost))::integer
           END AS new_payback
    FROM inputs i
)"""


def recompute_ctes(*, every_use_case: bool = False) -> str:
    """The ``WITH`` parts that cost each deployment (``costs``) and figure each use case (``figures``).

    In scope are the use cases ``%(ids)s``, or every use case; ``recompute_parameters``
    gives the rest of the parameters. PostgreSQL only.
    """
    scope = "true" if every_use_case else "u.id = ANY(%(ids)s)"
    return f"{_COSTS_CTES.format(scope=scope)}, {_FIGURES_CTES}"


_LOCK_CHUNK_SQL = f"""
    SELECT id, currency, horizon_months FROM {UseCase._meta.db_table}
    WHERE id = ANY(%s) ORDER BY id FOR UPDATE
"""
_RECOMPUTE_CHUNK_SQL = f"""
WITH {recompute_ctes()}, deployments_written AS (
    -- A cost that cannot be priced stays uncomputed, as in Python.
    UPDATE {Deployment._meta.db_table} d
    SET monthly_cost = round(c.cost, c.places), computed_at = CASE WHEN c.cost IS NULL THEN NULL ELSE %(now)s END
    FROM costs c
    WHERE d.id = c.id
      AND (d.monthly_cost IS DISTINCT FROM round(c.cost, c.places) OR (d.computed_at IS NULL) <> (c.cost IS NULL))
), compared AS (
    SELECT f.*, (
        f.old_computed_at IS NULL OR f.old_cost IS DISTINCT FROM f.new_cost
        OR f.old_benefit IS DISTINCT FROM f.new_benefit OR f.old_roi IS DISTINCT FROM f.new_roi
        OR f.old_npv IS DISTINCT FROM f.new_npv OR f.old_payback IS DISTINCT FROM f.new_payback
    ) AS changed
    FROM figures f
), breakdowns AS (
    -- One line per deployment, with the catalogue rows it used; built only where a snapshot is written.
    SELECT c.use_case_id, jsonb_agg(coalesce(c.line,
        jsonb_build_object('deployment_id', c.id, 'model', c.model_key, 'status', c.status) || CASE
            WHEN c.price_id IS NULL
                THEN jsonb_build_object('error', %(no_price_before)s || c.model_key || %(no_price_after)s)
            ELSE jsonb_build_object('price_id', c.price_id)
                || CASE WHEN c.rate_id IS NULL THEN jsonb_build_object()
                        ELSE jsonb_build_object('exchange_rate_id', c.rate_id) END
                || CASE WHEN c.cost IS NULL THEN jsonb_build_object('error', c.rate_error)
                        ELSE jsonb_build_object('monthly_cost', round(c.cost, c.places)::text) END
        END) ORDER BY c.id) AS breakdown
    FROM costs c JOIN compared x ON x.id = c.use_case_id AND x.changed
    GROUP BY c.use_case_id
), snapshots_written AS (
    INSERT INTO {CostSnapshot._meta.db_table} (use_case_id, created_at, priced_on, reason, currency, monthly_cost,
                            previous_monthly_cost, monthly_benefit, roi_pct, npv, payback_months, breakdown)
    SELECT x.id, %(now)s, %(on)s, %(reason)s, x.currency, x.new_cost, x.old_cost, x.new_benefit, x.new_roi,
           x.new_npv, x.new_payback, coalesce(b.breakdown, jsonb_build_array())
    FROM compared x LEFT JOIN breakdowns b ON b.use_case_id = x.id
    WHERE x.changed
)
UPDATE {UseCase._meta.db_table} u
SET monthly_cost = c.new_cost, monthly_benefit = c.new_benefit, roi_pct = c.new_roi, npv = c.new_npv,
    payback_months = c.new_payback, computed_at = %(now)s, needs_recompute = false
FROM compared c WHERE u.id = c.id
RETURNING u.id, c.changed
"""

# The annuity factor per (annual rate, horizon) is the same for every chunk.
_annuity_factor = functools.lru_cache(maxsize=2048)(costing.annuity_factor)


def _recompute_chunk_sql(use_case_ids: list[int], *, book: PriceBook, reason: str) -> tuple[int, list[int]]:
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_CHUNK_SQL, [use_case_ids])
        locked = cursor.fetchall()
        if not locked:
            return 0, []
        parameters = recompute_parameters(
            book,
            use_case_ids=[row[0] for row in locked],
            currencies={row[1] for row in locked},
            horizons={row[2] for row in locked},
        )
        no_price = _("No price for %(model)s in force on %(date)s.") % {"model": "\x00", "date": book.on}
        no_price_before, _marker, no_price_after = no_price.partition("\x00")
        cursor.execute(
            _RECOMPUTE_CHUNK_SQL,
            {
                **parameters,
                "no_price_before": no_price_before,
                "no_price_after": no_price_after,
                "now": now,
                "on": book.on,
                "reason": reason[:200],
            },
        )
        written = cursor.fetchall()
    return len(written), sorted(pk for pk, changed in written if changed)


def recompute_parameters(
    book: PriceBook, *, use_case_ids: list[int] | None, currencies: set[str], horizons: set[int]
) -> dict[str, Any]:
    """The parameters of ``recompute_ctes``: the part of ``book`` that the use cases in scope read.

    ``use_case_ids`` is ``None`` for every use case; ``currencies`` and ``horizons`` are
    those of the use cases in scope.
    """
    where, ids = ("", []) if use_case_ids is None else ("WHERE use_case_id = ANY(%s)", [use_case_ids])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT model_id, bool_or(hosting = %s) FROM {Deployment._meta.db_table} {where} GROUP BY model_id",
            [Deployment.Hosting.SELF_HOSTED, *ids],
        )
        models_used = cursor.fetchall()
    hosted = _self_hosted_costs(use_case_ids, book=book) if any(row[1] for row in models_used) else []
    prices, rates = _prices_and_rates(book, model_ids={row[0] for row in models_used}, currencies=currencies)
    annual_rate = settings.ANNUAL_DISCOUNT_RATE
    return {
        "ids": use_case_ids,
        "prices": json.dumps(prices),
        "rates": json.dumps(rates),
        "factors": json.dumps(
            [{"horizon": horizon, "factor": str(_annuity_factor(annual_rate, horizon))} for horizon in horizons]
        ),
        "hosted": json.dumps(hosted),
        "places": json.dumps(costing.CURRENCY_DECIMALS),
        "self_hosted": Deployment.Hosting.SELF_HOSTED,
        "active": Deployment.Status.ACTIVE,
    }


def _prices_and_rates(
    book: PriceBook, *, model_ids: set[int], currencies: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The book's prices of these models, and its rates from their currencies into ``currencies``.

    Decimals travel as strings, so PostgreSQL reads exactly the digits Python holds.
    """
    prices = [
        {
            "model_id": model_id,
            "team_id": team_id,
            "id": price.id,
            "input": str(price.token_price.input),
            "output": str(price.token_price.output),
            "cached": None if price.token_price.cached_input is None else str(price.token_price.cached_input),
            "currency": price.currency,
        }
        for (model_id, team_id), price in book.prices.items()
        if model_id in model_ids
    ]
    rates = []
    for source in sorted({price["currency"] for price in prices}):
        for target in sorted(currencies - {source}):
            try:
                rate = book.rate(source, target)
            except MissingRate:
                error = costs.no_rate_message(source, target, book.on)
                rates.append({"source": source, "target": target, "id": None, "rate": None, "error": error})
            else:
                rates.append({"source": source, "target": target, "id": rate.id, "rate": str(rate.rate), "error": None})
    return prices, rates


def _self_hosted_costs(use_case_ids: list[int] | None, *, book: PriceBook) -> list[dict[str, Any]]:
    """Self-hosted deployments costed in Python: GPU rentals, owned hardware and profiles vary too much for SQL.

    ``use_case_ids`` is ``None`` for every use case.
    """
    deployments = Deployment.objects.filter(hosting=Deployment.Hosting.SELF_HOSTED)
    if use_case_ids is not None:
        deployments = deployments.filter(use_case_id__in=use_case_ids)
    hosted = []
    for deployment in deployments.select_related("model", "self_hosting_profile", "use_case").order_by("pk"):
        cost = costs.deployment_cost(deployment, book, currency=deployment.use_case.currency)
        hosted.append(
            {
                "deployment_id": deployment.pk,
                "cost": None if cost.monthly_cost is None else str(cost.monthly_cost),
                "line": cost.line,
            }
        )
    return hosted


def recompute_use_case(*, use_case_id: int, reason: str = "") -> bool:
    """Recompute one use case and re-evaluate its checklist; ``False`` when it no longer exists."""
    found = recompute_use_cases(use_case_ids=[use_case_id], reason=reason).use_cases == 1
    if found:
        governance.evaluate_checklists(use_case_ids=[use_case_id])
    return found


def recompute_stale(*, limit: int = 10_000) -> RecomputeResult:
    """Recompute what is still flagged, and re-evaluate those use cases' checklists."""
    ids = list(UseCase.objects.filter(needs_recompute=True).order_by("pk").values_list("pk", flat=True)[:limit])
    result = recompute_use_cases(use_case_ids=ids, reason="stale sweep")
    governance.evaluate_checklists(use_case_ids=ids)
    return result


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


def _id_chunks(queryset: models.QuerySet, *, field: str = "pk") -> Iterator[list[int]]:
    """Use case ids in ascending chunks, read by keyset so memory stays flat whatever the size.

    ``field`` names the use case id in ``queryset`` when it is not a queryset of use cases.
    """
    ids = queryset.order_by(field).values_list(field, flat=True)
    if field != "pk":
        ids = ids.distinct()
    last = 0
    while True:
        chunk = list(ids.filter(**{f"{field}__gt": last})[: settings.RECOMPUTE_CHUNK_SIZE])
        if not chunk:
            return
        yield chunk
        last = chunk[-1]


def _scope_chunks(scope: dict[str, Any]) -> Iterator[list[int]]:
    # Scopes defined by deployments walk the deployments' use case index from the last id
    # on: the semi-join of _scope_queryset would rescan them from the start for every chunk.
    # Same precedence as _scope_queryset.
    if not scope.get("all") and "model_ids" in scope:
        return _id_chunks(Deployment.objects.filter(model_id__in=scope["model_ids"]), field="use_case_id")
    if scope.keys().isdisjoint({"all", "currencies", "use_case_ids"}) and scope.get("self_hosted"):
        return _id_chunks(Deployment.objects.filter(hosting=Deployment.Hosting.SELF_HOSTED), field="use_case_id")
    return _id_chunks(_scope_queryset(scope))


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


@transaction.atomic
def start_recompute_job(*, reason: str, scope: dict[str, Any], requested_by: Any = None) -> RecomputeJob:
    """Record a job and queue it once the transaction commits."""
    job = RecomputeJob.objects.create(
        reason=reason[:200], scope=scope, requested_by=requested_by, currency=settings.REPORTING_CURRENCY
    )
    # A job the broker cannot take stays queued; the sweep re-enqueues it.
    enqueue_on_commit(RUN_JOB_TASK, job.pk)
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
    for chunk in _scope_chunks(job.scope):
        if inline:
            recompute_job_chunk(job_id=job.pk, use_case_ids=chunk)
        else:
            # Raises when the broker is gone, failing this task rather than leaving chunks out.
            celery_app.tasks[CHUNK_TASK].delay(job.pk, chunk)
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
    if job.scope.get("governance"):
        # Licences, models or the calendar (expired waivers) moved the checks of this scope.
        governance.evaluate_checklists(use_case_ids=_scope_queryset(job.scope).values_list("pk", flat=True))
    if job.scope.get("snapshot"):
        take_portfolio_snapshot()
    events.record(WebhookEvent.RECOMPUTE_FINISHED, job, None)


def requeue_lost_jobs(*, older_than_seconds: int = 60) -> int:
    """Re-enqueue jobs still queued a while after creation (their enqueue failed)."""
    cutoff = timezone.now() - datetime.timedelta(seconds=older_than_seconds)
    ids = list(
        RecomputeJob.objects.filter(status=RecomputeJob.Status.QUEUED, created_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for job_id in ids:
        enqueue(RUN_JOB_TASK, job_id)
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
    return {
        key: {name: str(value) if isinstance(value, Decimal) else value for name, value in row.items()}
        for key, row in groups.items()
    }


# --- Team memberships ----------------------------------------------------------------------


def _lock_team(team_id: int) -> None:
    # One membership change per team at a time, so two leads demoting each other at
    # once cannot leave the team without a lead.
    Team.objects.select_for_update().only("pk").get(pk=team_id)


def _refuse_losing_the_last_lead(membership: Membership) -> None:
    # The stored role, not the instance's: change_role has already assigned the new one.
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
        _refuse_losing_the_last_lead(membership)
    membership.save(update_fields=["role", "updated_at"])
    return membership


@transaction.atomic
def remove_member(*, membership: Membership) -> None:
    """Take a user out of a team; the team's last lead stays."""
    _lock_team(membership.team_id)
    _refuse_losing_the_last_lead(membership)
    membership.delete()


# --- Import previews -----------------------------------------------------------------------

# Where the web import keeps an uploaded file between its preview and its confirmation.
IMPORT_PREVIEWS = "imports"


def delete_stale_import_previews() -> int:
    """Delete uploaded import files older than ``IMPORT_PREVIEW_MAX_AGE_SECONDS``; returns how many.

    Their previews can no longer be confirmed: the signed token expires at the same age.
    """
    cutoff = timezone.now() - datetime.timedelta(seconds=settings.IMPORT_PREVIEW_MAX_AGE_SECONDS)
    try:
        _directories, names = default_storage.listdir(IMPORT_PREVIEWS)
    except FileNotFoundError:  # Nothing was ever uploaded.
        return 0
    deleted = 0
    for name in names:
        path = f"{IMPORT_PREVIEWS}/{name}"
        try:
            if default_storage.get_modified_time(path) >= cutoff:
                continue
            default_storage.delete(path)
        except FileNotFoundError:  # Confirmed (and deleted) since the listing.
            continue
        deleted += 1
    return deleted
