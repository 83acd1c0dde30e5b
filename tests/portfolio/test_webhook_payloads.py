"""Webhook payloads are a contract of their own: their keys are pinned here, apart from the API's."""

import pytest

from portfolio import services, webhooks
from portfolio.models import ChecklistItem, RecomputeJob
from portfolio.webhook_payloads import PAYLOAD_VERSION, PAYLOADS
from pricing.models import Price
from tests.factories import ChecklistTemplateFactory
from tests.test_architecture import import_graph

pytestmark = pytest.mark.django_db

USE_CASE_KEYS = {
    "id", "team", "external_id", "title", "description", "category", "stage", "owner", "risk_tier",
    "data_classification", "currency", "hours_saved_per_month", "hourly_rate", "other_monthly_benefit",
    "one_time_cost", "monthly_fixed_cost", "horizon_months", "expected_monthly_active_users", "ai_role",
    "frameworks", "monthly_cost", "monthly_benefit", "roi_pct", "npv", "payback_months", "governance_status",
    "computed_at", "needs_recompute", "version", "created_at", "updated_at",
}  # fmt: skip
DEPLOYMENT_KEYS = {
    "id", "use_case", "name", "model", "hosting", "environment", "status", "requests_per_month",
    "avg_input_tokens", "avg_output_tokens", "cached_input_ratio", "data_processing_agreement",
    "self_hosting_profile", "gpu_type", "gpu_count", "gpu_hourly_cost", "hours_per_month", "monthly_fixed_cost",
    "monthly_cost", "computed_at", "created_at", "updated_at",
}  # fmt: skip
CHECKLIST_ITEM_KEYS = {
    "id", "use_case", "team", "code", "framework", "category", "kind", "title", "guidance", "reference",
    "required", "status", "detail", "evidence_text", "evidence_url", "evidence_file", "evidence_file_name",
    "recorded_by", "recorded_at", "waiver_reason", "waived_by", "waived_at", "waiver_expires_on", "created_at",
    "updated_at",
}  # fmt: skip
PRICE_KEYS = {
    "id", "model", "team", "input_per_million", "output_per_million", "cached_input_per_million", "currency",
    "effective_from", "source", "source_url", "created_at",
}  # fmt: skip
JOB_KEYS = {
    "id", "reason", "scope", "status", "total", "done", "progress_pct", "changed", "errors", "last_error",
    "currency", "monthly_cost_before", "monthly_cost_after", "monthly_cost_delta", "requested_by", "created_at",
    "started_at", "finished_at",
}  # fmt: skip


def test_every_payload_keeps_its_keys(team, member, gpt4o):
    use_case = services.create_use_case(team=team, title="FAQ bot", owner=member, currency="USD")
    deployment = services.create_deployment(use_case=use_case, model=gpt4o, requests_per_month=1000)
    item = ChecklistItem.objects.create(use_case=use_case, template=ChecklistTemplateFactory())
    price = Price.objects.filter(model=gpt4o).first()
    job = RecomputeJob.objects.create(reason="x", scope={"all": True})
    shown = webhooks._represent([use_case, deployment, item, price, job])
    assert [set(data) for data in shown] == [USE_CASE_KEYS, DEPLOYMENT_KEYS, CHECKLIST_ITEM_KEYS, PRICE_KEYS, JOB_KEYS]
    assert shown[0]["team"] == "support" and shown[0]["owner"] == "alice" and shown[0]["currency"] == "USD"
    assert shown[1]["model"] == "openai/gpt-4o" and shown[1]["use_case"] == use_case.pk


def test_every_payload_is_read_only_and_every_subject_has_one():
    for serializer_class, _related in PAYLOADS.values():
        assert all(field.read_only for field in serializer_class().fields.values()), serializer_class


def test_payloads_do_not_follow_the_api_serializers():
    # An API change must not change the webhook contract silently.
    imported = import_graph()["portfolio.webhook_payloads"] | import_graph()["portfolio.webhooks"]
    assert not any(name.startswith(("portfolio.api", "pricing.api", "config.serializers")) for name in imported)


def test_the_payload_and_its_header_carry_the_version(team, settings):
    from tests.factories import WebhookSubscriptionFactory

    WebhookSubscriptionFactory(events=["use_case.created"], team=None)
    [delivery] = webhooks.emit("use_case.created", services.create_use_case(team=team, title="Bot"), team.pk)
    assert delivery.payload["version"] == PAYLOAD_VERSION == 1
