from collections.abc import Callable, Iterable
from pathlib import PurePath
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from portfolio import governance, services, webhooks
from portfolio.forms import add_service_errors
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


# --- Writing through the services --------------------------------------------------------


def model_values(form: forms.ModelForm, names: Iterable[str]) -> dict[str, Any]:
    """The form's cleaned values of ``names`` that are fields of its model: a service's keyword arguments."""
    fields = {field.name for field in form._meta.model._meta.concrete_fields if not field.primary_key}
    return {name: form.cleaned_data[name] for name in names if name in fields}


def dry_run(write: Callable[[], object]) -> None:
    """Run ``write`` and roll it back: it raises what the services refuse, and keeps nothing."""
    with transaction.atomic():
        write()
        transaction.set_rollback(True)


class ServiceForm(forms.ModelForm):
    """An admin form saved through the services: ``create``, ``update`` and ``delete`` call them.

    An update gives the service the row as stored (the form's instance already holds the
    new values) and the changed fields only. Validating runs the write and rolls it back,
    so what only the service checks (the stage gate, the owner's team, a team's last lead)
    shows as a form error and the admin saves nothing. Inline forms leave that to their
    formset, which runs its rows together: a row refused alone may pass with another's
    change (a team handing its lead role over).
    """

    def __init__(self, *args, inline: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.inline = inline

    def create(self, values: dict[str, Any]) -> models.Model:
        raise NotImplementedError

    def update(self, stored: models.Model, values: dict[str, Any]) -> models.Model:
        raise NotImplementedError

    @staticmethod
    def delete(stored: models.Model) -> None:
        raise NotImplementedError

    def stored(self) -> models.Model:
        return type(self.instance)._default_manager.get(pk=self.instance.pk)

    def save_through_service(self) -> models.Model:
        """Create the row, or update it with the changed fields; an unchanged row is left alone."""
        if self.instance.pk is None:
            return self.create(model_values(self, self.cleaned_data))
        stored = self.stored()
        changes = model_values(self, self.changed_data)
        return self.update(stored, changes) if changes else stored

    def _post_clean(self):
        super()._post_clean()
        if self.inline or self.errors:
            return
        try:
            dry_run(self.save_through_service)
        except governance.GateRefused as refusal:  # Only a use case's stage passes the gate.
            self.add_error("stage", str(refusal))
        except ValidationError as error:
            add_service_errors(self, error)


class ServiceFormSet(forms.BaseInlineFormSet):
    """Inline rows saved through their forms' services: new and changed rows first, then
    deletions, so a team gains its new lead before it loses the old one."""

    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), "inline": True}

    def rows_to_save(self) -> list[ServiceForm]:
        deleted = set(self.deleted_forms)
        return [form for form in self.forms if form.has_changed() and form not in deleted]

    def save_through_services(self) -> None:
        # What ``save()`` would list, for the admin's change message.
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
        for form in self.rows_to_save():
            new = form.instance.pk is None
            saved = form.save_through_service()
            if new:
                self.new_objects.append(saved)
            else:
                self.changed_objects.append((saved, form.changed_data))
        for form in self.deleted_forms:
            if form.instance.pk is not None:
                stored = form.stored()
                form.delete(stored)
                self.deleted_objects.append(stored)

    def clean(self):
        super().clean()
        if self.instance.pk is None or any(self.errors):
            return  # Rows of a parent not saved yet are tried when they are saved, after it.
        try:
            dry_run(self.save_through_services)
        except ValidationError as error:
            raise ValidationError(error.messages) from None


