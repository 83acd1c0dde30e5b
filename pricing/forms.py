"""Forms of the catalogue pages."""

from decimal import Decimal

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from portfolio.models import MAX_REQUESTS_PER_MONTH, MAX_TOKENS_PER_REQUEST
from pricing import selectors


class BreakEvenForm(forms.Form):
    """A monthly volume and a way of self-hosting, to compare against every API price."""

    profile = forms.ModelChoiceField(
        label=_("Self-hosting profile"),
        queryset=None,
        empty_label=None,
        help_text=_("The hardware and its measured throughput; profiles are kept in the admin."),
    )
    requests_per_month = forms.IntegerField(
        label=_("Requests per month"),
        initial=1_000_000,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_REQUESTS_PER_MONTH)],
    )
    avg_input_tokens = forms.IntegerField(
        label=_("Input tokens per request"),
        initial=1000,
        validators=[MinValueValidator(0), MaxValueValidator(MAX_TOKENS_PER_REQUEST)],
    )
    avg_output_tokens = forms.IntegerField(
        label=_("Output tokens per request"),
        initial=300,
        validators=[MinValueValidator(0), MaxValueValidator(MAX_TOKENS_PER_REQUEST)],
    )
    cached_input_ratio = forms.DecimalField(
        label=_("Cached input ratio"),
        initial=Decimal("0"),
        max_digits=5,
        decimal_places=4,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_("Share of input tokens served from the provider's cache, between 0 and 1."),
    )
    currency = forms.ChoiceField(label=_("Currency"))

    def __init__(self, *args, currencies, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["profile"].queryset = selectors.list_self_hosting_profiles()
        self.fields["currency"].choices = [(code, code) for code in currencies]
