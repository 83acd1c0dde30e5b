"""Governance checklists: the rules that decide them, their evaluation, evidence, waivers and the stage gate.

The first half is the rules engine: plain functions over rows already loaded (a use
case, its deployments with their models and licences, the templates and the existing
items). It runs no queries, so it is tested without a database. The second half loads
those rows in bulk, applies what the engine decided and enforces the stage gate.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from portfolio import costs, events, selectors
from portfolio.models import (
    ChecklistItem,
    ChecklistTemplate,
    Deployment,
    GovernanceFramework,
    UseCase,
    WebhookEvent,
)
from pricing.selectors import price_book

Status = ChecklistItem.Status
Rule = ChecklistTemplate.Rule

EVALUATION_CHUNK_SIZE = 500
EVALUATION_REASON = "checklist evaluation"
SENSITIVE_DATA = frozenset({UseCase.DataClassification.CONFIDENTIAL, UseCase.DataClassification.PERSONAL})
# What an evaluation may change on an existing item.
EVALUATED_FIELDS = [
    "status",
    "detail",
    "required",
    "waiver_reason",
    "waived_by",
    "waived_at",
    "waiver_expires_on",
    "updated_at",
]


# --- Rules (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: str
    detail: str


def deployments_in_scope(deployments: Iterable[Deployment]) -> list[Deployment]:
    """Planned and active deployments: a stopped one no longer sends data or needs a licence."""
    return [deployment for deployment in deployments if deployment.status != Deployment.Status.STOPPED]


def _model_list(deployments: Iterable[Deployment]) -> str:
    return ", ".join(sorted({deployment.model.key for deployment in deployments}))


def _no_deployment() -> Outcome:
    return Outcome(Status.PASSED, _("No planned or active deployment: nothing to check yet."))


def licence_known(use_case: UseCase, deployments: Sequence[Deployment]) -> Outcome:
    if not deployments:
        return _no_deployment()
    unknown = [deployment for deployment in deployments if deployment.model.licence is None]
    if unknown:
        return Outcome(
            Status.FAILED,
            _("No licence is recorded for %(models)s: record it in the catalogue.") % {"models": _model_list(unknown)},
        )
    licences = sorted({f"{d.model.licence.name} ({d.model.key})" for d in deployments})
    return Outcome(Status.PASSED, _("Licences known: %(licences)s.") % {"licences": "; ".join(licences)})


def licence_commercial_use(use_case: UseCase, deployments: Sequence[Deployment]) -> Outcome:
    if not deployments:
        return _no_deployment()
    refused = [d for d in deployments if d.model.licence is not None and not d.model.licence.commercial_use]
    if refused:
        names = sorted({f"{d.model.licence.name} ({d.model.key})" for d in refused})
        return Outcome(
            Status.FAILED, _("Commercial use is not allowed by %(licences)s.") % {"licences": "; ".join(names)}
        )
    unknown = [d for d in deployments if d.model.licence is None]
    if unknown:
        return Outcome(
            Status.OPEN,
            _("Commercial use cannot be confirmed while the licence of %(models)s is unknown.")
            % {"models": _model_list(unknown)},
        )
    return Outcome(Status.PASSED, _("Every licence allows commercial use."))


def licence_user_limit(use_case: UseCase, deployments: Sequence[Deployment]) -> Outcome:
    if not deployments:
        return _no_deployment()
    users = use_case.expected_monthly_active_users
    exceeded = sorted(
        {
            (d.model.licence.monthly_active_user_limit, d.model.licence.name, d.model.key)
            for d in deployments
            if d.model.licence is not None
            and d.model.licence.monthly_active_user_limit is not None
            and users > d.model.licence.monthly_active_user_limit
        }
    )
    if exceeded:
        limits = "; ".join(f"{limit:,} of {name} ({key})" for limit, name, key in exceeded)
        return Outcome(
            Status.FAILED,
            _(
                "%(users)s expected monthly active users exceed the limit %(limits)s: a "
                "separate licence from the licensor is needed."
            )
            % {"users": f"{users:,}", "limits": limits},
        )
    unknown = [d for d in deployments if d.model.licence is None]
    if unknown:
        return Outcome(
            Status.OPEN,
            _("The user limit cannot be checked while the licence of %(models)s is unknown.")
            % {"models": _model_list(unknown)},
        )
    return Outcome(
        Status.PASSED,
        _("%(users)s expected monthly active users are within every licence's limit.") % {"users": f"{users:,}"},
    )


def data_processing_agreement(use_case: UseCase, deployments: Sequence[Deployment]) -> Outcome:
    if use_case.data_classification not in SENSITIVE_DATA:
        return Outcome(
            Status.PASSED,
            _("%(data)s data: no agreement is needed.") % {"data": use_case.get_data_classification_display()},
        )
    uncovered = [d for d in deployments if d.hosting == Deployment.Hosting.API and not d.data_processing_agreement]
    if uncovered:
        names = ", ".join(f"{d.model.key} (deployment {d.pk})" for d in uncovered)
        return Outcome(
            Status.FAILED,
            _(
                "%(data)s data goes to external APIs without a recorded data-processing "
                "agreement: %(deployments)s. Record the agreement on the deployment or host "
                "the model yourself."
            )
            % {"data": use_case.get_data_classification_display(), "deployments": names},
        )
    if any(d.hosting == Deployment.Hosting.API for d in deployments):
        return Outcome(Status.PASSED, _("Every external API deployment has a data-processing agreement."))
    return Outcome(Status.PASSED, _("The data stays on self-hosted models."))


def risk_tier(use_case: UseCase, deployments: Sequence[Deployment]) -> Outcome:
    tier = use_case.risk_tier
    if tier == UseCase.RiskTier.UNASSESSED:
        return Outcome(Status.OPEN, _("Assess the EU AI Act risk tier."))
    if tier == UseCase.RiskTier.UNACCEPTABLE:
        return Outcome(
            Status.FAILED,
            _("Unacceptable risk: a practice prohibited by the EU AI Act (Art. 5) cannot be put into service."),
        )
    return Outcome(Status.PASSED, _("Risk tier assessed: %(tier)s.") % {"tier": use_case.get_risk_tier_display()})


RULES: dict[str, Callable[[UseCase, Sequence[Deployment]], Outcome]] = {
    Rule.LICENCE_KNOWN: licence_known,
    Rule.LICENCE_COMMERCIAL_USE: licence_commercial_use,
    Rule.LICENCE_USER_LIMIT: licence_user_limit,
    Rule.DATA_PROCESSING_AGREEMENT: data_processing_agreement,
    Rule.RISK_TIER: risk_tier,
}


def decide(template: ChecklistTemplate, use_case: UseCase, deployments: Sequence[Deployment]) -> Outcome:
    rule = RULES.get(template.rule)
    if rule is None:
        return Outcome(Status.OPEN, _("No rule decides this item; ask an administrator to fix its template."))
    return rule(use_case, deployments)


def applies(template: ChecklistTemplate, use_case: UseCase, deployments: Sequence[Deployment]) -> bool:
    """Whether ``template`` applies to the use case, given its planned and active deployments."""
    if template.framework != GovernanceFramework.CORE and template.framework not in (use_case.frameworks or []):
        return False
    if template.applies_to_risk_tiers and use_case.risk_tier not in template.applies_to_risk_tiers:
        return False
    if (
        template.applies_to_data_classifications
        and use_case.data_classification not in template.applies_to_data_classifications
    ):
        return False
    if template.applies_to_ai_roles and use_case.ai_role not in template.applies_to_ai_roles:
        return False
    return not template.applies_to_hosting or any(d.hosting in template.applies_to_hosting for d in deployments)


def roll_up(statuses: Iterable[str]) -> str:
    """The governance status from the statuses of the required items."""
    statuses = set(statuses)
    if Status.FAILED in statuses:
        return UseCase.GovernanceStatus.FAILED
    if Status.OPEN in statuses:
        return UseCase.GovernanceStatus.OPEN
    return UseCase.GovernanceStatus.COMPLIANT


def has_record(item: ChecklistItem) -> bool:
    """Whether a person has recorded something on the item that must not be thrown away."""
    return item.status == Status.WAIVED or item.recorded_at is not None or item.has_evidence


def _state(item: ChecklistItem) -> tuple:
    # Attribute names (waived_by_id), so comparing never loads a related row.
    return tuple(
        getattr(item, ChecklistItem._meta.get_field(name).attname) for name in EVALUATED_FIELDS if name != "updated_at"
    )


def _expire_waiver(item: ChecklistItem, today: datetime.date) -> None:
    if item.status == Status.WAIVED and item.waiver_expires_on is not None and item.waiver_expires_on <= today:
        item.detail = _("The waiver expired on %(date)s.") % {"date": item.waiver_expires_on.isoformat()}
        item.status = Status.OPEN
        item.waiver_reason, item.waived_by, item.waived_at, item.waiver_expires_on = "", None, None, None


@dataclass
class Reconciliation:
    """What evaluating one use case's checklist changes, and the checklist after it."""

    create: list[ChecklistItem] = field(default_factory=list)
    update: list[ChecklistItem] = field(default_factory=list)
    delete: list[ChecklistItem] = field(default_factory=list)
    items: list[ChecklistItem] = field(default_factory=list)
    governance_status: str = UseCase.GovernanceStatus.NOT_EVALUATED


