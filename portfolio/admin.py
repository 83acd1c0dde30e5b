from pathlib import PurePath

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from portfolio import events, governance, services, webhooks
from portfolio.models import (
    SELECTABLE_FRAMEWORKS,
    ChecklistItem,
    ChecklistTemplate,
    CostSnapshot,
    Deployment,
    GovernanceFramework,
    Membership,
    ProofOfConcept,
    Team,
    UseCase,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)

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


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role"]
    list_filter = ["role", "team"]
    list_select_related = ["user", "team"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]


class DeploymentInline(admin.StackedInline):
    model = Deployment
    extra = 0
    readonly_fields = ["monthly_cost", "computed_at"]
    autocomplete_fields = ["model"]
    show_change_link = True


class ProofOfConceptInline(admin.StackedInline):
    model = ProofOfConcept
    extra = 0
    autocomplete_fields = ["model"]
    show_change_link = True


def announce_deployment(deployment: Deployment, action: str) -> None:
    events.record(WebhookEvent.DEPLOYMENT_CHANGED, deployment, deployment.use_case.team_id, action=action)


class RecomputeOnSaveMixin:
    """Admin edits bypass the services, so saving does what they would: it flags and queues a
    recompute, and sends the webhook events (in the admin's transaction, so a failed save
    sends nothing)."""

    def use_case_id_of(self, obj):
        return obj.use_case_id

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.request_recompute(use_case_ids=[self.use_case_id_of(form.instance)])

    def save_formset(self, request, form, formset, change):
        if formset.model is Deployment:  # Inline deployments: shown as they were before deletion.
            for deleted in formset.deleted_forms:
                if deleted.instance.pk is not None:
                    announce_deployment(deleted.instance, "deleted")
        super().save_formset(request, form, formset, change)
        if formset.model is Deployment:
            for deployment in formset.new_objects:
                announce_deployment(deployment, "created")
            for deployment, _fields in formset.changed_objects:
                announce_deployment(deployment, "updated")

    def delete_model(self, request, obj):
        use_case_id = self.use_case_id_of(obj)
        super().delete_model(request, obj)
        services.request_recompute(use_case_ids=[use_case_id])

    def delete_queryset(self, request, queryset):
        use_case_ids = sorted({self.use_case_id_of(obj) for obj in queryset})
        super().delete_queryset(request, queryset)
        services.request_recompute(use_case_ids=use_case_ids)


def checkboxes(choices) -> forms.MultipleChoiceField:
    """A JSON list of choices edited as checkboxes; none ticked is an empty list."""
    return forms.MultipleChoiceField(choices=choices, required=False, widget=forms.CheckboxSelectMultiple)


class UseCaseAdminForm(forms.ModelForm):
    frameworks = checkboxes(
        [(value, label) for value, label in GovernanceFramework.choices if value in SELECTABLE_FRAMEWORKS]
    )

    class Meta:
        model = UseCase
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "owner" in self.fields:
            # An unknown user and an outsider read alike.
            self.fields["owner"].error_messages["invalid_choice"] = services.OWNER_OUTSIDE_TEAM

    def clean(self):
        data = super().clean()
        team = data.get("team")
        if team is not None:
            try:
                # Also when the use case moves to another team and keeps its owner.
                services.check_owner(team_id=team.pk, owner=data.get("owner"))
            except ValidationError as error:
                self.add_error(None, error)
        return data

    def clean_stage(self):
        stage = self.cleaned_data["stage"]
        previous = self.instance.stage if self.instance.pk else None
        if governance.moves_into_gate(previous_stage=previous, stage=stage):
            blockers = governance.last_evaluation_blockers(use_case=self.instance)
            if blockers:
                raise forms.ValidationError(blockers)
        return stage


