import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import FileExtensionValidator, MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from pricing.models import currency_field

MANAGERS_GROUP = "portfolio_managers"

# Bounds that keep every computed figure inside its column: a bigger number is a typo.
MAX_REQUESTS_PER_MONTH = 10**10
MAX_TOKENS_PER_REQUEST = 2_000_000


def money_field(verbose_name, **kwargs) -> models.DecimalField:
    kwargs.setdefault("default", 0)
    return models.DecimalField(
        verbose_name, max_digits=14, decimal_places=2, validators=[MinValueValidator(0)], **kwargs
    )


def computed_money_field(verbose_name) -> models.DecimalField:
    return models.DecimalField(verbose_name, max_digits=20, decimal_places=2, null=True, blank=True, editable=False)


class Team(models.Model):
    name = models.CharField(_("name"), max_length=128, unique=True)
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("team")
        verbose_name_plural = _("teams")

    def __str__(self):
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        MEMBER = "member", _("Member")
        LEAD = "lead", _("Lead")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("user")
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("team"))
    role = models.CharField(_("role"), max_length=8, choices=Role, default=Role.MEMBER)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["team", "user"]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="membership_one_per_user_and_team")]

    def __str__(self):
        return f"{self.user} in {self.team} ({self.get_role_display()})"


class GovernanceFramework(models.TextChoices):
    CORE = "core", _("Core rules")
    EU_AI_ACT = "eu_ai_act", _("EU AI Act")
    JAPAN_AI_GUIDELINES = "japan_ai_guidelines", _("Japan AI Guidelines for Business")


# The frameworks a use case chooses; the core rules apply to every use case.
SELECTABLE_FRAMEWORKS = [GovernanceFramework.EU_AI_ACT.value, GovernanceFramework.JAPAN_AI_GUIDELINES.value]


def default_frameworks() -> list[str]:
    return [GovernanceFramework.EU_AI_ACT.value]


@deconstructible
class ChoiceListValidator:
    """A JSON list of distinct values, each one of ``choices``."""

    def __init__(self, choices):
        self.choices = list(choices)

    def __call__(self, value):
        if (
            not isinstance(value, list)
            or any(not isinstance(item, str) or item not in self.choices for item in value)
            or len(set(value)) != len(value)
        ):
            raise ValidationError(
                _("Give a list of distinct values among: %(choices)s."),
                code="invalid_choice",
                params={"choices": ", ".join(self.choices)},
            )

    def __eq__(self, other):
        return isinstance(other, ChoiceListValidator) and self.choices == other.choices


