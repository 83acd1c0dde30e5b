from django.contrib.auth import get_user_model
from rest_framework import serializers

from portfolio import selectors
from portfolio.models import (
    CostSnapshot,
    Deployment,
    Membership,
    PortfolioSnapshot,
    ProofOfConcept,
    RecomputeJob,
    Team,
    UseCase,
)
from pricing.models import LanguageModel

MAX_BULK_ROWS = 1000


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "slug", "created_at"]
        read_only_fields = ["id", "created_at"]


class MembershipSerializer(serializers.ModelSerializer):
    """A user's role in a team; leads manage their own team's members."""

    user = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.all())
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())

    class Meta:
        model = Membership
        fields = ["id", "user", "team", "role", "created_at"]
        read_only_fields = ["id", "created_at"]
        # One membership per user and team is checked by the service, with the model's message.
        validators = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            # Only the caller's teams can be named; others read as "does not exist".
            self.fields["team"].queryset = selectors.visible_teams(user=request.user)
        if self.instance is not None:
            # A membership changes role only; moving someone is a removal and an addition.
            self.fields["user"].read_only = True
            self.fields["team"].read_only = True


COMPUTED_USE_CASE_FIELDS = ["monthly_cost", "monthly_benefit", "roi_pct", "npv", "payback_months",
                            "governance_status", "computed_at", "needs_recompute", "version"]


class UseCaseSerializer(serializers.ModelSerializer):
    """A use case; ``team`` is a slug, set on creation only. Computed figures are read-only."""

    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    owner = serializers.SlugRelatedField(
        slug_field="username", required=False, allow_null=True,
        queryset=get_user_model().objects.all(),
    )

    class Meta:
        model = UseCase
        fields = ["id", "team", "external_id", "title", "description", "category", "stage", "owner", "risk_tier",
                  "data_classification", "currency", "hours_saved_per_month", "hourly_rate",
                  "other_monthly_benefit", "one_time_cost", "monthly_fixed_cost", "horizon_months",
                  "expected_monthly_active_users", *COMPUTED_USE_CASE_FIELDS, "created_at", "updated_at"]
        read_only_fields = ["id", *COMPUTED_USE_CASE_FIELDS, "created_at", "updated_at"]
        # (team, external_id) uniqueness is checked by the service with the model's message.
        validators = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            # Only the caller's teams can be chosen; others read as "does not exist".
            self.fields["team"].queryset = selectors.visible_teams(user=request.user)
        if self.instance is not None and not isinstance(self.instance, list):
            self.fields["team"].read_only = True


class SyncUseCaseSerializer(UseCaseSerializer):
    """A use case synced by external id: team and external id come from the URL."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].read_only = True
        self.fields["external_id"].read_only = True


class BulkUseCaseRowSerializer(UseCaseSerializer):
    external_id = serializers.RegexField(r"^[A-Za-z0-9._:-]+$", max_length=128)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].read_only = False


class DeploymentSerializer(serializers.ModelSerializer):
    use_case = serializers.PrimaryKeyRelatedField(queryset=UseCase.objects.all())
    model = serializers.SlugRelatedField(slug_field="key", queryset=LanguageModel.objects.all())

    class Meta:
        model = Deployment
        fields = ["id", "use_case", "name", "model", "hosting", "environment", "status", "requests_per_month",
                  "avg_input_tokens", "avg_output_tokens", "cached_input_ratio", "data_processing_agreement",
                  "self_hosting_profile", "gpu_type", "gpu_count", "gpu_hourly_cost", "hours_per_month",
                  "monthly_fixed_cost", "monthly_cost", "computed_at", "created_at", "updated_at"]
        read_only_fields = ["id", "monthly_cost", "computed_at", "created_at", "updated_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["use_case"].queryset = selectors.visible_use_cases(user=request.user)
        if self.instance is not None:
            self.fields["use_case"].read_only = True


class ProofOfConceptSerializer(serializers.ModelSerializer):
    use_case = serializers.PrimaryKeyRelatedField(queryset=UseCase.objects.all())
    model = serializers.SlugRelatedField(slug_field="key", queryset=LanguageModel.objects.all(), required=False,
                                         allow_null=True)

    class Meta:
        model = ProofOfConcept
        fields = ["id", "use_case", "hypothesis", "success_criteria", "model", "status", "start_date", "end_date",
                  "kpi_name", "baseline_kpi", "measured_kpi", "cost", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["use_case"].queryset = selectors.visible_use_cases(user=request.user)
        if self.instance is not None:
            self.fields["use_case"].read_only = True


class CostSnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = CostSnapshot
        fields = ["id", "use_case", "created_at", "priced_on", "reason", "currency", "previous_monthly_cost",
                  "monthly_cost", "monthly_benefit", "roi_pct", "npv", "payback_months", "breakdown"]
        read_only_fields = fields


class WhatIfSerializer(serializers.Serializer):
    from_model = serializers.SlugRelatedField(slug_field="key", queryset=LanguageModel.objects.all())
    to_model = serializers.SlugRelatedField(slug_field="key", queryset=LanguageModel.objects.all())
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False,
                                        allow_null=True)
    stage = serializers.ChoiceField(choices=UseCase.Stage.choices, required=False, allow_null=True)

    def validate(self, attrs):
        if attrs["from_model"] == attrs["to_model"]:
            raise serializers.ValidationError({"to_model": "Choose a model other than the one being replaced."})
        return attrs


class RecomputeJobSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    progress_pct = serializers.IntegerField(read_only=True)
    monthly_cost_delta = serializers.DecimalField(max_digits=21, decimal_places=2, read_only=True, allow_null=True)

    class Meta:
        model = RecomputeJob
        fields = ["id", "reason", "scope", "status", "total", "done", "progress_pct", "changed", "errors",
                  "last_error", "currency", "monthly_cost_before", "monthly_cost_after", "monthly_cost_delta",
                  "requested_by", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class PortfolioSnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = PortfolioSnapshot
        fields = ["id", "taken_on", "taken_at", "currency", "use_cases", "monthly_cost", "monthly_benefit", "npv",
                  "by_team", "by_stage", "by_model"]
        read_only_fields = fields