@admin.register(UseCase)
class UseCaseAdmin(RecomputeOnSaveMixin, SimpleHistoryAdmin):
    form = UseCaseAdminForm
    list_display = [
        "title",
        "team",
        "stage",
        "category",
        "risk_tier",
        "currency",
        "monthly_cost",
        "roi_pct",
        "governance_status",
        "needs_recompute",
    ]
    list_filter = [
        "stage",
        "team",
        "category",
        "risk_tier",
        "data_classification",
        "governance_status",
        "needs_recompute",
        "currency",
    ]
    list_select_related = ["team"]
    search_fields = ["title", "description", "external_id"]
    readonly_fields = COMPUTED_USE_CASE_FIELDS + ["created_at", "updated_at"]
    autocomplete_fields = ["owner"]
    inlines = [DeploymentInline, ProofOfConceptInline]
    actions = ["recompute", "evaluate_governance"]

    def use_case_id_of(self, obj):
        return obj.pk

    def save_model(self, request, obj, form, change):
        previous_stage = form.initial.get("stage") if change else None
        super().save_model(request, obj, form, change)
        if not change:
            events.record(WebhookEvent.USE_CASE_CREATED, obj, obj.team_id)
            return
        events.record(WebhookEvent.USE_CASE_UPDATED, obj, obj.team_id)
        if obj.stage != previous_stage:
            events.record(WebhookEvent.USE_CASE_STAGE_CHANGED, obj, obj.team_id, previous_stage=previous_stage)

    @admin.action(description="Recompute cost and ROI")
    def recompute(self, request, queryset):
        services.request_recompute(use_case_ids=list(queryset.values_list("pk", flat=True)))

    @admin.action(description=_("Evaluate governance checklists"))
    def evaluate_governance(self, request, queryset):
        result = governance.evaluate_checklists(use_case_ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            _("%(count)s use cases evaluated; %(changed)s changed governance status.")
            % {"count": result.use_cases, "changed": len(result.changed)},
        )


