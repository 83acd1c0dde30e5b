from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from pricing.currencies import ISO_4217_CODES, normalise_currency


def currency_validator(value: str) -> None:
    """Accept an active ISO 4217 code, upper case: a made-up code has no exchange rate anywhere."""
    if value not in ISO_4217_CODES:
        raise ValidationError(
            _("Not an ISO 4217 currency code: use one such as USD, EUR or JPY."), code="invalid_currency"
        )


class CurrencyFormField(forms.CharField):
    """A currency code as typed: ``usd`` is read as USD."""

    def to_python(self, value):
        return normalise_currency(super().to_python(value))


class CurrencyField(models.CharField):
    """An ISO 4217 code. Forms (admin and imports too) upper-case what is typed."""

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": CurrencyFormField, **kwargs})


def currency_field(**kwargs) -> CurrencyField:
    return CurrencyField(_("currency"), max_length=3, default="USD", validators=[currency_validator], **kwargs)


def per_million_price_field(verbose_name, **kwargs) -> models.DecimalField:
    return models.DecimalField(
        verbose_name, max_digits=12, decimal_places=6, validators=[MinValueValidator(0)], **kwargs
    )


class Provider(models.Model):
    key = models.SlugField(_("key"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=128)
    website = models.URLField(_("website"), blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("provider")
        verbose_name_plural = _("providers")

    def __str__(self):
        return self.name


class Licence(models.Model):
    key = models.CharField(
        _("key"), max_length=64, unique=True, help_text=_("SPDX identifier where one exists, e.g. Apache-2.0.")
    )
    name = models.CharField(_("name"), max_length=200)
    url = models.URLField(_("URL"), blank=True)
    commercial_use = models.BooleanField(_("commercial use allowed"), default=True)
    monthly_active_user_limit = models.PositiveBigIntegerField(
        _("monthly active user limit"),
        null=True,
        blank=True,
        help_text=_("Above this many monthly active users a separate licence is needed. Empty: no limit."),
    )
    requires_attribution = models.BooleanField(_("attribution required"), default=False)
    requires_acceptable_use_policy = models.BooleanField(_("acceptable-use policy applies"), default=False)
    notes = models.TextField(_("notes"), blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["key"]
        verbose_name = _("licence")
        verbose_name_plural = _("licences")

    def __str__(self):
        return self.name


# The provider's key, then one or more segments as LiteLLM writes model names, e.g.
# bedrock/us-east-1/anthropic.claude-3-5-sonnet-20240620-v1:0 or vertex_ai/claude-sonnet-4-5@20250929.
# No segment starts with a dot, so a key never holds "." or ".." as a path segment.
MODEL_KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]*(/[A-Za-z0-9*@][A-Za-z0-9*._:@~+-]*)+$"


class LanguageModel(models.Model):
    key = models.CharField(
        _("key"),
        max_length=200,
        unique=True,
        validators=[RegexValidator(MODEL_KEY_PATTERN)],
        help_text=_("Provider and model, e.g. openai/gpt-4o."),
    )
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models", verbose_name=_("provider"))
    display_name = models.CharField(_("display name"), max_length=200)
    licence = models.ForeignKey(
        Licence,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="models",
        verbose_name=_("licence"),
        help_text=_("Empty while the licence is unknown; governance checks fail until it is set."),
    )
    open_weights = models.BooleanField(_("open weights"), default=False)
    context_window = models.PositiveIntegerField(_("context window (tokens)"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["key"]
        verbose_name = _("language model")
        verbose_name_plural = _("language models")

    def __str__(self):
        return self.display_name


class ModelAlias(models.Model):
    """Another name of a catalogue model, e.g. the exact name a LiteLLM price map gives it."""

    class Source(models.TextChoices):
        LITELLM = "litellm", _("LiteLLM price map")
        MANUAL = "manual", _("Manual")

    # Case-sensitive, as LiteLLM writes names: unique on PostgreSQL and SQLite alike.
    name = models.CharField(_("name"), max_length=200, unique=True)
    model = models.ForeignKey(LanguageModel, on_delete=models.CASCADE, related_name="aliases", verbose_name=_("model"))
    source = models.CharField(_("source"), max_length=16, choices=Source, default=Source.MANUAL)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("model alias")
        verbose_name_plural = _("model aliases")

    def __str__(self):
        return self.name


class Price(models.Model):
    """A price per million tokens in force from ``effective_from`` until superseded.

    Rows are never edited: a new row supersedes the old one from its date, so a figure
    computed on any date can be explained by the rows in force then.
    """

    class Source(models.TextChoices):
        MANUAL = "manual", _("Manual")
        IMPORT = "import", _("Import")
        CONTRACT = "contract", _("Contract")
        SEED = "seed", _("Shipped catalogue")

    model = models.ForeignKey(LanguageModel, on_delete=models.CASCADE, related_name="prices", verbose_name=_("model"))
    team = models.ForeignKey(
        "portfolio.Team",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="contract_prices",
        verbose_name=_("contract team"),
        help_text=_("Set for a negotiated price that applies to this team only."),
    )
    input_per_million = per_million_price_field(_("input price per 1M tokens"))
    output_per_million = per_million_price_field(_("output price per 1M tokens"))
    cached_input_per_million = per_million_price_field(
        _("cached input price per 1M tokens"),
        null=True,
        blank=True,
        help_text=_("Empty when the provider gives no discount for cached input."),
    )
    currency = currency_field()
    effective_from = models.DateField(_("effective from"))
    source = models.CharField(_("source"), max_length=16, choices=Source, default=Source.MANUAL)
    source_url = models.URLField(_("source URL"), blank=True, max_length=500)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["model", "-effective_from"]
        verbose_name = _("price")
        verbose_name_plural = _("prices")
        constraints = [
            models.UniqueConstraint(
                fields=["model", "effective_from"],
                condition=Q(team__isnull=True),
                name="price_one_public_per_model_and_date",
            ),
            models.UniqueConstraint(
                fields=["model", "team", "effective_from"],
                condition=Q(team__isnull=False),
                name="price_one_contract_per_model_team_and_date",
            ),
            models.CheckConstraint(
                condition=Q(input_per_million__gte=0)
                & Q(output_per_million__gte=0)
                & (Q(cached_input_per_million__isnull=True) | Q(cached_input_per_million__gte=0)),
                name="price_non_negative",
            ),
        ]
        indexes = [models.Index(fields=["model", "team", "-effective_from"], name="price_in_force_idx")]

    def __str__(self):
        return f"{self.model.key} {self.input_per_million}/{self.output_per_million} {self.currency} from {self.effective_from}"


class ExchangeRate(models.Model):
    """``rate`` units of ``quote`` buy one unit of ``base``, from ``as_of`` on."""

    base = currency_field()
    quote = CurrencyField(_("quote currency"), max_length=3, validators=[currency_validator])
    rate = models.DecimalField(_("rate"), max_digits=18, decimal_places=8, validators=[MinValueValidator(0)])
    as_of = models.DateField(_("as of"))
    source = models.CharField(_("source"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["base", "quote", "-as_of"]
        verbose_name = _("exchange rate")
        verbose_name_plural = _("exchange rates")
        constraints = [
            models.UniqueConstraint(fields=["base", "quote", "as_of"], name="exchange_rate_one_per_pair_and_date"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="exchange_rate_positive"),
            models.CheckConstraint(condition=~Q(base=models.F("quote")), name="exchange_rate_distinct_currencies"),
        ]

    def __str__(self):
        return f"1 {self.base} = {self.rate} {self.quote} ({self.as_of})"


class GpuRate(models.Model):
    """Catalogue price of one GPU-hour, effective-dated like token prices."""

    gpu_type = models.CharField(_("GPU type"), max_length=64)
    hourly_cost = models.DecimalField(
        _("cost per GPU-hour"), max_digits=10, decimal_places=4, validators=[MinValueValidator(0)]
    )
    currency = currency_field()
    effective_from = models.DateField(_("effective from"))
    source = models.CharField(_("source"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["gpu_type", "-effective_from"]
        verbose_name = _("GPU rate")
        verbose_name_plural = _("GPU rates")
        constraints = [
            models.UniqueConstraint(fields=["gpu_type", "effective_from"], name="gpu_rate_one_per_type_and_date"),
            models.CheckConstraint(condition=Q(hourly_cost__gte=0), name="gpu_rate_non_negative"),
        ]

    def __str__(self):
        return f"{self.gpu_type} {self.hourly_cost} {self.currency}/h from {self.effective_from}"


class SelfHostingProfile(models.Model):
    """A shared way of running open models on own or rented hardware.

    Either GPUs paid by the hour (``gpu_hourly_cost``, or the catalogue rate of
    ``gpu_type`` when empty) or owned hardware (``capex`` amortised, plus power and
    operations). Throughput and utilisation give the effective price per 1M tokens.
    """

    name = models.CharField(_("name"), max_length=128, unique=True)
    gpu_type = models.CharField(_("GPU type"), max_length=64)
    gpu_count = models.PositiveIntegerField(_("GPUs"), default=1, validators=[MinValueValidator(1)])
    gpu_hourly_cost = models.DecimalField(
        _("cost per GPU-hour"),
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Empty: the catalogue GPU rate in force, unless capex is given."),
    )
    capex = models.DecimalField(
        _("capital expense"),
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("For owned hardware: purchase price, amortised over the months below."),
    )
    salvage_ratio = models.DecimalField(
        _("salvage value ratio"),
        max_digits=5,
        decimal_places=4,
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
    )
    amortisation_months = models.PositiveIntegerField(
        _("amortisation months"), default=36, validators=[MinValueValidator(1)]
    )
    power_monthly_cost = models.DecimalField(
        _("power per month"), max_digits=12, decimal_places=2, default=0, validators=[MinValueValidator(0)]
    )
    operations_monthly_cost = models.DecimalField(
        _("operations per month"), max_digits=12, decimal_places=2, default=0, validators=[MinValueValidator(0)]
    )
    hours_per_month = models.DecimalField(
        _("hours per month"),
        max_digits=6,
        decimal_places=2,
        default=730,
        validators=[MinValueValidator(0), MaxValueValidator(744)],
    )
    currency = currency_field()
    throughput_tokens_per_s = models.DecimalField(
        _("measured throughput (tokens/s)"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
    )
    utilisation = models.DecimalField(
        _("utilisation"),
        max_digits=5,
        decimal_places=4,
        default=1,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_("Share of the time the hardware is busy, between 0 and 1."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("self-hosting profile")
        verbose_name_plural = _("self-hosting profiles")
        constraints = [
            models.CheckConstraint(
                condition=Q(salvage_ratio__gte=0, salvage_ratio__lte=1), name="profile_salvage_ratio_between_0_and_1"
            ),
            models.CheckConstraint(
                condition=Q(utilisation__gte=0, utilisation__lte=1), name="profile_utilisation_between_0_and_1"
            ),
            models.CheckConstraint(condition=Q(gpu_count__gte=1), name="profile_at_least_one_gpu"),
            models.CheckConstraint(
                condition=(Q(gpu_hourly_cost__isnull=True) | Q(gpu_hourly_cost__gte=0))
                & (Q(capex__isnull=True) | Q(capex__gte=0))
                & Q(power_monthly_cost__gte=0, operations_monthly_cost__gte=0, hours_per_month__gte=0),
                name="profile_costs_non_negative",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def is_owned_hardware(self) -> bool:
        return self.capex is not None