class ServiceAdminMixin:
    """Saves and deletes through the form's services, so an admin edit passes the gates and
    records the events and versions that the API and the pages do."""

    def save_model(self, request, obj, form, change):
        saved = form.save_through_service()
        # The admin goes on with ``obj`` (inlines, the log, the redirect): it becomes the saved row.
        for field in saved._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding, obj._state.db = False, saved._state.db

    def save_formset(self, request, form, formset, change):
        formset.save_through_services()

    def delete_model(self, request, obj):
        self.form.delete(obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():  # All the selected rows, or none.
            for obj in queryset:
                self.form.delete(obj)


class ServiceHistoryAdmin(ServiceAdminMixin, SimpleHistoryAdmin):
    """The history is for reading: a revert would write an old row past the services."""

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


# --- Teams ---------------------------------------------------------------------------------


class MembershipAdminForm(ServiceForm):
    class Meta:
        model = Membership
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and "user" in self.fields:
            # Only the role changes: another user is another membership.
            self.fields["user"].disabled = True

    def create(self, values):
        return services.add_member(**values)

    def update(self, stored, values):
        return services.change_role(membership=stored, role=values.get("role", stored.role))

    @staticmethod
    def delete(stored):
        services.remove_member(membership=stored)


class MembershipFormSet(ServiceFormSet):
    def rows_to_save(self):
        # Leads first: a team keeps one at every step of the save.
        return sorted(super().rows_to_save(), key=lambda form: form.cleaned_data["role"] != Membership.Role.LEAD)


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipAdminForm
    formset = MembershipFormSet
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def save_formset(self, request, form, formset, change):
        formset.save_through_services()


@admin.register(Membership)
class MembershipAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = MembershipAdminForm
    list_display = ["user", "team", "role"]
    list_filter = ["role", "team"]
    list_select_related = ["user", "team"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]

    def get_readonly_fields(self, request, obj=None):
        return ["user", "team"] if obj is not None else []

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as refusal:  # The view's transaction has rolled back.
            self.message_user(request, " ".join(refusal.messages), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:portfolio_membership_change", args=[object_id]))

    def response_action(self, request, queryset):
        try:
            # One transaction, so a refused deletion also takes back the log entries before it.
            with transaction.atomic():
                return super().response_action(request, queryset)
        except ValidationError as refusal:
            self.message_user(request, " ".join(refusal.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


# --- Use cases, deployments and PoCs -------------------------------------------------------


class DeploymentAdminForm(ServiceForm):
    class Meta:
        model = Deployment
        fields = "__all__"

    def create(self, values):
        return services.create_deployment(**values)

    def update(self, stored, values):
        return services.update_deployment(deployment=stored, **values)

    @staticmethod
    def delete(stored):
        services.delete_deployment(deployment=stored)


class ProofOfConceptAdminForm(ServiceForm):
    class Meta:
        model = ProofOfConcept
        fields = "__all__"

    def create(self, values):
        return services.create_poc(**values)

    def update(self, stored, values):
        return services.update_poc(poc=stored, **values)

    @staticmethod
    def delete(stored):
        services.delete_poc(poc=stored)


class DeploymentInline(admin.StackedInline):
    model = Deployment
    form = DeploymentAdminForm
    formset = ServiceFormSet
    extra = 0
    readonly_fields = ["monthly_cost", "computed_at"]
    autocomplete_fields = ["model"]
    show_change_link = True


class ProofOfConceptInline(admin.StackedInline):
    model = ProofOfConcept
    form = ProofOfConceptAdminForm
    formset = ServiceFormSet
    extra = 0
    autocomplete_fields = ["model"]
    show_change_link = True


def checkboxes(choices) -> forms.MultipleChoiceField:
    """A JSON list of choices edited as checkboxes; none ticked is an empty list."""
    return forms.MultipleChoiceField(choices=choices, required=False, widget=forms.CheckboxSelectMultiple)


class UseCaseAdminForm(ServiceForm):
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

    def create(self, values):
        return services.create_use_case(**values)

    def update(self, stored, values):
        # The service checks the owner also when the use case moves to another team and keeps them.
        return services.update_use_case(use_case=stored, **values)

    @staticmethod
    def delete(stored):
        services.delete_use_case(use_case=stored)


@admin.register(UseCase)
class UseCaseAdmin(ServiceHistoryAdmin):
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
class DeploymentAdmin(ServiceHistoryAdmin):
    form = DeploymentAdminForm
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

    def get_readonly_fields(self, request, obj=None):
        # As in the API: a deployment stays with its use case.
        return [*self.readonly_fields, "use_case"] if obj is not None else self.readonly_fields


@admin.register(ProofOfConcept)
class ProofOfConceptAdmin(ServiceHistoryAdmin):
    form = ProofOfConceptAdminForm
    list_display = ["__str__", "use_case", "model", "status", "start_date", "end_date", "cost"]
    list_filter = ["status", "model"]
    list_select_related = ["use_case", "model"]
    search_fields = ["hypothesis", "use_case__title"]
    autocomplete_fields = ["use_case", "model"]

    def get_readonly_fields(self, request, obj=None):
        # As in the API: a PoC stays with its use case.
        return ["use_case"] if obj is not None else []


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