def reconcile(
    use_case: UseCase,
    deployments: Iterable[Deployment],
    templates: Iterable[ChecklistTemplate],
    items: Iterable[ChecklistItem],
    *,
    today: datetime.date,
) -> Reconciliation:
    """Bring a use case's checklist in line with the active templates.

    Applicable templates without an item get one; automatic items take their rule's
    outcome unless waived; expired waivers re-open. Items whose template no longer
    applies are removed, unless someone recorded evidence, a status or a waiver on
    them: those stay, no longer required.
    """
    in_scope = deployments_in_scope(deployments)
    existing = {item.template_id: item for item in items}
    result = Reconciliation()
    for template in templates:
        if not template.active or not applies(template, use_case, in_scope):
            continue
        item = existing.pop(template.pk, None)
        created = item is None
        if created:
            item = ChecklistItem(use_case=use_case, template=template, status=Status.OPEN)
        else:
            item.template = template
        before = None if created else _state(item)
        item.required = template.required
        _expire_waiver(item, today)
        if template.kind == ChecklistTemplate.Kind.AUTOMATIC and item.status != Status.WAIVED:
            outcome = decide(template, use_case, in_scope)
            item.status, item.detail = outcome.status, outcome.detail
        if created:
            result.create.append(item)
        elif _state(item) != before:
            result.update.append(item)
        result.items.append(item)
    for item in existing.values():
        if not has_record(item):
            result.delete.append(item)
            continue
        before = _state(item)
        item.required = False
        _expire_waiver(item, today)
        if _state(item) != before:
            result.update.append(item)
        result.items.append(item)
    result.governance_status = roll_up(item.status for item in result.items if item.required)
    return result


