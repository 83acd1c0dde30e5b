import datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portfolio import governance, services
from portfolio.models import ChecklistItem, ChecklistTemplate, Deployment, UseCase
from pricing import services as pricing_services
from pricing.models import LanguageModel, Licence
from tests.factories import ChecklistTemplateFactory, DeploymentFactory, UseCaseFactory, make_manager

pytestmark = pytest.mark.django_db

Status = ChecklistItem.Status
TODAY = datetime.date(2026, 3, 1)
# What a use case with the defaults (EU AI Act, risk not assessed, internal data, business
# user) and no deployment is checked against.
DEFAULT_CODES = {
    "core-licence-known",
    "core-licence-commercial-use",
    "core-licence-user-limit",
    "core-risk-tier",
    "eu-ai-literacy",
}


# --- Rules, without a database --------------------------------------------------------------

LLAMA3 = Licence(
    key="llama3-community", name="Llama 3 Community License", commercial_use=True, monthly_active_user_limit=700_000_000
)
QWEN = Licence(key="qwen", name="Qwen License", commercial_use=True, monthly_active_user_limit=100_000_000)
RESEARCH_ONLY = Licence(key="research", name="Research-only licence", commercial_use=False)
PROPRIETARY = Licence(key="proprietary", name="Proprietary API terms")


def deployment(key="openai/gpt-4o", licence=PROPRIETARY, *, pk=1, hosting="api", dpa=False, status="active"):
    model = LanguageModel(key=key, licence=licence)
    return Deployment(pk=pk, model=model, hosting=hosting, data_processing_agreement=dpa, status=status)


def use_case(**fields):
    return UseCase(**{"risk_tier": "minimal", "data_classification": "internal", **fields})


def template(**fields):
    return ChecklistTemplate(**{"code": "t", "framework": "core", "category": "ethics", "kind": "manual", **fields})


def test_a_model_without_a_licence_fails_the_licence_check():
    outcome = governance.licence_known(use_case(), [deployment(), deployment("x/mystery", None, pk=2)])
    assert outcome.status == Status.FAILED
    assert "x/mystery" in outcome.detail
    assert governance.licence_known(use_case(), [deployment()]).status == Status.PASSED
    assert governance.licence_known(use_case(), []).status == Status.PASSED


def test_commercial_use_fails_when_forbidden_and_stays_open_when_unknown():
    assert governance.licence_commercial_use(use_case(), [deployment("x/r", RESEARCH_ONLY)]).status == Status.FAILED
    assert governance.licence_commercial_use(use_case(), [deployment("x/u", None)]).status == Status.OPEN
    assert governance.licence_commercial_use(use_case(), [deployment()]).status == Status.PASSED


@pytest.mark.parametrize(
    ("licence", "users", "status"),
    [
        (LLAMA3, 800_000_000, Status.FAILED),
        (LLAMA3, 700_000_000, Status.PASSED),  # The clause is about more than 700 million.
        (QWEN, 150_000_000, Status.FAILED),
        (QWEN, 90_000_000, Status.PASSED),
        (PROPRIETARY, 5_000_000_000, Status.PASSED),
        (None, 10, Status.OPEN),
    ],
)
def test_monthly_active_users_above_the_licence_limit_fail(licence, users, status):
    outcome = governance.licence_user_limit(use_case(expected_monthly_active_users=users), [deployment("m/x", licence)])
    assert outcome.status == status


def test_the_failed_user_limit_explains_itself():
    outcome = governance.licence_user_limit(
        use_case(expected_monthly_active_users=800_000_000), [deployment("meta/llama-3-70b", LLAMA3)]
    )
    assert outcome.detail.startswith(
        "800,000,000 expected monthly active users exceed the limit 700,000,000 of "
        "Llama 3 Community License (meta/llama-3-70b)"
    )


@pytest.mark.parametrize(
    ("data", "hosting", "dpa", "status"),
    [
        ("confidential", "api", False, Status.FAILED),
        ("personal", "api", False, Status.FAILED),
        ("confidential", "api", True, Status.PASSED),
        ("confidential", "self_hosted", False, Status.PASSED),
        ("internal", "api", False, Status.PASSED),
        ("public", "api", False, Status.PASSED),
    ],
)
def test_sensitive_data_on_an_external_api_needs_a_data_processing_agreement(data, hosting, dpa, status):
    outcome = governance.data_processing_agreement(
        use_case(data_classification=data), [deployment(hosting=hosting, dpa=dpa)]
    )
    assert outcome.status == status


