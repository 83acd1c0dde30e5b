import os

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from config.serializers import ModelSerializer
from portfolio import selectors
from portfolio.models import (
    EVIDENCE_FILE_EXTENSIONS,
    SELECTABLE_FRAMEWORKS,
    ChecklistItem,
    ChecklistTemplate,
    CostSnapshot,
    Deployment,
    GovernanceFramework,
    Membership,
    PortfolioSnapshot,
    ProofOfConcept,
    RecomputeJob,
    Team,
    UseCase,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from pricing.models import LanguageModel

MAX_BULK_ROWS = 1000


class VisibleTeamField(serializers.SlugRelatedField):
    """A team by slug, among the caller's teams: others read as "does not exist".

    Scoped when the value is validated rather than in ``__init__``, so it holds in nested
    and list serializers too, which see the request only once bound to their parent.
    """

    def __init__(self, **kwargs):
        super().__init__(slug_field="slug", queryset=Team.objects.none(), **kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        return Team.objects.none() if request is None else selectors.visible_teams(user=request.user)

    def to_internal_value(self, data):
        # A bulk request names teams on up to a thousand rows: in a list, the caller's teams
        # are read once, in one query (the field lives as long as its serializer).
        if not isinstance(data, str):
            return super().to_internal_value(data)
        if "_found" not in self.__dict__:
            in_list = isinstance(getattr(self.parent, "parent", None), serializers.ListSerializer)
            self._found = {team.slug: team for team in self.get_queryset()} if in_list else {}
        if data not in self._found:
            self._found[data] = super().to_internal_value(data)  # Unknown or not visible: the usual error.
        return self._found[data]


class TeamSerializer(ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "slug", "created_at"]
        read_only_fields = ["id", "created_at"]


class MembershipSerializer(ModelSerializer):
    """A user's role in a team; leads manage their own team's members."""

    user = serializers.SlugRelatedField(slug_field="username", queryset=get_user_model().objects.all())
    team = VisibleTeamField()

    class Meta:
        model = Membership
        fields = ["id", "user", "team", "role", "created_at"]
        read_only_fields = ["id", "created_at"]
        # One membership per user and team is checked by the service, with the model's message.
        validators = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance is not None:
            # A membership changes role only; moving someone is a removal and an addition.
            self.fields["user"].read_only = True
            self.fields["team"].read_only = True


COMPUTED_USE_CASE_FIELDS = [
    "monthly_cost",
    "monthly_benefit",
    "roi_pct",
    "npv",
    "payback_months",
    "governance_status",
    "computed_at",
    "needs_recompute",
    "version",
]


class FrameworksField(serializers.ListField):
    """The governance frameworks a use case follows on top of the core rules, each once."""

    child = serializers.ChoiceField(
        choices=[(value, label) for value, label in GovernanceFramework.choices if value in SELECTABLE_FRAMEWORKS]
    )

    def to_internal_value(self, data):
        frameworks = super().to_internal_value(data)
        if len(set(frameworks)) != len(frameworks):
            raise serializers.ValidationError("Name each framework once.")
        return frameworks


class OwnerField(serializers.SlugRelatedField):
    """A use case's owner by username.

    Whether the user may own it (a member of its team) is the service's check, which
    answers an unknown username and an outsider with one message. So an unknown name is
    not refused here, where its error would tell the two apart: it reaches the service as
    an unsaved user, which the check refuses.
    """

    def __init__(self, **kwargs):
        super().__init__(slug_field="username", queryset=get_user_model().objects.none(), **kwargs)

    def get_queryset(self):
        # Only a member of one of the caller's teams can own a use case the caller writes.
        request = self.context.get("request")
        if request is None:
            return get_user_model().objects.none()
        teams = selectors.visible_teams(user=request.user)
        return get_user_model().objects.filter(memberships__team__in=teams).distinct()

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        # A bulk request names owners on up to a thousand rows: in a list, the candidates
        # are read once, in one query (the field lives as long as its serializer).
        if "_found" not in self.__dict__:
            in_list = isinstance(getattr(self.parent, "parent", None), serializers.ListSerializer)
            self._found = {user.username: user for user in self.get_queryset()} if in_list else None
        if self._found is not None:
            user = self._found.get(data)
        else:
            user = self.get_queryset().filter(username=data).first()
        return user if user is not None else get_user_model()(username=data)


class UseCaseSerializer(ModelSerializer):
    """A use case; ``team`` is a slug, set on creation only. Computed figures are read-only."""

    team = VisibleTeamField()
    owner = OwnerField(required=False, allow_null=True)
    frameworks = FrameworksField(required=False)

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
            *COMPUTED_USE_CASE_FIELDS,
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", *COMPUTED_USE_CASE_FIELDS, "created_at", "updated_at"]
        # (team, external_id) uniqueness is checked by the service with the model's message.
        validators = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
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


class UseCaseChildSerializer(ModelSerializer):
    """A record of a use case: chosen among the use cases the user sees, and never moved to another."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["use_case"].queryset = selectors.visible_use_cases(user=request.user)
        if self.instance is not None:
            self.fields["use_case"].read_only = True


class DeploymentSerializer(UseCaseChildSerializer):
    use_case = serializers.PrimaryKeyRelatedField(queryset=UseCase.objects.all())
    model = serializers.SlugRelatedField(slug_field="key", queryset=LanguageModel.objects.all())

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
        read_only_fields = ["id", "monthly_cost", "computed_at", "created_at", "updated_at"]


class ProofOfConceptSerializer(UseCaseChildSerializer):
    use_case = serializers.PrimaryKeyRelatedField(queryset=UseCase.objects.all())
    model = serializers.SlugRelatedField(
        slug_field="key", queryset=LanguageModel.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = ProofOfConcept
        fields = [
            "id",
            "use_case",
            "hypothesis",
            "success_criteria",
            "model",
            "status",
            "start_date",
            "end_date",
            "kpi_name",
            "baseline_kpi",
            "measured_kpi",
            "cost",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class CostSnapshotSerializer(ModelSerializer):
    class Meta:
        model = CostSnapshot
        fields = [
            "id",
            "use_case",
            "created_at",
            "priced_on",
            "reason",
            "currency",
            "previous_monthly_cost",
            "monthly_cost",
            "monthly_benefit",
            "roi_pct",
            "npv",
            "payback_months",
            "breakdown",
        ]
        read_only_fields = fields


class WhatIfSerializer(serializers.Serializer):
    from_model = serializers.SlugRelatedField(slug_field="key", queryset=LanguageModel.objects.all())
    to_model = serializers.SlugRelatedField(slug_field="key", queryset=LanguageModel.objects.all())
    team = VisibleTeamField(required=False, allow_null=True)
    stage = serializers.ChoiceField(choices=UseCase.Stage.choices, required=False, allow_null=True)

    def validate(self, attrs):
        if attrs["from_model"] == attrs["to_model"]:
            raise serializers.ValidationError({"to_model": "Choose a model other than the one being replaced."})
        return attrs


# --- Answers built by hand (bulk upsert, summary, what-if), described for the schema --------


def money(**kwargs) -> serializers.DecimalField:
    """An amount in the answer's currency, as a string (no decimals for JPY)."""
    return serializers.DecimalField(max_digits=40, decimal_places=2, **kwargs)


class BulkUpsertRowResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.SlugField()
    external_id = serializers.CharField()
    created = serializers.BooleanField(help_text="True when the row was created, false when updated.")


class BulkUpsertResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    results = BulkUpsertRowResultSerializer(many=True)


class SummaryGroupSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Use cases, but for those in ``unconverted``.")
    monthly_cost = money()
    monthly_benefit = money()
    npv = money()


class SummaryTotalsSerializer(SummaryGroupSerializer):
    stale = serializers.IntegerField(help_text="Use cases whose figures wait for a recompute.")


class SummaryModelSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Active deployments.")
    monthly_cost = money()


class ComplianceSummarySerializer(serializers.Serializer):
    use_cases = serializers.DictField(child=serializers.IntegerField(), help_text="Use cases by governance status.")
    compliant_pct = serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True)
    failed_items_by_category = serializers.DictField(child=serializers.IntegerField())
    open_items_by_category = serializers.DictField(child=serializers.IntegerField())
    waived_items_by_category = serializers.DictField(child=serializers.IntegerField())


class UnconvertedSerializer(serializers.Serializer):
    count = serializers.IntegerField(
        help_text="Use cases left out of the figures: no exchange rate in force converts their currency."
    )
    currencies = serializers.ListField(child=serializers.CharField(), help_text="Their currencies.")


class PortfolioSummarySerializer(serializers.Serializer):
    currency = serializers.CharField()
    totals = SummaryTotalsSerializer()
    by_team = serializers.DictField(child=SummaryGroupSerializer(), help_text="By team slug.")
    by_stage = serializers.DictField(child=SummaryGroupSerializer())
    by_model = serializers.DictField(child=SummaryModelSerializer(), help_text="Active deployments by model key.")
    unconverted = UnconvertedSerializer(
        help_text="Use cases (with their deployments) in no figure above, for want of an exchange rate."
    )
    compliance = ComplianceSummarySerializer()


LICENCE_FINDINGS = ["licence_unknown", "commercial_use_not_allowed", "monthly_active_user_limit_exceeded"]


class WhatIfUseCaseSerializer(serializers.Serializer):
    """A use case the swap touches, in its own currency."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    team = serializers.SlugField()
    currency = serializers.CharField()
    current_monthly_cost = money()
    projected_monthly_cost = money()
    monthly_savings = money()
    licence_findings_before = serializers.ListField(child=serializers.ChoiceField(choices=LICENCE_FINDINGS))
    licence_findings_after = serializers.ListField(child=serializers.ChoiceField(choices=LICENCE_FINDINGS))
    governance_changes = serializers.BooleanField(help_text="True when the licence findings differ after the swap.")


class WhatIfResultSerializer(serializers.Serializer):
    from_model = serializers.CharField()
    to_model = serializers.CharField()
    currency = serializers.CharField()
    current_monthly_cost = money()
    projected_monthly_cost = money()
    monthly_savings = money()
    affected_use_cases = WhatIfUseCaseSerializer(many=True)
    unpriced_deployments = serializers.ListField(
        child=serializers.IntegerField(), help_text="Ids of deployments no price in force covers, left out."
    )
    unconverted = UnconvertedSerializer(
        help_text="Use cases listed in their own currency but left out of the totals, for want of an exchange rate."
    )


class RecomputeJobSerializer(ModelSerializer):
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


class PortfolioSnapshotSerializer(ModelSerializer):
    class Meta:
        model = PortfolioSnapshot
        fields = [
            "id",
            "taken_on",
            "taken_at",
            "currency",
            "use_cases",
            "monthly_cost",
            "monthly_benefit",
            "npv",
            "by_team",
            "by_stage",
            "by_model",
        ]
        read_only_fields = fields


# --- Governance ----------------------------------------------------------------------------


class ChecklistItemSerializer(ModelSerializer):
    """A governance checklist item of a use case: its template's text, status, evidence and waiver."""

    team = serializers.SlugRelatedField(source="use_case.team", slug_field="slug", read_only=True)
    code = serializers.CharField(source="template.code", read_only=True)
    framework = serializers.ChoiceField(
        source="template.framework", choices=GovernanceFramework.choices, read_only=True
    )
    category = serializers.ChoiceField(
        source="template.category", choices=ChecklistTemplate.Category.choices, read_only=True
    )
    kind = serializers.ChoiceField(source="template.kind", choices=ChecklistTemplate.Kind.choices, read_only=True)
    title = serializers.CharField(source="template.title", read_only=True)
    guidance = serializers.CharField(source="template.guidance", read_only=True)
    reference = serializers.CharField(source="template.reference", read_only=True)
    evidence_file = serializers.SerializerMethodField(help_text="Where to download the evidence file.")
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

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_evidence_file(self, item) -> str | None:
        if not item.evidence_file:
            return None
        return reverse("api:checklist-item-evidence-file", args=[item.pk], request=self.context.get("request"))

    def get_evidence_file_name(self, item) -> str | None:
        return os.path.basename(item.evidence_file.name) if item.evidence_file else None


class UpdateChecklistItemSerializer(serializers.Serializer):
    """A PATCH of a checklist item.

    Members record evidence, and the status of manual items (``open``, ``passed``,
    ``failed``). Portfolio managers waive an item with ``status: waived`` and a
    ``waiver_reason`` (an optional ``waiver_expires_on``), and lift a waiver by setting
    another status. An automatic item's status comes from its rule.
    """

    status = serializers.ChoiceField(choices=ChecklistItem.Status.choices, required=False)
    evidence_text = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    evidence_url = serializers.URLField(required=False, allow_blank=True, max_length=500)
    evidence_file = serializers.FileField(
        required=False,
        allow_null=True,
        max_length=255,
        help_text=f"Up to EVIDENCE_MAX_UPLOAD_BYTES; one of: {', '.join(EVIDENCE_FILE_EXTENSIONS)}. "
        "null removes the file.",
    )
    waiver_reason = serializers.CharField(required=False, allow_blank=True, max_length=5_000)
    waiver_expires_on = serializers.DateField(required=False, allow_null=True)


class AuditChangeSerializer(serializers.Serializer):
    field = serializers.CharField()
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)