def blocking_items(items: Iterable[ChecklistItem]) -> list[ChecklistItem]:
    """Required items that are neither passed nor waived: they hold a use case at the gate."""
    blocking = [item for item in items if item.required and item.status not in ChecklistItem.CLEARED]
    return sorted(blocking, key=lambda item: (item.template.category, item.template.position, item.template.code))


def moves_into_gate(*, previous_stage: str | None, stage: str) -> bool:
    """Whether a change from ``previous_stage`` (``None``: a new use case) to ``stage`` passes the gate."""
    return stage in UseCase.GATED_STAGES and stage != previous_stage


# --- Evaluation --------------------------------------------------------------------------


@dataclass
class EvaluationResult:
    use_cases: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    # Use cases whose governance status changed.
    changed: list[int] = field(default_factory=list)
    reconciliations: dict[int, Reconciliation] = field(default_factory=dict)


def _active_templates() -> list[ChecklistTemplate]:
    return list(ChecklistTemplate.objects.filter(active=True).order_by("pk"))


def evaluate_checklists(*, use_case_ids: Iterable[int], today: datetime.date | None = None) -> EvaluationResult:
    """Evaluate the governance checklists of these use cases and roll up their governance status.

    Idempotent: a second run changes nothing. Set-based: chunks of 500 use cases, each
    in its own transaction with its use cases locked, a fixed number of queries per
    chunk (plus one history row per item removed, which happens only when conditions
    change). Checklist-item history records every change, with the request's user when
    there is one.
    """
    ids = sorted(set(use_case_ids))
    today = today or timezone.localdate()
    templates = _active_templates()
    result = EvaluationResult()
    for start in range(0, len(ids), EVALUATION_CHUNK_SIZE):
        _evaluate_chunk(ids[start : start + EVALUATION_CHUNK_SIZE], templates=templates, today=today, result=result)
    return result