@admin.register(Deployment)
class DeploymentAdmin(RecomputeOnSaveMixin, SimpleHistoryAdmin):
    list_display = [
        "__str__",
        "use_case",
        "model",
        "hosting",
        "environment",
        "status",
        "requests_per_month",
        "monthly_cost",
    ]
    list_filter = ["hosting", "environment", "status", "model"]
    list_select_related = ["use_case", "model"]
    search_fields = ["name", "use_case__title", "model__key"]
    readonly_fields = ["monthly_cost", "computed_at"]
    autocomplete_fields = ["use_case", "model"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        announce_deployment(obj, "updated" if change else "created")

    def delete_model(self, request, obj):
        announce_deployment(obj, "deleted")  # Shown as it was, before the row goes.
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for deployment in queryset.select_related("use_case"):
            announce_deployment(deployment, "deleted")
        super().delete_queryset(request, queryset)


@admin.register(ProofOfConcept)
class ProofOfConceptAdmin(SimpleHistoryAdmin):
    list_display = ["__str__", "use_case", "model", "status", "start_date", "end_date", "cost"]
    list_filter = ["status", "model"]
    list_select_related = ["use_case", "model"]
    search_fields = ["hypothesis", "use_case__title"]
    autocomplete_fields = ["use_case", "model"]


@admin.register(CostSnapshot)
class CostSnapshotAdmin(admin.ModelAdmin):
    list_display = [
        "use_case",
        "created_at",
        "priced_on",
        "currency",
        "previous_monthly_cost",
        "monthly_cost",
        "roi_pct",
        "npv",
        "reason",
    ]
    list_filter = ["currency", "priced_on"]
    list_select_related = ["use_case"]
    search_fields = ["use_case__title", "reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ChecklistTemplateForm(forms.ModelForm):
    applies_to_risk_tiers = checkboxes(UseCase.RiskTier.choices)
    applies_to_data_classifications = checkboxes(UseCase.DataClassification.choices)
    applies_to_hosting = checkboxes(Deployment.Hosting.choices)
    applies_to_ai_roles = checkboxes(UseCase.AiRole.choices)

    class Meta:
        model = ChecklistTemplate
        fields = "__all__"


@admin.register(ChecklistTemplate)
class ChecklistTemplateAdmin(SimpleHistoryAdmin):
    """Templates are data: edit, add or deactivate them; checklists follow at their next evaluation."""

    form = ChecklistTemplateForm
    list_display = ["code", "title", "framework", "category", "kind", "rule", "required", "active", "position"]
    list_filter = ["framework", "category", "kind", "required", "active"]
    search_fields = ["code", "title", "guidance", "reference"]
    fieldsets = [
        (None, {"fields": ["code", "framework", "category", "title", "guidance", "reference", "position"]}),
        (_("Decision"), {"fields": ["kind", "rule", "required", "active"]}),
        (
            _("Applies to (none ticked: any)"),
            {
                "fields": [
                    "applies_to_risk_tiers",
                    "applies_to_data_classifications",
                    "applies_to_hosting",
                    "applies_to_ai_roles",
                ]
            },
        ),
    ]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        self.message_user(
            request,
            _(
                "Checklists follow this template at their next evaluation (nightly, or the "
                "use case admin's “Evaluate governance checklists” action)."
            ),
        )


@admin.register(ChecklistItem)
class ChecklistItemAdmin(SimpleHistoryAdmin):
    """Read-only: evidence and waivers go through the API, which checks who may record or waive."""

    list_display = [
        "template",
        "use_case",
        "category",
        "status",
        "required",
        "recorded_by",
        "waived_by",
        "waiver_expires_on",
        "updated_at",
    ]
    list_filter = [
        "status",
        "required",
        "template__category",
        "template__framework",
        "template__kind",
        "use_case__team",
    ]
    list_select_related = ["template", "use_case", "recorded_by", "waived_by"]
    search_fields = ["template__code", "template__title", "use_case__title", "waiver_reason"]
    date_hierarchy = "updated_at"
    fieldsets = [
        (None, {"fields": ["use_case", "template", "status", "required", "detail"]}),
        (
            _("Evidence"),
            {"fields": ["evidence_text", "evidence_url", "evidence_file_link", "recorded_by", "recorded_at"]},
        ),
        (_("Waiver"), {"fields": ["waiver_reason", "waived_by", "waived_at", "waiver_expires_on"]}),
    ]
    readonly_fields = ["evidence_file_link"]

    @admin.display(description=_("category"), ordering="template__category")
    def category(self, item):
        return item.template.get_category_display()

    @admin.display(description=_("evidence file"))
    def evidence_file_link(self, item):
        # Through the view that checks who may see the item: MEDIA_URL is not served.
        if not item.evidence_file:
            return self.get_empty_value_display()
        url = reverse("portfolio:checklistitem-evidence-file", args=[item.pk])
        return format_html('<a href="{}">{}</a>', url, PurePath(item.evidence_file.name).name)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Webhooks ----------------------------------------------------------------------------


class WebhookSubscriptionForm(forms.ModelForm):
    target_url = forms.URLField(
        label=_("target URL"),
        max_length=500,
        assume_scheme="https",
        help_text=_("A public http(s) address that receives the events by POST."),
    )
    events = checkboxes(WebhookEvent.choices)

    class Meta:
        model = WebhookSubscription
        fields = ["team", "description", "target_url", "events", "active"]

    def clean_target_url(self):
        url = self.cleaned_data["target_url"]
        try:
            webhooks.resolve_target(url)
        except webhooks.TargetRefused as refusal:
            raise forms.ValidationError(str(refusal)) from None
        return url


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    """The secret is shown once, in the message after adding; it signs every delivery."""

    form = WebhookSubscriptionForm
    list_display = ["target_url", "team", "owner", "active", "consecutive_failures", "created_at"]
    list_filter = ["active", "team"]
    list_select_related = ["team", "owner"]
    search_fields = ["target_url", "description", "owner__username"]
    readonly_fields = ["owner", "disabled_reason", "consecutive_failures", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        if change:
            webhooks.update_subscription(
                subscription=obj, **{name: form.cleaned_data[name] for name in form.changed_data}
            )
            return
        obj.owner, obj.secret = request.user, webhooks.new_secret()
        super().save_model(request, obj, form, change)
        self.message_user(
            request,
            _("The signing secret is %(secret)s. Copy it now: it is not shown again.") % {"secret": obj.secret},
            messages.WARNING,
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log, read-only; "Redeliver" sends a delivered or abandoned event again."""

    list_display = [
        "event_type",
        "subscription",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event_type", "subscription"]
    list_select_related = ["subscription__team"]
    search_fields = ["event_id", "last_error", "subscription__target_url"]
    date_hierarchy = "created_at"
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_redeliver_permission(self, request):
        # Sending again acts on the subscription, so it takes the right to change subscriptions.
        return request.user.has_perm("portfolio.change_webhooksubscription")

    @admin.action(description=_("Redeliver the selected events"), permissions=["redeliver"])
    def redeliver(self, request, queryset):
        sent, refused = 0, []
        for delivery in queryset.select_related("subscription"):
            try:
                webhooks.redeliver(delivery=delivery)
            except ValidationError as error:
                refused.append(f"{delivery.pk}: {' '.join(error.messages)}")
            else:
                sent += 1
        self.message_user(request, _("%(count)s events queued again.") % {"count": sent})
        if refused:
            self.message_user(request, "; ".join(refused), messages.WARNING)