@pytest.mark.parametrize(
    ("tier", "status"),
    [("unassessed", Status.OPEN), ("unacceptable", Status.FAILED), ("high", Status.PASSED), ("minimal", Status.PASSED)],
)
def test_the_risk_tier_must_be_assessed_and_acceptable(tier, status):
    assert governance.risk_tier(use_case(risk_tier=tier), []).status == status


def test_conditions_narrow_where_a_template_applies():
    high_personal = use_case(
        risk_tier="high", data_classification="personal", ai_role="provider", frameworks=["eu_ai_act"]
    )
    api = [deployment(hosting="api")]
    assert governance.applies(template(), high_personal, api)
    assert governance.applies(template(applies_to_risk_tiers=["high"]), high_personal, api)
    assert not governance.applies(template(applies_to_risk_tiers=["limited"]), high_personal, api)
    assert governance.applies(template(applies_to_data_classifications=["personal"]), high_personal, api)
    assert not governance.applies(template(applies_to_ai_roles=["developer"]), high_personal, api)
    assert governance.applies(template(applies_to_hosting=["api"]), high_personal, api)
    assert not governance.applies(template(applies_to_hosting=["self_hosted"]), high_personal, api)
    assert governance.applies(template(framework="eu_ai_act"), high_personal, api)
    assert not governance.applies(template(framework="japan_ai_guidelines"), high_personal, api)


def test_stopped_deployments_are_out_of_scope():
    stopped = deployment("x/u", None, status="stopped")
    assert governance.deployments_in_scope([stopped]) == []


def test_roll_up_fails_before_open_before_compliant():
    assert governance.roll_up([Status.PASSED, Status.OPEN, Status.FAILED]) == "failed"
    assert governance.roll_up([Status.PASSED, Status.OPEN, Status.WAIVED]) == "open"
    assert governance.roll_up([Status.PASSED, Status.WAIVED]) == "compliant"
    assert governance.roll_up([]) == "compliant"


def test_reconcile_keeps_waivers_reopens_expired_ones_and_drops_what_no_longer_applies():
    automatic = template(pk=1, code="auto", kind="automatic", rule="risk_tier")
    manual = template(pk=2, code="manual", applies_to_risk_tiers=["high"])
    case = use_case(pk=7, risk_tier="unacceptable")
    waived = ChecklistItem(
        pk=11,
        template_id=1,
        status=Status.WAIVED,
        waiver_reason="Legal says fine",
        waiver_expires_on=TODAY + datetime.timedelta(days=1),
    )
    untouched = ChecklistItem(pk=12, template_id=3, status=Status.OPEN)

    # ``gone`` is no longer among the active templates.
    plan = governance.reconcile(case, [], [automatic, manual], [waived, untouched], today=TODAY)

    assert plan.create == [] and plan.delete == [untouched]
    assert waived.status == Status.WAIVED and plan.governance_status == "compliant"

    later = governance.reconcile(case, [], [automatic], [waived], today=TODAY + datetime.timedelta(days=1))
    assert (waived.status, waived.waiver_reason) == (Status.FAILED, "")
    assert later.update == [waived] and later.governance_status == "failed"


def test_an_item_with_evidence_is_kept_not_required_when_its_template_stops_applying():
    recorded = ChecklistItem(pk=1, template_id=9, status=Status.PASSED, evidence_text="Reviewed by legal.")
    plan = governance.reconcile(use_case(pk=1), [], [], [recorded], today=TODAY)
    assert plan.delete == [] and plan.update == [recorded]
    assert recorded.required is False


# --- Evaluation against the shipped templates ---------------------------------------------


def codes(case: UseCase) -> set[str]:
    return set(case.checklist_items.values_list("template__code", flat=True))


def status_of(case: UseCase, code: str) -> str:
    return case.checklist_items.get(template__code=code).status


def evaluate(*cases: UseCase) -> governance.EvaluationResult:
    result = governance.evaluate_checklists(use_case_ids=[case.pk for case in cases], today=TODAY)
    for case in cases:
        case.refresh_from_db()
    return result


def test_a_new_use_case_gets_the_core_and_eu_items(team):
    case = UseCaseFactory(team=team)
    result = evaluate(case)
    assert codes(case) == DEFAULT_CODES
    assert result.created == len(DEFAULT_CODES)
    assert status_of(case, "core-risk-tier") == Status.OPEN
    assert status_of(case, "core-licence-known") == Status.PASSED
    assert case.governance_status == UseCase.GovernanceStatus.OPEN


