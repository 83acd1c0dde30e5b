from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from portfolio import services
from portfolio.models import CostSnapshot, Deployment, Membership, ProofOfConcept, Team, UseCase

COMPUTED_USE_CASE_FIELDS = ["monthly_cost", "monthly_benefit", "roi_pct", "npv", "payback_months",
                            "governance_status", "computed_at", "needs_recompute", "version"]


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


class RecomputeOnSaveMixin:
    """Admin edits bypass the services' forms, so saving flags and queues a recompute."""

    def use_case_id_of(self, obj):
        return obj.use_case_id

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.request_recompute(use_case_ids=[self.use_case_id_of(form.instance)])

    def delete_model(self, request, obj):
        use_case_id = self.use_case_id_of(obj)
        super().delete_model(request, obj)
        services.request_recompute(use_case_ids=[use_case_id])


@admin.register(UseCase)
class UseCaseAdmin(RecomputeOnSaveMixin, SimpleHistoryAdmin):
    list_display = ["title", "team", "stage", "category", "risk_tier", "currency", "monthly_cost", "roi_pct",
                    "governance_status", "needs_recompute"]
    list_filter = ["stage", "team", "category", "risk_tier", "data_classification", "governance_status",
                   "needs_recompute", "currency"]
    list_select_related = ["team"]
    search_fields = ["title", "description", "external_id"]
    readonly_fields = COMPUTED_USE_CASE_FIELDS + ["created_at", "updated_at"]
    autocomplete_fields = ["owner"]
    inlines = [DeploymentInline, ProofOfConceptInline]
    actions = ["recompute"]

    def use_case_id_of(self, obj):
        return obj.pk

    @admin.action(description="Recompute cost and ROI")
    def recompute(self, request, queryset):
        services.request_recompute(use_case_ids=list(queryset.values_list("pk", flat=True)))


@admin.register(Deployment)
class DeploymentAdmin(RecomputeOnSaveMixin, SimpleHistoryAdmin):
    list_display = ["__str__", "use_case", "model", "hosting", "environment", "status", "requests_per_month",
                    "monthly_cost"]
    list_filter = ["hosting", "environment", "status", "model"]
    list_select_related = ["use_case", "model"]
    search_fields = ["name", "use_case__title", "model__key"]
    readonly_fields = ["monthly_cost", "computed_at"]
    autocomplete_fields = ["use_case", "model"]


@admin.register(ProofOfConcept)
class ProofOfConceptAdmin(SimpleHistoryAdmin):
    list_display = ["__str__", "use_case", "model", "status", "start_date", "end_date", "cost"]
    list_filter = ["status", "model"]
    list_select_related = ["use_case", "model"]
    search_fields = ["hypothesis", "use_case__title"]
    autocomplete_fields = ["use_case", "model"]


@admin.register(CostSnapshot)
class CostSnapshotAdmin(admin.ModelAdmin):
    list_display = ["use_case", "created_at", "priced_on", "currency", "previous_monthly_cost", "monthly_cost",
                    "roi_pct", "npv", "reason"]
    list_filter = ["currency", "priced_on"]
    list_select_related = ["use_case"]
    search_fields = ["use_case__title", "reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