class AuditEntrySerializer(serializers.Serializer):
    """One change in a record's audit trail: who, when, how and what."""

    history_id = serializers.IntegerField()
    history_date = serializers.DateTimeField()
    history_type = serializers.ChoiceField(choices=["created", "changed", "deleted"])
    history_user = serializers.CharField(allow_null=True)
    history_change_reason = serializers.CharField(allow_blank=True)
    changes = AuditChangeSerializer(many=True)


class BlockingItemSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="null: an item this change would create.")
    code = serializers.CharField()
    title = serializers.CharField()
    category = serializers.ChoiceField(choices=ChecklistTemplate.Category.choices)
    status = serializers.ChoiceField(choices=ChecklistItem.Status.choices)
    detail = serializers.CharField(allow_blank=True)


class GateRefusedSerializer(serializers.Serializer):
    """A stage change refused by the governance gate (409)."""

    detail = serializers.CharField()
    stage = serializers.CharField()
    blocking_items = BlockingItemSerializer(many=True)
    reasons = serializers.ListField(child=serializers.CharField())


# --- Webhooks --------------------------------------------------------------------------------


class WebhookTeamField(serializers.SlugRelatedField):
    """A team by slug, among those whose webhooks the caller manages: others read as "does not exist"."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="slug", queryset=Team.objects.none(), **kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        return Team.objects.none() if request is None else selectors.webhook_teams(user=request.user)


class WebhookEventsField(serializers.ListField):
    child = serializers.ChoiceField(choices=WebhookEvent.choices)

    def __init__(self, **kwargs):
        super().__init__(allow_empty=False, **kwargs)

    def to_internal_value(self, data):
        events = super().to_internal_value(data)
        if len(set(events)) != len(events):
            raise serializers.ValidationError("Name each event once.")
        return events


class WebhookSubscriptionSerializer(ModelSerializer):
    """A webhook subscription. ``team`` empty: the whole portfolio (managers only); set on creation only."""

    team = WebhookTeamField(required=False, allow_null=True, default=None)
    events = WebhookEventsField()
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = WebhookSubscription
        fields = [
            "id",
            "team",
            "description",
            "target_url",
            "events",
            "active",
            "disabled_reason",
            "consecutive_failures",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "disabled_reason", "consecutive_failures", "owner", "created_at", "updated_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance is not None and not isinstance(self.instance, list):
            self.fields["team"].read_only = True


class CreatedWebhookSubscriptionSerializer(WebhookSubscriptionSerializer):
    """The answer to a new subscription: the only time its signing secret is shown."""

    secret = serializers.CharField(read_only=True, help_text="Signs every delivery (X-Signature). Shown only here.")

    class Meta(WebhookSubscriptionSerializer.Meta):
        fields = [*WebhookSubscriptionSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookDeliverySerializer(ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "subscription",
            "event_type",
            "event_id",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "created_at",
            "delivered_at",
            "payload",
        ]
        read_only_fields = fields