def test_high_risk_requires_oversight_and_bias_items_and_personal_data_a_dpia(team):
    case = UseCaseFactory(team=team, risk_tier="high", data_classification="personal")
    evaluate(case)
    assert {
        "core-human-oversight",
        "core-bias-evaluation",
        "core-dpia",
        "core-data-processing-agreement",
        "eu-transparency",
        "eu-logging",
        "eu-deployer-duties",
    } <= codes(case)
    assert "eu-conformity-assessment" not in codes(case)  # A provider's duty, not a business user's.


def test_japanese_guidelines_add_the_ten_principles_for_the_companys_role(team):
    case = UseCaseFactory(team=team, frameworks=["japan_ai_guidelines"], ai_role="developer")
    evaluate(case)
    japanese = {code for code in codes(case) if code.startswith("jp-")}
    assert len(japanese - {"jp-developer-training-data"}) == 10
    assert "jp-developer-training-data" in japanese
    assert not any(code.startswith("eu-") for code in codes(case))


def test_an_unacceptable_risk_fails_the_use_case(team):
    case = UseCaseFactory(team=team, risk_tier="unacceptable")
    evaluate(case)
    assert status_of(case, "core-risk-tier") == Status.FAILED
    assert case.governance_status == UseCase.GovernanceStatus.FAILED


def test_evaluation_is_idempotent(team, llama70b):
    case = UseCaseFactory(team=team, risk_tier="high", expected_monthly_active_users=800_000_000)
    DeploymentFactory(use_case=case, model=llama70b)
    evaluate(case)
    history = ChecklistItem.history.count()

    again = evaluate(case)

    assert (again.created, again.updated, again.deleted, again.changed) == (0, 0, 0, [])
    assert ChecklistItem.history.count() == history
    assert status_of(case, "core-licence-user-limit") == Status.FAILED


def test_items_follow_the_conditions_and_keep_recorded_evidence(team, member):
    case = UseCaseFactory(team=team, risk_tier="high")
    evaluate(case)
    oversight = case.checklist_items.get(template__code="core-human-oversight")
    governance.record_evidence(
        item=oversight, by=member, text="Two reviewers sign off every answer.", status=Status.PASSED
    )

    UseCase.objects.filter(pk=case.pk).update(risk_tier="minimal")
    result = evaluate(case)

    assert codes(case) == DEFAULT_CODES | {"core-human-oversight"}
    oversight.refresh_from_db()
    assert (oversight.status, oversight.required) == (Status.PASSED, False)
    assert result.deleted == 5  # Bias evaluation and the EU AI Act's high-risk and transparency items.
    assert case.governance_status == UseCase.GovernanceStatus.OPEN  # eu-ai-literacy is still open.


def test_a_deactivated_template_stops_producing_items(team):
    case = UseCaseFactory(team=team)
    evaluate(case)
    ChecklistTemplate.objects.filter(code="eu-ai-literacy").update(active=False)
    evaluate(case)
    assert codes(case) == DEFAULT_CODES - {"eu-ai-literacy"}


def test_a_hosting_condition_looks_at_planned_and_active_deployments(team, llama70b):
    ChecklistTemplateFactory(code="gpu-hardening", category="security", applies_to_hosting=["self_hosted"])
    case = UseCaseFactory(team=team)
    evaluate(case)
    assert "gpu-hardening" not in codes(case)
    DeploymentFactory(
        use_case=case, model=llama70b, hosting="self_hosted", gpu_count=1, gpu_type="H100", status="planned"
    )
    evaluate(case)
    assert "gpu-hardening" in codes(case)


def queries_to_evaluate(ids: list[int]) -> int:
    with CaptureQueriesContext(connection) as captured:
        governance.evaluate_checklists(use_case_ids=ids, today=TODAY)
    return len(captured)