class UseCase(models.Model):
    class Stage(models.TextChoices):
        IDEA = "idea", _("Idea")
        POC = "poc", _("Proof of concept")
        PILOT = "pilot", _("Pilot")
        PRODUCTION = "production", _("Production")
        SCALED = "scaled", _("Scaled")
        RETIRED = "retired", _("Retired")

    class Category(models.TextChoices):
        CUSTOMER_SUPPORT = "customer_support", _("Customer support")
        DOCUMENT_SEARCH = "document_search", _("Document search")
        CODING_ASSISTANT = "coding_assistant", _("Coding assistant")
        CONTENT_GENERATION = "content_generation", _("Content generation")
        DATA_ANALYSIS = "data_analysis", _("Data analysis")
        PROCESS_AUTOMATION = "process_automation", _("Process automation")
        OTHER = "other", _("Other")

    class RiskTier(models.TextChoices):
        UNASSESSED = "unassessed", _("Not assessed")
        MINIMAL = "minimal", _("Minimal")
        LIMITED = "limited", _("Limited")
        HIGH = "high", _("High")
        UNACCEPTABLE = "unacceptable", _("Unacceptable")

    class DataClassification(models.TextChoices):
        PUBLIC = "public", _("Public")
        INTERNAL = "internal", _("Internal")
        CONFIDENTIAL = "confidential", _("Confidential")
        PERSONAL = "personal", _("Personal data")

    class GovernanceStatus(models.TextChoices):
        NOT_EVALUATED = "not_evaluated", _("Not evaluated")
        OPEN = "open", _("Open items")
        COMPLIANT = "compliant", _("Compliant")
        FAILED = "failed", _("Failed")

    class AiRole(models.TextChoices):
        # The roles of Japan's AI Guidelines for Business; the EU AI Act's provider and
        # deployer map onto provider and business user.
        DEVELOPER = "developer", _("AI developer")
        PROVIDER = "provider", _("AI provider")
        BUSINESS_USER = "business_user", _("AI business user")

    # Moving into these stages passes the governance gate.
    GATED_STAGES = frozenset({Stage.PRODUCTION, Stage.SCALED})

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="use_cases", verbose_name=_("team"))
    external_id = models.CharField(
        _("external id"),
        max_length=128,
        null=True,
        blank=True,
        validators=[RegexValidator(r"^[A-Za-z0-9._:-]+$", _("Letters, digits and . _ : - only."))],
        help_text=_("The record's id in another system (ERP, CMDB, ticketing); unique within the team."),
    )
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    category = models.CharField(_("category"), max_length=32, choices=Category, default=Category.OTHER)
    stage = models.CharField(_("stage"), max_length=16, choices=Stage, default=Stage.IDEA)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_use_cases",
        verbose_name=_("owner"),
    )
    risk_tier = models.CharField(_("EU AI Act risk tier"), max_length=16, choices=RiskTier, default=RiskTier.UNASSESSED)
    data_classification = models.CharField(
        _("data classification"), max_length=16, choices=DataClassification, default=DataClassification.INTERNAL
    )
    currency = currency_field(help_text=_("Currency of this use case's costs and benefits."))
    hours_saved_per_month = models.DecimalField(
        _("hours saved per month"), max_digits=12, decimal_places=2, default=0, validators=[MinValueValidator(0)]
    )
    hourly_rate = money_field(_("hourly rate"))
    other_monthly_benefit = money_field(_("other monthly benefit"))
    one_time_cost = money_field(_("one-time cost"))
    monthly_fixed_cost = money_field(_("monthly fixed cost"))
    horizon_months = models.PositiveSmallIntegerField(
        _("horizon (months)"), default=36, validators=[MinValueValidator(1), MaxValueValidator(600)]
    )
    expected_monthly_active_users = models.PositiveBigIntegerField(
        _("expected monthly active users"), default=0, validators=[MaxValueValidator(10**11)]
    )
    ai_role = models.CharField(
        _("AI role"),
        max_length=16,
        choices=AiRole,
        default=AiRole.BUSINESS_USER,
        help_text=_("The role the company plays for this use case; it selects the governance items that apply."),
    )
    frameworks = models.JSONField(
        _("governance frameworks"),
        default=default_frameworks,
        blank=True,
        validators=[ChoiceListValidator(SELECTABLE_FRAMEWORKS)],
        help_text=_("Frameworks whose checklist items apply, on top of the core rules."),
    )

    monthly_cost = computed_money_field(_("monthly cost"))
    monthly_benefit = computed_money_field(_("monthly benefit"))
    roi_pct = models.DecimalField(_("ROI %"), max_digits=24, decimal_places=2, null=True, blank=True, editable=False)
    npv = computed_money_field(_("NPV"))
    payback_months = models.PositiveIntegerField(_("payback (months)"), null=True, blank=True, editable=False)
    governance_status = models.CharField(
        _("governance status"),
        max_length=16,
        choices=GovernanceStatus,
        default=GovernanceStatus.NOT_EVALUATED,
        editable=False,
    )
    computed_at = models.DateTimeField(_("computed at"), null=True, blank=True, editable=False)
    # Set in the same transaction as any change to the inputs and cleared by the
    # recompute, so a change whose task was never queued is found by the sweep.
    needs_recompute = models.BooleanField(_("needs recompute"), default=True, editable=False, db_index=True)
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True, db_index=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["team", "title"]
        verbose_name = _("use case")
        verbose_name_plural = _("use cases")
        constraints = [
            models.UniqueConstraint(fields=["team", "external_id"], name="use_case_external_id_unique_per_team"),
            models.CheckConstraint(
                condition=Q(horizon_months__gte=1, horizon_months__lte=600), name="use_case_horizon_1_to_600"
            ),
            models.CheckConstraint(
                condition=Q(
                    hours_saved_per_month__gte=0,
                    hourly_rate__gte=0,
                    other_monthly_benefit__gte=0,
                    one_time_cost__gte=0,
                    monthly_fixed_cost__gte=0,
                ),
                name="use_case_inputs_non_negative",
            ),
        ]
        indexes = [models.Index(fields=["team", "stage"], name="use_case_team_stage_idx")]

    def __str__(self):
        return self.title