@transaction.atomic
def _evaluate_chunk(
    use_case_ids: list[int], *, templates: list[ChecklistTemplate], today: datetime.date, result: EvaluationResult
) -> None:
    # The use case rows are the lock every checklist writer takes first, so two
    # evaluations of one use case serialise instead of both creating its items.
    use_cases = list(UseCase.objects.select_for_update(of=("self",)).filter(pk__in=use_case_ids).order_by("pk"))
    deployments: dict[int, list[Deployment]] = defaultdict(list)
    for deployment in (
        Deployment.objects.filter(use_case_id__in=use_case_ids)
        .exclude(status=Deployment.Status.STOPPED)
        .select_related("model__licence")
        .order_by("pk")
    ):
        deployments[deployment.use_case_id].append(deployment)
    items: dict[int, list[ChecklistItem]] = defaultdict(list)
    for item in ChecklistItem.objects.filter(use_case_id__in=use_case_ids).order_by("pk"):
        items[item.use_case_id].append(item)

    failed_before = {item.pk for group in items.values() for item in group if item.status == Status.FAILED}
    now = timezone.now()
    create, update, delete, changed_use_cases = [], [], [], []
    for use_case in use_cases:
        plan = reconcile(use_case, deployments[use_case.pk], templates, items[use_case.pk], today=today)
        create += plan.create
        update += plan.update
        delete += plan.delete
        if plan.governance_status != use_case.governance_status:
            use_case.governance_status = plan.governance_status
            changed_use_cases.append(use_case)
        result.reconciliations[use_case.pk] = plan
    for item in update:
        item.updated_at = now
    if create:
        bulk_create_with_history(create, ChecklistItem, default_change_reason=EVALUATION_REASON)
    if update:
        bulk_update_with_history(update, ChecklistItem, EVALUATED_FIELDS, default_change_reason=EVALUATION_REASON)
    if delete:
        ChecklistItem.objects.filter(pk__in=[item.pk for item in delete]).delete()
    if changed_use_cases:
        UseCase.objects.bulk_update(changed_use_cases, ["governance_status"])
    team_of = {use_case.pk: use_case.team_id for use_case in use_cases}
    events.record_many(
        WebhookEvent.CHECKLIST_ITEM_FAILED,
        [
            (item, team_of[item.use_case_id])
            for item in create + update
            if item.status == Status.FAILED and item.pk not in failed_before
        ],
    )
    result.use_cases += len(use_cases)
    result.created += len(create)
    result.updated += len(update)
    result.deleted += len(delete)
    result.changed += [use_case.pk for use_case in changed_use_cases]