def test_evaluation_runs_a_constant_number_of_queries(team, gpt4o, llama70b, monkeypatch):
    # Django splits SQLite's bulk statements at 999 parameters; lift that (SQLite takes 32,766)
    # so the count is of the statements the evaluation asks for, as on PostgreSQL.
    monkeypatch.setattr(connection.features, "max_query_params", 32_766)

    def portfolio(size):
        cases = [UseCaseFactory(team=team, risk_tier="high", data_classification="personal") for _ in range(size)]
        for case in cases:
            DeploymentFactory(use_case=case, model=gpt4o)
            DeploymentFactory(use_case=case, model=llama70b)
        return [case.pk for case in cases]

    few, many = portfolio(2), portfolio(40)
    assert queries_to_evaluate(few) == queries_to_evaluate(many)  # First evaluation: every item created.
    carol = make_manager(username="carol")
    for item in ChecklistItem.objects.filter(use_case_id__in=few + many, template__code="core-dpia"):
        governance.waive_item(item=item, by=carol, reason="DPIA of the whole platform covers it.")
    assert queries_to_evaluate(few) == queries_to_evaluate(many)  # Nothing changed: reads only.
    UseCase.objects.filter(pk__in=few + many).update(expected_monthly_active_users=800_000_000)
    assert queries_to_evaluate(few) == queries_to_evaluate(many)  # Llama's user limit fails, in bulk.
    assert ChecklistItem.objects.filter(template__code="core-licence-user-limit", status="failed").count() == 42


def test_removing_items_costs_one_history_row_each(team):
    few = [UseCaseFactory(team=team, data_classification="personal").pk for _ in range(2)]
    many = [UseCaseFactory(team=team, data_classification="personal").pk for _ in range(12)]
    governance.evaluate_checklists(use_case_ids=few + many, today=TODAY)
    UseCase.objects.filter(pk__in=few + many).update(data_classification="confidential")

    # Each use case loses its DPIA item: the deletion's history row is written per item.
    assert queries_to_evaluate(many) - queries_to_evaluate(few) == len(many) - len(few)
    assert not ChecklistItem.objects.filter(template__code="core-dpia").exists()


# --- Evidence, waivers and expiry -----------------------------------------------------------


@pytest.fixture
def literacy(team):
    case = UseCaseFactory(team=team, risk_tier="minimal")
    evaluate(case)
    return case.checklist_items.get(template__code="eu-ai-literacy")


def test_only_portfolio_managers_waive_and_always_with_a_reason(literacy, member, manager):
    with pytest.raises(PermissionDenied):
        governance.waive_item(item=literacy, by=member, reason="Trust me.")
    with pytest.raises(ValidationError) as missing:
        governance.waive_item(item=literacy, by=manager, reason="   ")
    assert "waiver_reason" in missing.value.message_dict

    waived = governance.waive_item(item=literacy, by=manager, reason="Covered by the group-wide course.")

    assert (waived.status, waived.waived_by, waived.waiver_reason) == (
        Status.WAIVED,
        manager,
        "Covered by the group-wide course.",
    )
    assert UseCase.objects.get(pk=literacy.use_case_id).governance_status == UseCase.GovernanceStatus.COMPLIANT


def test_a_waiver_cannot_expire_in_the_past(literacy, manager):
    with pytest.raises(ValidationError) as error:
        governance.waive_item(item=literacy, by=manager, reason="ok", expires_on=datetime.date(2020, 1, 1))
    assert "waiver_expires_on" in error.value.message_dict


def test_an_expired_waiver_reopens_the_item(literacy, manager):
    governance.waive_item(
        item=literacy,
        by=manager,
        reason="Until the course runs.",
        expires_on=TODAY + datetime.timedelta(days=30),
        today=TODAY,
    )

    assert governance.expire_waivers(today=TODAY + datetime.timedelta(days=29)).updated == 0
    result = governance.expire_waivers(today=TODAY + datetime.timedelta(days=30))

    literacy.refresh_from_db()
    assert result.updated == 1
    assert (literacy.status, literacy.waiver_reason, literacy.waived_by) == (Status.OPEN, "", None)
    assert "expired" in literacy.detail
    assert UseCase.objects.get(pk=literacy.use_case_id).governance_status == UseCase.GovernanceStatus.OPEN
    assert literacy.history.first().history_change_reason == "checklist evaluation"


def test_a_manual_item_passes_only_with_evidence(literacy, member):
    with pytest.raises(ValidationError) as error:
        governance.record_evidence(item=literacy, by=member, status=Status.PASSED)
    assert "evidence_text" in error.value.message_dict

    item = governance.record_evidence(
        item=literacy, by=member, url="https://intranet.example.com/ai-course", status=Status.PASSED
    )
    assert (item.status, item.recorded_by) == (Status.PASSED, member)
    assert item.recorded_at is not None


