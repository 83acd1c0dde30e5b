"""The ``data`` of each webhook event: a contract with receivers, versioned on its own.

These serializers are separate from the API's on purpose: a field added to, renamed in or
removed from ``/api/v1/`` does not change what receivers get. They are stock REST
framework serializers with every field listed, read-only, and
``tests/portfolio/test_webhook_payloads.py`` pins the keys of every payload. A change to a
payload is a new ``PAYLOAD_VERSION``, announced to receivers in the ``X-Webhook-Version``
header and the body's ``version``.
"""

from __future__ import annotations

import os

from django.urls import reverse
from rest_framework import serializers

from portfolio.models import ChecklistItem, Deployment, RecomputeJob, UseCase
from pricing.models import Price

PAYLOAD_VERSION = 1


class UseCasePayload(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = UseCase
        fields = [
            "id",
            "team",
            "external_id",
            "title",
            "description",
            "category",
            "stage",
            "owner",
            "risk_tier",
            "data_classification",
            "currency",
            "hours_saved_per_month",
            "hourly_rate",
            "other_monthly_benefit",
            "one_time_cost",
            "monthly_fixed_cost",
            "horizon_months",
            "expected_monthly_active_users",
            "ai_role",
            "frameworks",
            "monthly_cost",
            "monthly_benefit",
            "roi_pct",
            "npv",
            "payback_months",
            "governance_status",
            "computed_at",
            "needs_recompute",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class DeploymentPayload(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="key", read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "use_case",
            "name",
            "model",
            "hosting",
            "environment",
            "status",
            "requests_per_month",
            "avg_input_tokens",
            "avg_output_tokens",
            "cached_input_ratio",
            "data_processing_agreement",
            "self_hosting_profile",
            "gpu_type",
            "gpu_count",
            "gpu_hourly_cost",
            "hours_per_month",
            "monthly_fixed_cost",
            "monthly_cost",
            "computed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ChecklistItemPayload(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(source="use_case.team", slug_field="slug", read_only=True)
    code = serializers.CharField(source="template.code", read_only=True)
    framework = serializers.CharField(source="template.framework", read_only=True)
    category = serializers.CharField(source="template.category", read_only=True)
    kind = serializers.CharField(source="template.kind", read_only=True)
    title = serializers.CharField(source="template.title", read_only=True)
    guidance = serializers.CharField(source="template.guidance", read_only=True)
    reference = serializers.CharField(source="template.reference", read_only=True)
    evidence_file = serializers.SerializerMethodField()
    evidence_file_name = serializers.SerializerMethodField()
    recorded_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    waived_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ChecklistItem
        fields = [
            "id",
            "use_case",
            "team",
            "code",
            "framework",
            "category",
            "kind",
            "title",
            "guidance",
            "reference",
            "required",
            "status",
            "detail",
            "evidence_text",
            "evidence_url",
            "evidence_file",
            "evidence_file_name",
            "recorded_by",
            "recorded_at",
            "waiver_reason",
            "waived_by",
            "waived_at",
            "waiver_expires_on",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_evidence_file(self, item) -> str | None:
        # The API's path of the file (there is no request to make it absolute from).
        return reverse("api:checklist-item-evidence-file", args=[item.pk]) if item.evidence_file else None

    def get_evidence_file_name(self, item) -> str | None:
        return os.path.basename(item.evidence_file.name) if item.evidence_file else None


class PricePayload(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(slug_field="key", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = Price
        fields = [
            "id",
            "model",
            "team",
            "input_per_million",
            "output_per_million",
            "cached_input_per_million",
            "currency",
            "effective_from",
            "source",
            "source_url",
            "created_at",
        ]
        read_only_fields = fields


class RecomputeJobPayload(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    progress_pct = serializers.IntegerField(read_only=True)
    monthly_cost_delta = serializers.DecimalField(max_digits=21, decimal_places=2, read_only=True, allow_null=True)

    class Meta:
        model = RecomputeJob
        fields = [
            "id",
            "reason",
            "scope",
            "status",
            "total",
            "done",
            "progress_pct",
            "changed",
            "errors",
            "last_error",
            "currency",
            "monthly_cost_before",
            "monthly_cost_after",
            "monthly_cost_delta",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


# Each subject's payload serializer, and the related rows it reads (fetched in bulk).
PAYLOADS: dict[type, tuple[type[serializers.ModelSerializer], tuple[str, ...]]] = {
    UseCase: (UseCasePayload, ("team", "owner")),
    Deployment: (DeploymentPayload, ("model",)),
    ChecklistItem: (ChecklistItemPayload, ("template", "use_case__team", "recorded_by", "waived_by")),
    Price: (PricePayload, ("model", "team")),
    RecomputeJob: (RecomputeJobPayload, ("requested_by",)),
}