def expire_waivers(*, today: datetime.date | None = None) -> EvaluationResult:
    """Re-open every item whose waiver has expired, and re-evaluate its use case (the nightly job)."""
    today = today or timezone.localdate()
    use_case_ids = (
        ChecklistItem.objects.filter(status=Status.WAIVED, waiver_expires_on__lte=today)
        .values_list("use_case_id", flat=True)
        .distinct()
    )
    return evaluate_checklists(use_case_ids=list(use_case_ids), today=today)


# --- Stage gate --------------------------------------------------------------------------


class GateRefused(Exception):
    """A use case may not enter a gated stage yet; ``blocking_items`` and ``reasons`` say why."""

    def __init__(self, *, stage: str, blocking_items: list[dict[str, Any]], reasons: list[str]):
        self.stage = stage
        self.blocking_items = blocking_items
        self.reasons = reasons
        message = _("The use case cannot move to %(stage)s yet.") % {"stage": UseCase.Stage(stage).label}
        if blocking_items:
            message += " " + _("Required checklist items are neither passed nor waived: %(codes)s.") % {
                "codes": ", ".join(item["code"] for item in blocking_items)
            }
        super().__init__(" ".join([message, *reasons]))

    def as_data(self) -> dict[str, Any]:
        return {
            "detail": str(self),
            "stage": self.stage,
            "blocking_items": self.blocking_items,
            "reasons": self.reasons,
        }


def _describe(item: ChecklistItem, *, created: bool) -> dict[str, Any]:
    return {
        # Created by the evaluation the refusal rolls back, so it has no id to show.
        "id": None if created else item.pk,
        "code": item.template.code,
        "title": item.template.title,
        "category": item.template.category,
        "status": item.status,
        "detail": item.detail,
    }


def _paying_back(use_cases: Sequence[UseCase]) -> set[int]:
    """Ids of the use cases whose figures, computed now from the prices in force, pay back within the horizon."""
    by_id = {use_case.pk: use_case for use_case in use_cases}
    deployments: dict[int, list[Deployment]] = defaultdict(list)
    for deployment in Deployment.objects.filter(use_case_id__in=by_id).select_related("model", "self_hosting_profile"):
        deployment.use_case = by_id[deployment.use_case_id]
        deployments[deployment.use_case_id].append(deployment)
    book = price_book(model_ids={d.model_id for group in deployments.values() for d in group})
    return {
        use_case.pk
        for use_case in use_cases
        if costs.use_case_figures(
            use_case, deployments[use_case.pk], book, annual_rate=settings.ANNUAL_DISCOUNT_RATE
        ).payback_months
        is not None
    }


def gate_refusals(*, use_cases: Sequence[UseCase]) -> dict[int, GateRefused]:
    """Evaluate the checklists of use cases entering a gated stage; the refusals by use case id.

    Runs inside the transaction that changes the stages, after the change is saved, so
    the evaluation sees the new inputs; raising a refusal rolls the change back.
    """
    if not use_cases:
        return {}
    evaluation = evaluate_checklists(use_case_ids=[use_case.pk for use_case in use_cases])
    paying_back = _paying_back(use_cases) if settings.GATE_REQUIRES_PAYBACK else None
    refusals = {}
    for use_case in use_cases:
        plan = evaluation.reconciliations[use_case.pk]
        use_case.governance_status = plan.governance_status
        created = {id(item) for item in plan.create}
        blocking = [_describe(item, created=id(item) in created) for item in blocking_items(plan.items)]
        reasons = []
        if paying_back is not None and use_case.pk not in paying_back:
            reasons.append(
                _("The forecast does not pay back within the %(months)s-month horizon.")
                % {"months": use_case.horizon_months}
            )
        if blocking or reasons:
            refusals[use_case.pk] = GateRefused(stage=use_case.stage, blocking_items=blocking, reasons=reasons)
    return refusals


def enforce_gate(*, use_case: UseCase) -> None:
    """Refuse the use case's new stage unless every required checklist item is passed or waived."""
    refusal = gate_refusals(use_cases=[use_case]).get(use_case.pk)
    if refusal is not None:
        raise refusal


