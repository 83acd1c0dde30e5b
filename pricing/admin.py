from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _
from simple_history.admin import SimpleHistoryAdmin

from pricing import services
from pricing.models import (
    ExchangeRate,
    GpuRate,
    LanguageModel,
    Licence,
    ModelAlias,
    Price,
    Provider,
    SelfHostingProfile,
)


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "website"]
    search_fields = ["name", "key"]


@admin.register(Licence)
class LicenceAdmin(SimpleHistoryAdmin):
    list_display = ["key", "name", "commercial_use", "monthly_active_user_limit", "requires_acceptable_use_policy"]
    list_filter = ["commercial_use", "requires_attribution", "requires_acceptable_use_policy"]
    search_fields = ["key", "name"]

    def save_model(self, request, obj, form, change):
        services.save_licence(licence=obj)


class PriceInline(admin.TabularInline):
    model = Price
    extra = 0
    fields = [
        "effective_from",
        "team",
        "input_per_million",
        "output_per_million",
        "cached_input_per_million",
        "currency",
        "source",
    ]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class ModelAliasInline(admin.TabularInline):
    model = ModelAlias
    extra = 0
    fields = ["name", "source", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(LanguageModel)
class LanguageModelAdmin(admin.ModelAdmin):
    list_display = ["key", "display_name", "provider", "licence", "open_weights", "context_window"]
    list_filter = ["provider", "open_weights", "licence"]
    list_select_related = ["provider", "licence"]
    search_fields = ["key", "display_name", "aliases__name"]
    inlines = [ModelAliasInline, PriceInline]

    def save_model(self, request, obj, form, change):
        services.save_language_model(model=obj)


@admin.register(ModelAlias)
class ModelAliasAdmin(admin.ModelAdmin):
    list_display = ["name", "model", "source", "created_at"]
    list_filter = ["source", "model__provider"]
    list_select_related = ["model"]
    search_fields = ["name", "model__key"]
    autocomplete_fields = ["model"]


@admin.register(Price)
class PriceAdmin(SimpleHistoryAdmin):
    """Prices are added, never edited: a correction is a new row from its date."""

    list_display = [
        "model",
        "effective_from",
        "team",
        "input_per_million",
        "output_per_million",
        "cached_input_per_million",
        "currency",
        "source",
    ]
    list_filter = ["source", "currency", "model__provider"]
    list_select_related = ["model", "team"]
    search_fields = ["model__key", "model__display_name"]
    date_hierarchy = "effective_from"
    autocomplete_fields = ["model"]

    def has_change_permission(self, request, obj=None):
        return False

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # A revert would edit the row in place; history is for reading.
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def save_model(self, request, obj, form, change):
        saved = services.add_price(
            **{
                field: form.cleaned_data[field]
                for field in (
                    "model",
                    "team",
                    "input_per_million",
                    "output_per_million",
                    "cached_input_per_million",
                    "currency",
                    "effective_from",
                    "source",
                    "source_url",
                )
            }
        )
        obj.pk, obj.created_at = saved.pk, saved.created_at


@admin.register(ExchangeRate)
class ExchangeRateAdmin(admin.ModelAdmin):
    list_display = ["base", "quote", "rate", "as_of", "source"]
    list_filter = ["base", "quote"]
    date_hierarchy = "as_of"

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        saved = services.add_exchange_rate(
            **{field: form.cleaned_data[field] for field in ("base", "quote", "rate", "as_of", "source")}
        )
        obj.pk, obj.created_at = saved.pk, saved.created_at


@admin.register(GpuRate)
class GpuRateAdmin(admin.ModelAdmin):
    """Effective-dated like token prices: a new rate supersedes the old one from its date."""

    list_display = ["gpu_type", "hourly_cost", "currency", "effective_from", "source"]
    list_filter = ["gpu_type", "currency"]

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        saved = services.add_gpu_rate(
            **{
                field: form.cleaned_data[field]
                for field in (
                    "gpu_type",
                    "hourly_cost",
                    "currency",
                    "effective_from",
                    "source",
                )
            }
        )
        obj.pk, obj.created_at = saved.pk, saved.created_at


@admin.register(SelfHostingProfile)
class SelfHostingProfileAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "gpu_type",
        "gpu_count",
        "gpu_hourly_cost",
        "capex",
        "throughput_tokens_per_s",
        "utilisation",
        "currency",
    ]
    search_fields = ["name", "gpu_type"]
    fieldsets = [
        (None, {"fields": ["name", "currency"]}),
        (_("GPUs"), {"fields": ["gpu_type", "gpu_count", "gpu_hourly_cost", "hours_per_month"]}),
        (
            _("Owned hardware"),
            {
                "fields": [
                    "capex",
                    "salvage_ratio",
                    "amortisation_months",
                    "power_monthly_cost",
                    "operations_monthly_cost",
                ]
            },
        ),
        (_("Performance"), {"fields": ["throughput_tokens_per_s", "utilisation"]}),
    ]

    def save_model(self, request, obj, form, change):
        services.save_self_hosting_profile(profile=obj)