class ProofOfConcept(models.Model):
    class Status(models.TextChoices):
        PLANNED = "planned", _("Planned")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    use_case = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="pocs", verbose_name=_("use case"))
    hypothesis = models.TextField(_("hypothesis"))
    success_criteria = models.TextField(_("success criteria"), blank=True)
    model = models.ForeignKey(
        "pricing.LanguageModel",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="pocs",
        verbose_name=_("model under test"),
    )
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.PLANNED)
    start_date = models.DateField(_("start date"), null=True, blank=True)
    end_date = models.DateField(_("end date"), null=True, blank=True)
    kpi_name = models.CharField(_("KPI"), max_length=128, blank=True)
    baseline_kpi = models.DecimalField(_("baseline KPI"), max_digits=16, decimal_places=4, null=True, blank=True)
    measured_kpi = models.DecimalField(_("measured KPI"), max_digits=16, decimal_places=4, null=True, blank=True)
    cost = money_field(_("cost"), help_text=_("In the use case's currency."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["use_case", "-start_date", "pk"]
        verbose_name = _("proof of concept")
        verbose_name_plural = _("proofs of concept")
        constraints = [
            models.CheckConstraint(
                condition=Q(start_date__isnull=True)
                | Q(end_date__isnull=True)
                | Q(end_date__gte=models.F("start_date")),
                name="poc_ends_after_start",
            ),
            models.CheckConstraint(condition=Q(cost__gte=0), name="poc_cost_non_negative"),
        ]

    def __str__(self):
        return f"PoC: {self.hypothesis[:60]}"

    def clean(self):
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": _("The end date is before the start date.")})


class Deployment(models.Model):
    class Hosting(models.TextChoices):
        API = "api", _("External API")
        SELF_HOSTED = "self_hosted", _("Self-hosted")

    class Environment(models.TextChoices):
        CLOUD = "cloud", _("Cloud")
        ON_PREM = "on_prem", _("On-prem")
        HYBRID = "hybrid", _("Hybrid")

    class Status(models.TextChoices):
        PLANNED = "planned", _("Planned")
        ACTIVE = "active", _("Active")
        STOPPED = "stopped", _("Stopped")

    use_case = models.ForeignKey(
        UseCase, on_delete=models.CASCADE, related_name="deployments", verbose_name=_("use case")
    )
    name = models.CharField(_("name"), max_length=128, blank=True)
    model = models.ForeignKey(
        "pricing.LanguageModel", on_delete=models.PROTECT, related_name="deployments", verbose_name=_("model")
    )
    hosting = models.CharField(_("hosting"), max_length=16, choices=Hosting, default=Hosting.API)
    environment = models.CharField(_("environment"), max_length=16, choices=Environment, default=Environment.CLOUD)
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.PLANNED)

    requests_per_month = models.PositiveBigIntegerField(
        _("requests per month"), default=0, validators=[MaxValueValidator(MAX_REQUESTS_PER_MONTH)]
    )
    avg_input_tokens = models.PositiveIntegerField(
        _("average input tokens"), default=0, validators=[MaxValueValidator(MAX_TOKENS_PER_REQUEST)]
    )
    avg_output_tokens = models.PositiveIntegerField(
        _("average output tokens"), default=0, validators=[MaxValueValidator(MAX_TOKENS_PER_REQUEST)]
    )
    cached_input_ratio = models.DecimalField(
        _("cached input ratio"),
        max_digits=5,
        decimal_places=4,
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
        help_text=_("Share of input tokens served from the provider's cache, between 0 and 1."),
    )
    data_processing_agreement = models.BooleanField(
        _("data-processing agreement recorded"),
        default=False,
        help_text=_("A signed agreement with the API provider covers the data sent to it."),
    )

    self_hosting_profile = models.ForeignKey(
        "pricing.SelfHostingProfile",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="deployments",
        verbose_name=_("self-hosting profile"),
        help_text=_("A shared hardware profile; when set it replaces the GPU fields below."),
    )
    gpu_type = models.CharField(_("GPU type"), max_length=64, blank=True)
    gpu_count = models.PositiveIntegerField(_("GPUs"), default=0, validators=[MaxValueValidator(100_000)])
    gpu_hourly_cost = models.DecimalField(
        _("cost per GPU-hour"),
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text=_("Empty: the catalogue rate for the GPU type."),
    )
    hours_per_month = models.DecimalField(
        _("hours per month"),
        max_digits=6,
        decimal_places=2,
        default=730,
        validators=[MinValueValidator(0), MaxValueValidator(744)],
    )
    monthly_fixed_cost = money_field(_("monthly fixed cost"))

    monthly_cost = computed_money_field(_("monthly cost"))
    computed_at = models.DateTimeField(_("computed at"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["use_case", "pk"]
        verbose_name = _("deployment")
        verbose_name_plural = _("deployments")
        constraints = [
            models.CheckConstraint(
                condition=Q(cached_input_ratio__gte=0, cached_input_ratio__lte=1),
                name="deployment_cached_ratio_between_0_and_1",
            ),
            models.CheckConstraint(
                condition=Q(hours_per_month__gte=0, hours_per_month__lte=744),
                name="deployment_hours_within_a_month",
            ),
            models.CheckConstraint(
                condition=Q(monthly_fixed_cost__gte=0) & (Q(gpu_hourly_cost__isnull=True) | Q(gpu_hourly_cost__gte=0)),
                name="deployment_costs_non_negative",
            ),
        ]
        indexes = [models.Index(fields=["model", "status"], name="deployment_model_status_idx")]

    def __str__(self):
        return self.name or f"{self.model} for {self.use_case}"

    def clean(self):
        if self.hosting != self.Hosting.SELF_HOSTED:
            return
        errors = {}
        if self.model_id is not None and not self.model.open_weights:
            errors["model"] = _("Only open-weight models can be self-hosted; this one is offered by API only.")
        if self.self_hosting_profile_id is None:
            if self.gpu_count < 1:
                errors["gpu_count"] = _("A self-hosted deployment needs at least one GPU, or a self-hosting profile.")
            if self.gpu_hourly_cost is None and not self.gpu_type:
                errors["gpu_type"] = _("Give a GPU type priced in the catalogue, or a cost per GPU-hour.")
        if errors:
            raise ValidationError(errors)


class CostSnapshot(models.Model):
    """What a recompute produced and from which prices and rates.

    Written when a use case's figures change, so history is never silently
    re-priced and every figure can be explained later.
    """

    use_case = models.ForeignKey(
        UseCase, on_delete=models.CASCADE, related_name="cost_snapshots", verbose_name=_("use case")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    priced_on = models.DateField(_("priced on"))
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    currency = currency_field()
    monthly_cost = models.DecimalField(_("monthly cost"), max_digits=20, decimal_places=2)
    previous_monthly_cost = models.DecimalField(
        _("previous monthly cost"), max_digits=20, decimal_places=2, null=True, blank=True
    )
    monthly_benefit = models.DecimalField(_("monthly benefit"), max_digits=20, decimal_places=2)
    roi_pct = models.DecimalField(_("ROI %"), max_digits=24, decimal_places=2, null=True, blank=True)
    npv = models.DecimalField(_("NPV"), max_digits=20, decimal_places=2)
    payback_months = models.PositiveIntegerField(_("payback (months)"), null=True, blank=True)
    # One entry per active deployment: its cost and the ids of the price, GPU rate and
    # exchange rate rows it used.
    breakdown = models.JSONField(_("breakdown"), default=list)

    class Meta:
        ordering = ["-created_at", "-pk"]
        get_latest_by = "created_at"
        verbose_name = _("cost snapshot")
        verbose_name_plural = _("cost snapshots")

    def __str__(self):
        return f"{self.use_case}: {self.monthly_cost} {self.currency} ({self.priced_on})"


class RecomputeJob(models.Model):
    """A recompute of many use cases, run in chunks by the workers, with its progress.

    ``scope`` names what it covers: ``{"all": true}``, ``{"model_ids": [...]}``,
    ``{"currencies": [...]}`` or ``{"stale": true}``.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        FINISHED = "finished", _("Finished")
        FAILED = "failed", _("Failed")

    reason = models.CharField(_("reason"), max_length=200)
    scope = models.JSONField(_("scope"), default=dict)
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.QUEUED, db_index=True)
    total = models.PositiveIntegerField(_("use cases"), default=0)
    done = models.PositiveIntegerField(_("done"), default=0)
    changed = models.PositiveIntegerField(_("figures changed"), default=0)
    errors = models.PositiveIntegerField(_("errors"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    currency = currency_field()
    monthly_cost_before = models.DecimalField(
        _("monthly cost before"), max_digits=20, decimal_places=2, null=True, blank=True
    )
    monthly_cost_after = models.DecimalField(
        _("monthly cost after"), max_digits=20, decimal_places=2, null=True, blank=True
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        get_latest_by = "created_at"
        verbose_name = _("recompute job")
        verbose_name_plural = _("recompute jobs")
        constraints = [
            models.CheckConstraint(condition=Q(done__lte=models.F("total")), name="recompute_job_done_within_total"),
        ]

    def __str__(self):
        return f"{self.reason} ({self.get_status_display()}, {self.done}/{self.total})"

    @property
    def progress_pct(self) -> int:
        return 100 if self.total == 0 else int(self.done * 100 / self.total)

    @property
    def monthly_cost_delta(self):
        if self.monthly_cost_before is None or self.monthly_cost_after is None:
            return None
        return self.monthly_cost_after - self.monthly_cost_before


class RecomputeChunk(models.Model):
    """A chunk of a job, recorded in the transaction that recomputes it: a redelivered
    chunk is recognised and not counted twice."""

    job = models.ForeignKey(RecomputeJob, on_delete=models.CASCADE, related_name="chunks")
    first_id = models.BigIntegerField()
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "first_id"], name="recompute_chunk_once_per_job")]

    def __str__(self):
        return f"{self.job_id}:{self.first_id}+{self.size}"


class PortfolioSnapshot(models.Model):
    """Portfolio totals on a day, for trend charts; the nightly job writes one a day."""

    taken_on = models.DateField(_("taken on"), unique=True)
    taken_at = models.DateTimeField(_("taken at"), auto_now=True)
    currency = currency_field()
    use_cases = models.PositiveIntegerField(_("use cases"), default=0)
    monthly_cost = models.DecimalField(_("monthly cost"), max_digits=20, decimal_places=2, default=0)
    monthly_benefit = models.DecimalField(_("monthly benefit"), max_digits=20, decimal_places=2, default=0)
    npv = models.DecimalField(_("NPV"), max_digits=22, decimal_places=2, default=0)
    by_team = models.JSONField(_("by team"), default=dict)
    by_stage = models.JSONField(_("by stage"), default=dict)
    by_model = models.JSONField(_("by model"), default=dict)

    class Meta:
        ordering = ["-taken_on"]
        get_latest_by = "taken_on"
        verbose_name = _("portfolio snapshot")
        verbose_name_plural = _("portfolio snapshots")

    def __str__(self):
        return f"Portfolio on {self.taken_on}: {self.monthly_cost} {self.currency}/month"


# --- Governance --------------------------------------------------------------------------

EVIDENCE_FILE_EXTENSIONS = [
    "pdf",
    "png",
    "jpg",
    "jpeg",
    "txt",
    "md",
    "csv",
    "json",
    "docx",
    "xlsx",
    "pptx",
    "odt",
    "ods",
    "odp",
]


def evidence_upload_to(item: "ChecklistItem", filename: str) -> str:
    # A random folder per upload: names never collide and cannot be guessed.
    return f"evidence/{item.use_case_id}/{uuid.uuid4().hex}/{filename}"


class ChecklistTemplate(models.Model):
    """A line of the governance checklists, kept as data: where it applies and how it is decided.

    Each condition list narrows the use cases the template applies to; an empty list
    means any. ``automatic`` templates are decided by their ``rule`` from the use case
    and its deployments; ``manual`` ones by a person recording evidence.
    """

    class Category(models.TextChoices):
        LICENSING = "licensing", _("Licensing")
        SECURITY = "security", _("Security")
        ETHICS = "ethics", _("Ethics")

    class Kind(models.TextChoices):
        AUTOMATIC = "automatic", _("Automatic")
        MANUAL = "manual", _("Manual")

    class Rule(models.TextChoices):
        LICENCE_KNOWN = "licence_known", _("Every deployed model has a known licence")
        LICENCE_COMMERCIAL_USE = "licence_commercial_use", _("The licences allow commercial use")
        LICENCE_USER_LIMIT = "licence_user_limit", _("Expected monthly active users within the licences' limits")
        DATA_PROCESSING_AGREEMENT = (
            "data_processing_agreement",
            _("Confidential or personal data reach external APIs only under a data-processing agreement"),
        )
        RISK_TIER = "risk_tier", _("Risk tier assessed and not unacceptable")

    code = models.SlugField(_("code"), max_length=64, unique=True)
    framework = models.CharField(
        _("framework"), max_length=32, choices=GovernanceFramework, default=GovernanceFramework.CORE
    )
    category = models.CharField(_("category"), max_length=16, choices=Category)
    title = models.CharField(_("title"), max_length=200)
    guidance = models.TextField(_("guidance"), blank=True, help_text=_("What to check and what counts as evidence."))
    reference = models.CharField(
        _("reference"), max_length=200, blank=True, help_text=_("The article or principle the item comes from.")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind, default=Kind.MANUAL)
    rule = models.CharField(
        _("rule"), max_length=32, choices=Rule, blank=True, help_text=_("Decides an automatic item; empty for manual.")
    )
    applies_to_risk_tiers = models.JSONField(
        _("risk tiers"), default=list, blank=True, validators=[ChoiceListValidator(UseCase.RiskTier.values)]
    )
    applies_to_data_classifications = models.JSONField(
        _("data classifications"),
        default=list,
        blank=True,
        validators=[ChoiceListValidator(UseCase.DataClassification.values)],
    )
    applies_to_hosting = models.JSONField(
        _("hosting"),
        default=list,
        blank=True,
        validators=[ChoiceListValidator(Deployment.Hosting.values)],
        help_text=_("Applies when a planned or active deployment is hosted this way."),
    )
    applies_to_ai_roles = models.JSONField(
        _("AI roles"), default=list, blank=True, validators=[ChoiceListValidator(UseCase.AiRole.values)]
    )
    required = models.BooleanField(
        _("required"), default=True, help_text=_("Required items count for the governance status and the stage gate.")
    )
    active = models.BooleanField(_("active"), default=True, help_text=_("Inactive templates produce no new items."))
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["framework", "category", "position", "code"]
        verbose_name = _("checklist template")
        verbose_name_plural = _("checklist templates")
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="automatic") & ~Q(rule="")) | (Q(kind="manual") & Q(rule="")),
                name="checklist_template_rule_iff_automatic",
            ),
        ]

    def __str__(self):
        return f"{self.code}: {self.title}"

    def clean(self):
        if self.kind == self.Kind.AUTOMATIC and not self.rule:
            raise ValidationError({"rule": _("An automatic item needs the rule that decides it.")})
        if self.kind == self.Kind.MANUAL and self.rule:
            raise ValidationError({"rule": _("A manual item is decided by people: leave the rule empty.")})


class ChecklistItem(models.Model):
    """A template applied to one use case: its status, the evidence for it and any waiver."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        PASSED = "passed", _("Passed")
        FAILED = "failed", _("Failed")
        WAIVED = "waived", _("Waived")

    # The statuses that let a use case through the stage gate.
    CLEARED = frozenset({Status.PASSED, Status.WAIVED})

    use_case = models.ForeignKey(
        UseCase, on_delete=models.CASCADE, related_name="checklist_items", verbose_name=_("use case")
    )
    template = models.ForeignKey(
        ChecklistTemplate, on_delete=models.PROTECT, related_name="items", verbose_name=_("template")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.OPEN)
    required = models.BooleanField(
        _("required"),
        default=True,
        help_text=_(
            "Counts for the governance status and the gate. Off for optional items and for items kept "
            "for their evidence or waiver after their template stopped applying."
        ),
    )
    detail = models.TextField(_("detail"), blank=True, help_text=_("Why the automatic rule decided as it did."))
    evidence_text = models.TextField(_("evidence"), blank=True)
    evidence_url = models.URLField(_("evidence link"), max_length=500, blank=True)
    evidence_file = models.FileField(
        _("evidence file"),
        upload_to=evidence_upload_to,
        max_length=255,
        blank=True,
        validators=[FileExtensionValidator(EVIDENCE_FILE_EXTENSIONS)],
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("recorded by"),
    )
    recorded_at = models.DateTimeField(_("recorded at"), null=True, blank=True)
    waiver_reason = models.TextField(_("waiver reason"), blank=True)
    waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("waived by"),
    )
    waived_at = models.DateTimeField(_("waived at"), null=True, blank=True)
    waiver_expires_on = models.DateField(
        _("waiver expires on"), null=True, blank=True, help_text=_("From this day on the item is open again.")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["use_case_id", "template_id"]
        verbose_name = _("checklist item")
        verbose_name_plural = _("checklist items")
        constraints = [
            models.UniqueConstraint(fields=["use_case", "template"], name="checklist_item_one_per_template"),
            models.CheckConstraint(
                condition=~Q(status="waived") | ~Q(waiver_reason=""), name="checklist_item_waiver_has_reason"
            ),
        ]
        indexes = [models.Index(fields=["status", "waiver_expires_on"], name="checklist_item_status_idx")]

    def __str__(self):
        return f"{self.template.code} for {self.use_case}"

    def clean(self):
        if self.status == self.Status.WAIVED and not self.waiver_reason.strip():
            raise ValidationError({"waiver_reason": _("A waiver needs a written reason.")})

    @property
    def has_evidence(self) -> bool:
        return bool(self.evidence_text.strip() or self.evidence_url or self.evidence_file)


# --- Webhooks ----------------------------------------------------------------------------


class WebhookEvent(models.TextChoices):
    USE_CASE_CREATED = "use_case.created", _("Use case created")
    USE_CASE_UPDATED = "use_case.updated", _("Use case updated")
    USE_CASE_STAGE_CHANGED = "use_case.stage_changed", _("Use case stage changed")
    DEPLOYMENT_CHANGED = "deployment.changed", _("Deployment created, changed or deleted")
    CHECKLIST_ITEM_FAILED = "checklist_item.failed", _("Checklist item failed")
    CHECKLIST_ITEM_WAIVED = "checklist_item.waived", _("Checklist item waived")
    PRICE_CHANGED = "price.changed", _("Price added")
    RECOMPUTE_FINISHED = "recompute.finished", _("Recompute job finished")


# Events about the whole portfolio rather than one team's records: only whole-portfolio
# subscriptions receive them.
PORTFOLIO_WIDE_EVENTS = frozenset({WebhookEvent.PRICE_CHANGED, WebhookEvent.RECOMPUTE_FINISHED})


class WebhookSubscription(models.Model):
    """A target URL that receives the chosen events, signed with the subscription's secret.

    ``team`` empty: the whole portfolio (portfolio managers only); else that team's
    records only. The secret is stored as it is, because signing needs it.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("owner"),
    )
    team = models.ForeignKey(
        Team,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="webhook_subscriptions",
        verbose_name=_("team"),
        help_text=_("Empty: the whole portfolio (portfolio managers only)."),
    )
    description = models.CharField(_("description"), max_length=200, blank=True)
    target_url = models.URLField(
        _("target URL"), max_length=500, help_text=_("A public http(s) address that receives the events by POST.")
    )
    events = models.JSONField(_("events"), default=list, validators=[ChoiceListValidator(WebhookEvent.values)])
    secret = models.CharField(_("secret"), max_length=128, editable=False)
    active = models.BooleanField(_("active"), default=True)
    disabled_reason = models.TextField(_("disabled reason"), blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(
        _("consecutive failures"),
        default=0,
        editable=False,
        help_text=_("Deliveries abandoned in a row since the last success."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("webhook subscription")
        verbose_name_plural = _("webhook subscriptions")

    def __str__(self):
        return f"{self.target_url} ({self.team or _('whole portfolio')})"

    def clean(self):
        if not self.events:
            raise ValidationError({"events": _("Choose at least one event.")})
        portfolio_wide = sorted(set(self.events) & PORTFOLIO_WIDE_EVENTS) if isinstance(self.events, list) else []
        if self.team_id is not None and portfolio_wide:
            raise ValidationError(
                {
                    "events": _(
                        "%(events)s concern the whole portfolio: only whole-portfolio subscriptions receive them."
                    )
                    % {"events": ", ".join(portfolio_wide)}
                }
            )


class WebhookDelivery(models.Model):
    """One event sent to one subscription: its signed payload, its attempts and their outcome."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed, will retry")
        ABANDONED = "abandoned", _("Abandoned")

    # Statuses still to be sent.
    OPEN = frozenset({Status.PENDING, Status.FAILED})

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("subscription")
    )
    event_type = models.CharField(_("event"), max_length=32, choices=WebhookEvent)
    event_id = models.UUIDField(_("event id"), help_text=_("Sent as X-Webhook-Id; the same on every attempt."))
    payload = models.JSONField(_("payload"))
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_status_code = models.PositiveSmallIntegerField(_("last status code"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="delivered") | Q(delivered_at__isnull=False),
                name="webhook_delivery_delivered_has_time",
            ),
        ]
        # The sweep's question: which open deliveries are due?
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due_idx")]

    def __str__(self):
        return f"{self.event_type} to {self.subscription_id} ({self.get_status_display()})"