def gate_errors(*, use_cases: dict[str, UseCase]) -> dict[str, list[str]]:
    """Per-row errors of a bulk write, for the use cases (by row key) it moves into a gated stage.

    Flat lists of messages: Django's ``ValidationError`` cannot nest a field dict in a row.
    """
    refusals = gate_refusals(use_cases=list(use_cases.values()))
    return {key: [str(refusals[use_case.pk])] for key, use_case in use_cases.items() if use_case.pk in refusals}


# --- Evidence and waivers ---------------------------------------------------------------


def _lock(item: ChecklistItem) -> ChecklistItem:
    """Lock the item's use case (the lock every checklist writer takes) and reload the item."""
    UseCase.objects.select_for_update().filter(pk=item.use_case_id).values_list("pk").first()
    return ChecklistItem.objects.select_related("template", "use_case").get(pk=item.pk)


def _save(item: ChecklistItem, *, by: AbstractBaseUser, reason: str) -> None:
    item.full_clean()
    item._history_user = by
    item._change_reason = reason
    item.save()
    statuses = ChecklistItem.objects.filter(use_case_id=item.use_case_id, required=True).values_list(
        "status", flat=True
    )
    UseCase.objects.filter(pk=item.use_case_id).update(governance_status=roll_up(statuses))


def _clear_waiver(item: ChecklistItem) -> None:
    item.waiver_reason, item.waived_by, item.waived_at, item.waiver_expires_on = "", None, None, None


def _check_evidence_file(file: File | None) -> None:
    if file is not None and file.size > settings.EVIDENCE_MAX_UPLOAD_BYTES:
        raise ValidationError(
            {
                "evidence_file": _("The file has %(size)s bytes; evidence files are limited to %(limit)s bytes.")
                % {"size": f"{file.size:,}", "limit": f"{settings.EVIDENCE_MAX_UPLOAD_BYTES:,}"}
            }
        )


def _delete_evidence_file_on_commit(name: str) -> None:
    """Delete a replaced or removed evidence file once the change commits.

    A rolled-back change still points at the file, so it stays. The audit trail keeps the
    name only.
    """
    storage = ChecklistItem._meta.get_field("evidence_file").storage
    # Robust: a storage error is logged, not raised at a caller whose change is saved.
    transaction.on_commit(lambda: storage.delete(name), robust=True)


_UNSET: Any = object()


@transaction.atomic
def record_evidence(
    *,
    item: ChecklistItem,
    by: AbstractBaseUser,
    text: str = _UNSET,
    url: str = _UNSET,
    file: File | None = _UNSET,
    status: str | None = None,
) -> ChecklistItem:
    """Record evidence on an item and, on a manual item, its status: open, passed or failed.

    Arguments left out keep their value; ``file=None`` removes the file (the history
    keeps its name). A passed item needs some evidence. Changing the status of a waived
    item lifts the waiver, which only a portfolio manager may do.
    """
    item = _lock(item)
    failed_before = item.status == Status.FAILED
    if status is not None:
        if status == Status.WAIVED:
            raise ValidationError({"status": _("Waive an item with a reason (waive_item).")})
        if item.template.kind == ChecklistTemplate.Kind.AUTOMATIC:
            raise ValidationError(
                {
                    "status": _(
                        "An automatic item's status comes from its rule. Fix the data it "
                        "checks, or ask a portfolio manager for a waiver."
                    )
                }
            )
        if item.status == Status.WAIVED and status != Status.WAIVED:
            if not selectors.is_portfolio_manager(by):
                raise PermissionDenied(_("Only a portfolio manager can lift a waiver."))
            _clear_waiver(item)
        item.status = status
    if text is not _UNSET:
        item.evidence_text = text
    if url is not _UNSET:
        item.evidence_url = url
    previous_file = item.evidence_file.name
    if file is not _UNSET:
        _check_evidence_file(file)
        item.evidence_file = file
    if item.status == Status.PASSED and not item.has_evidence:
        raise ValidationError({"evidence_text": _("Record the evidence (text, link or file) that the item is met.")})
    item.recorded_by, item.recorded_at = by, timezone.now()
    _save(item, by=by, reason="evidence recorded")
    if previous_file and previous_file != item.evidence_file.name:
        _delete_evidence_file_on_commit(previous_file)
    if item.status == Status.FAILED and not failed_before:
        events.record(WebhookEvent.CHECKLIST_ITEM_FAILED, item, item.use_case.team_id)
    return item