def test_an_automatic_items_status_cannot_be_set_by_hand(team, member):
    case = UseCaseFactory(team=team)
    evaluate(case)
    with pytest.raises(ValidationError):
        governance.record_evidence(
            item=case.checklist_items.get(template__code="core-risk-tier"), by=member, status=Status.PASSED
        )


def test_lifting_a_waiver_is_for_managers_and_reapplies_the_rule(team, member, manager):
    case = UseCaseFactory(team=team)
    evaluate(case)
    risk = governance.waive_item(
        item=case.checklist_items.get(template__code="core-risk-tier"), by=manager, reason="Assessed offline."
    )
    with pytest.raises(PermissionDenied):
        governance.update_item(item=risk, by=member, status=Status.OPEN)
    lifted = governance.update_item(item=risk, by=manager, status=Status.OPEN)
    assert (lifted.status, lifted.waiver_reason) == (Status.OPEN, "")


# --- The stage gate through the services ----------------------------------------------------


def test_moving_into_production_needs_every_required_item_cleared(team, member, manager):
    case = services.create_use_case(team=team, title="FAQ bot", risk_tier="minimal")
    evaluate(case)  # What the recompute after the creation does.
    with pytest.raises(governance.GateRefused) as refused:
        services.update_use_case(use_case=case, stage="production")
    assert [item["code"] for item in refused.value.blocking_items] == ["eu-ai-literacy"]
    assert UseCase.objects.get(pk=case.pk).stage == "idea"

    item = ChecklistItem.objects.get(use_case=case, template__code="eu-ai-literacy")
    governance.record_evidence(item=item, by=member, text="Course completed by all operators.", status="passed")
    case.refresh_from_db()
    services.update_use_case(use_case=case, stage="production")
    assert UseCase.objects.get(pk=case.pk).stage == "production"


def test_creating_a_use_case_straight_into_production_passes_the_gate(team):
    with pytest.raises(governance.GateRefused) as refused:
        services.create_use_case(team=team, title="Shadow IT bot", stage="production")
    # Created by the evaluation the refusal rolls back: no ids to show.
    assert {item["id"] for item in refused.value.blocking_items} == {None}
    assert not UseCase.objects.exists() and not ChecklistItem.objects.exists()


def test_the_optional_payback_rule(team, settings, manager):
    settings.GATE_REQUIRES_PAYBACK = True
    case = services.create_use_case(
        team=team, title="Costly", risk_tier="minimal", one_time_cost=1000, monthly_fixed_cost=100, horizon_months=12
    )
    evaluate(case)
    governance.waive_item(
        item=case.checklist_items.get(template__code="eu-ai-literacy"), by=manager, reason="Pilot users only."
    )
    with pytest.raises(governance.GateRefused) as refused:
        services.update_use_case(use_case=case, stage="production")
    assert refused.value.blocking_items == [] and "pay back" in refused.value.reasons[0]

    services.update_use_case(use_case=case, stage="production", other_monthly_benefit=500)
    assert UseCase.objects.get(pk=case.pk).stage == "production"


def test_a_refused_gate_is_a_row_error_in_a_bulk_upsert(team):
    rows = [
        services.BulkRow(team=team, external_id="ok", fields={"title": "Fine", "stage": "pilot"}),
        services.BulkRow(team=team, external_id="early", fields={"title": "Too early", "stage": "production"}),
    ]
    with pytest.raises(ValidationError) as error:
        services.bulk_upsert_use_cases(rows=rows)
    assert list(error.value.message_dict) == ["1"]
    assert "eu-ai-literacy" in error.value.message_dict["1"][0]
    assert not UseCase.objects.exists()


def test_a_licence_change_flags_its_users_for_the_recompute(team, llama70b):
    case = UseCaseFactory(team=team)
    DeploymentFactory(use_case=case, model=llama70b)
    UseCase.objects.filter(pk=case.pk).update(needs_recompute=False)
    licence = llama70b.licence
    licence.monthly_active_user_limit = 500_000_000

    pricing_services.save_licence(licence=licence)

    assert UseCase.objects.get(pk=case.pk).needs_recompute is True


def test_history_records_who_waived(literacy):
    carol = make_manager(username="carol-2")
    governance.waive_item(item=literacy, by=carol, reason="Group course.")
    record = literacy.history.first()
    assert (record.history_user, record.history_change_reason, record.status) == (carol, "waived", "waived")