@transaction.atomic
def waive_item(
    *,
    item: ChecklistItem,
    by: AbstractBaseUser,
    reason: str,
    expires_on: datetime.date | None = None,
    today: datetime.date | None = None,
) -> ChecklistItem:
    """Waive an item: portfolio managers only, with a written reason and an optional expiry date."""
    if not selectors.is_portfolio_manager(by):
        raise PermissionDenied(_("Only portfolio managers waive checklist items."))
    errors = {}
    reason = (reason or "").strip()
    if not reason:
        errors["waiver_reason"] = [_("A waiver needs a written reason.")]
    today = today or timezone.localdate()
    if expires_on is not None and expires_on <= today:
        errors["waiver_expires_on"] = [_("The expiry date must be after today.")]
    if errors:
        raise ValidationError(errors)
    item = _lock(item)
    item.status = Status.WAIVED
    item.waiver_reason, item.waived_by, item.waived_at, item.waiver_expires_on = reason, by, timezone.now(), expires_on
    _save(item, by=by, reason="waived")
    events.record(WebhookEvent.CHECKLIST_ITEM_WAIVED, item, item.use_case.team_id)
    return item


@transaction.atomic
def lift_waiver(*, item: ChecklistItem, by: AbstractBaseUser) -> ChecklistItem:
    """End a waiver before it expires: the item is open again, or its rule decides it."""
    if not selectors.is_portfolio_manager(by):
        raise PermissionDenied(_("Only a portfolio manager can lift a waiver."))
    item = _lock(item)
    if item.status != Status.WAIVED:
        raise ValidationError({"status": _("The item is not waived.")})
    item.status = Status.OPEN
    item.detail = ""
    _clear_waiver(item)
    _save(item, by=by, reason="waiver lifted")
    # An automatic item takes its rule's outcome again at once.
    evaluate_checklists(use_case_ids=[item.use_case_id])
    item.refresh_from_db()
    return item


@transaction.atomic
def update_item(*, item: ChecklistItem, by: AbstractBaseUser, **changes: Any) -> ChecklistItem:
    """The write behind a PATCH of a checklist item: waive, lift a waiver, or record evidence and status.

    ``changes`` holds any of ``status``, ``evidence_text``, ``evidence_url``,
    ``evidence_file``, ``waiver_reason`` and ``waiver_expires_on``.
    """
    status = changes.get("status")
    evidence = {
        argument: changes[name]
        for name, argument in (("evidence_text", "text"), ("evidence_url", "url"), ("evidence_file", "file"))
        if name in changes
    }
    if status == Status.WAIVED:
        item = waive_item(
            item=item, by=by, reason=changes.get("waiver_reason", ""), expires_on=changes.get("waiver_expires_on")
        )
        return record_evidence(item=item, by=by, **evidence) if evidence else item
    if "waiver_reason" in changes or "waiver_expires_on" in changes:
        raise ValidationError({"waiver_reason": _('To waive the item, send status "waived" with the reason.')})
    is_automatic = item.template.kind == ChecklistTemplate.Kind.AUTOMATIC
    if status is not None and is_automatic and item.status == Status.WAIVED and status == Status.OPEN:
        item = lift_waiver(item=item, by=by)
        status = None
    if status is None and not evidence:
        return item
    return record_evidence(item=item, by=by, status=status, **evidence)
