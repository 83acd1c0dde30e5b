"""Forms of the web UI. They validate and translate input; views hand the result to a service."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import QuerySet
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from openpyxl import load_workbook

from portfolio import selectors, services
from portfolio.models import (
    SELECTABLE_FRAMEWORKS,
    ChecklistItem,
    Deployment,
    GovernanceFramework,
    ProofOfConcept,
    UseCase,
)
from pricing import selectors as pricing_selectors

MAX_IMPORT_ROWS = 1000
MAX_IMPORT_BYTES = 5 * 1024 * 1024
# Rows of a file the import reads, empty ones included: a table ends well before this.
MAX_IMPORT_LINES = 10 * MAX_IMPORT_ROWS
# Columns of a file the import reads; the rest of a row is left unread.
MAX_IMPORT_COLUMNS = 100
# Markup (each "<") in all the parts of a workbook, at most: a sheet of 1000 rows of 30
# values takes about 160,000.
MAX_WORKBOOK_TAGS = 500_000
# Elements other than rows, cells and text in any one part of a workbook, at most. Such
# parts (styles, the list of sheets, relationships) are parsed whole into objects; a real
# workbook holds some hundreds of their elements.
MAX_WORKBOOK_PART_ELEMENTS = 20_000
# Parts of a workbook, at most: a real one has some tens.
MAX_WORKBOOK_PARTS = 1000
# Characters of a cell the import preview shows; longer text ends in an ellipsis.
PREVIEW_CHARS = 200

# Inputs a spreadsheet may set, by column name. Exports write these columns first, so an
# exported file imports back as it is.
IMPORT_FIELDS = [
    "title",
    "description",
    "category",
    "stage",
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
]
EXPORT_COLUMNS = [
    "team",
    "external_id",
    *IMPORT_FIELDS,
    "owner",
    "monthly_cost",
    "monthly_benefit",
    "roi_pct",
    "npv",
    "payback_months",
    "governance_status",
    "needs_recompute",
]


def add_service_errors(form: forms.BaseForm, error: ValidationError) -> None:
    """Put a service's ``ValidationError`` on the form: on its field where the form has one."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, errors in error.error_dict.items():
        form.add_error(name if name in form.fields and name != NON_FIELD_ERRORS else None, errors)


class FieldsetsMixin:
    """``form.fieldsets`` gives (legend, bound fields) pairs for templates that group inputs."""

    FIELDSETS: list[tuple[str, list[str]]] = []

    def fieldsets(self):
        return [(legend, [self[name] for name in names if name in self.fields]) for legend, names in self.FIELDSETS]


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs):
        kwargs.setdefault("format", "%Y-%m-%d")
        super().__init__(**kwargs)


# --- Use cases ---------------------------------------------------------------------------


def team_members(teams) -> QuerySet:
    """Active users who may own a use case of one of ``teams``: their members, any role."""
    return get_user_model().objects.filter(is_active=True, memberships__team__in=teams).distinct().order_by("username")


class UseCaseForm(FieldsetsMixin, forms.ModelForm):
    """A use case's inputs. The team is chosen on creation only; the stage moves on the use case page."""

    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    frameworks = forms.MultipleChoiceField(
        label=_("Governance frameworks"),
        choices=[(value, GovernanceFramework(value).label) for value in SELECTABLE_FRAMEWORKS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("Frameworks whose checklist items apply, on top of the core rules."),
    )

    FIELDSETS = [
        (_("What it is"), ["team", "title", "external_id", "description", "category", "stage", "owner"]),
        (
            _("Risk and governance"),
            ["risk_tier", "data_classification", "expected_monthly_active_users", "ai_role", "frameworks"],
        ),
        (_("Benefit"), ["currency", "hours_saved_per_month", "hourly_rate", "other_monthly_benefit"]),
        (_("Cost and horizon"), ["one_time_cost", "monthly_fixed_cost", "horizon_months"]),
    ]

    class Meta:
        model = UseCase
        fields = [
            "team",
            "title",
            "external_id",
            "description",
            "category",
            "stage",
            "owner",
            "risk_tier",
            "data_classification",
            "expected_monthly_active_users",
            "ai_role",
            "frameworks",
            "currency",
            "hours_saved_per_month",
            "hourly_rate",
            "other_monthly_benefit",
            "one_time_cost",
            "monthly_fixed_cost",
            "horizon_months",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {
            "title": _("A short name people recognise, e.g. “FAQ chatbot”."),
            "stage": _(
                "Where the use case starts. Production and scaled are reached from the use case page, "
                "through the governance gate."
            ),
            "owner": _("The person who answers for the use case."),
            "risk_tier": _("The EU AI Act risk tier. “Not assessed” blocks the stage gate."),
            "data_classification": _("The most sensitive data the AI sees."),
            "expected_monthly_active_users": _("Checked against model licences' user limits (Llama 3: 700 million)."),
            "currency": _("Three-letter code (USD, JPY) of every amount on this use case."),
            "hours_saved_per_month": _("Staff hours the use case saves each month."),
            "hourly_rate": _("Cost of one staff hour, in the use case's currency."),
            "other_monthly_benefit": _("Any other benefit per month, e.g. extra revenue."),
            "one_time_cost": _("Build, integration and training, spent once at the start."),
            "monthly_fixed_cost": _(
                "Running costs besides the models: licences, hosting, support. Deployments add their own cost."
            ),
            "horizon_months": _("Months over which ROI, NPV and payback are computed (1–600)."),
        }

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        # Members of the use case's team; on creation, of every team it may go to (the
        # service refuses, on this field, a member of another team than the one chosen).
        teams = selectors.visible_teams(user=user) if self.instance.pk is None else [self.instance.team_id]
        self.fields["owner"].queryset = team_members(teams)
        # An unknown user and an outsider read alike.
        self.fields["owner"].error_messages["invalid_choice"] = services.OWNER_OUTSIDE_TEAM
        self.fields["currency"].widget.attrs.update({"size": 3, "maxlength": 3})
        if self.instance.pk is None:
            self.fields["team"].queryset = selectors.visible_teams(user=user).order_by("name")
            self.fields["team"].empty_label = None
            gated = {str(stage) for stage in UseCase.GATED_STAGES}
            self.fields["stage"].choices = [
                (value, label) for value, label in UseCase.Stage.choices if value not in gated
            ]
            self.initial.setdefault("owner", user.pk)
        else:
            del self.fields["team"]
            del self.fields["stage"]
            self.fields["expected_version"].initial = self.instance.version

    def save_through_service(self) -> UseCase:
        """Create or update through the services; raises ``ValidationError`` or ``StaleVersion``."""
        data = {name: value for name, value in self.cleaned_data.items() if name != "expected_version"}
        if self.instance.pk is None:
            return services.create_use_case(**data)
        return services.update_use_case(
            use_case=self.instance, expected_version=self.cleaned_data.get("expected_version"), **data
        )


class StageForm(forms.Form):
    stage = forms.ChoiceField(label=_("Move to stage"), choices=UseCase.Stage.choices)
    expected_version = forms.IntegerField(widget=forms.HiddenInput, required=False)


class UseCaseFilterForm(forms.Form):
    """The list page's filters; every field is optional and an invalid value is ignored."""

    SORTS = [
        ("title", _("Title")),
        ("team", _("Team")),
        ("stage", _("Stage")),
        ("-monthly_cost", _("Monthly cost, highest first")),
        ("monthly_cost", _("Monthly cost, lowest first")),
        ("-roi_pct", _("ROI, highest first")),
        ("roi_pct", _("ROI, lowest first")),
        ("-npv", _("NPV, highest first")),
        ("-updated_at", _("Recently changed")),
    ]

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=100,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Title, description or id")}),
    )
    team = forms.ModelChoiceField(
        label=_("Team"), queryset=None, required=False, to_field_name="slug", empty_label=_("All teams")
    )
    stage = forms.ChoiceField(label=_("Stage"), required=False, choices=[("", _("All stages")), *UseCase.Stage.choices])
    risk_tier = forms.ChoiceField(
        label=_("Risk tier"), required=False, choices=[("", _("All risk tiers")), *UseCase.RiskTier.choices]
    )
    governance_status = forms.ChoiceField(
        label=_("Governance"), required=False, choices=[("", _("Any governance")), *UseCase.GovernanceStatus.choices]
    )
    sort = forms.ChoiceField(label=_("Sort"), required=False, choices=SORTS)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = selectors.visible_teams(user=user).order_by("name")

    def selector_arguments(self) -> dict[str, Any]:
        """Arguments for ``selectors.list_use_cases``; fields with invalid values are dropped."""
        data = getattr(self, "cleaned_data", {})
        return {
            "team": data.get("team"),
            "stage": data.get("stage", ""),
            "risk_tier": data.get("risk_tier", ""),
            "governance_status": data.get("governance_status", ""),
            "search": data.get("q", ""),
            "ordering": data.get("sort", ""),
        }


# --- PoCs and deployments -----------------------------------------------------------------


class ProofOfConceptForm(FieldsetsMixin, forms.ModelForm):
    FIELDSETS = [
        (_("Hypothesis"), ["hypothesis", "success_criteria", "model", "status"]),
        (_("Dates and cost"), ["start_date", "end_date", "cost"]),
        (_("Measurement"), ["kpi_name", "baseline_kpi", "measured_kpi"]),
    ]

    class Meta:
        model = ProofOfConcept
        fields = [
            "hypothesis",
            "success_criteria",
            "model",
            "status",
            "start_date",
            "end_date",
            "cost",
            "kpi_name",
            "baseline_kpi",
            "measured_kpi",
        ]
        widgets = {
            "hypothesis": forms.Textarea(attrs={"rows": 2}),
            "success_criteria": forms.Textarea(attrs={"rows": 2}),
            "start_date": DateInput(),
            "end_date": DateInput(),
        }
        help_texts = {
            "hypothesis": _("What the PoC should show, e.g. “The bot answers most FAQs without an agent”."),
            "success_criteria": _("How you will decide: the measure and the threshold."),
            "model": _("The model the PoC tries; empty while undecided."),
            "kpi_name": _("The measure, e.g. “minutes per ticket”."),
            "baseline_kpi": _("The measure before the PoC."),
            "measured_kpi": _("The measure the PoC reached."),
            "cost": _("What the PoC costs in all, in the use case's currency."),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = pricing_selectors.list_models().order_by("display_name")


class DeploymentForm(FieldsetsMixin, forms.ModelForm):
    FIELDSETS = [
        (_("Model and status"), ["name", "model", "hosting", "environment", "status"]),
        (
            _("Traffic"),
            [
                "requests_per_month",
                "avg_input_tokens",
                "avg_output_tokens",
                "cached_input_ratio",
                "data_processing_agreement",
            ],
        ),
        (
            _("Self-hosting (only for self-hosted deployments)"),
            ["self_hosting_profile", "gpu_type", "gpu_count", "gpu_hourly_cost", "hours_per_month"],
        ),
        (_("Other costs"), ["monthly_fixed_cost"]),
    ]

    class Meta:
        model = Deployment
        fields = [
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
        ]
        help_texts = {
            "name": _("Optional, e.g. “EU production”."),
            "hosting": _(
                "External API: priced per token from the catalogue. Self-hosted: priced by the GPUs "
                "it runs on (open-weight models only)."
            ),
            "status": _("Only active deployments count in the use case's monthly cost."),
            "requests_per_month": _("Calls to the model per month."),
            "avg_input_tokens": _("Prompt tokens per call, including context."),
            "avg_output_tokens": _("Generated tokens per call."),
            "hours_per_month": _("Hours the GPUs are rented or running per month (730 is always on)."),
            "monthly_fixed_cost": _("Anything else this deployment costs per month, in the use case's currency."),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = pricing_selectors.list_models().order_by("display_name")
        self.fields["self_hosting_profile"].queryset = pricing_selectors.list_self_hosting_profiles()


# --- Governance checklist -------------------------------------------------------------------


class EvidenceForm(forms.Form):
    """Evidence recorded inline on a checklist item, and for a manual item its status."""

    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[
            ("", _("Keep the status")),
            (ChecklistItem.Status.OPEN, ChecklistItem.Status.OPEN.label),
            (ChecklistItem.Status.PASSED, ChecklistItem.Status.PASSED.label),
            (ChecklistItem.Status.FAILED, ChecklistItem.Status.FAILED.label),
        ],
    )
    evidence_text = forms.CharField(
        label=_("Evidence"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("What shows the item is met: a decision, a document, a test."),
    )
    evidence_url = forms.URLField(label=_("Evidence link"), required=False, assume_scheme="https", max_length=500)
    evidence_file = forms.FileField(label=_("Evidence file"), required=False)


class WaiverForm(forms.Form):
    waiver_reason = forms.CharField(
        label=_("Reason for the waiver"),
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Why the portfolio accepts this item unmet; kept in the audit trail."),
    )
    waiver_expires_on = forms.DateField(
        label=_("Waiver expires on"),
        required=False,
        widget=DateInput(),
        help_text=_("Optional: the item opens again on this day."),
    )


# --- Dashboard ------------------------------------------------------------------------------


class WhatIfForm(forms.Form):
    from_model = forms.ModelChoiceField(label=_("Swap this model"), queryset=None, to_field_name="key")
    to_model = forms.ModelChoiceField(label=_("for this model"), queryset=None, to_field_name="key")
    team = forms.ModelChoiceField(
        label=_("Team"), queryset=None, required=False, to_field_name="slug", empty_label=_("All teams")
    )
    stage = forms.ChoiceField(label=_("Stage"), required=False, choices=[("", _("All stages")), *UseCase.Stage.choices])

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        models = pricing_selectors.list_models().order_by("display_name")
        self.fields["from_model"].queryset = models
        self.fields["to_model"].queryset = models
        self.fields["team"].queryset = selectors.visible_teams(user=user).order_by("name")

    def clean(self):
        data = super().clean()
        if data.get("from_model") and data.get("from_model") == data.get("to_model"):
            raise ValidationError(_("Choose two different models."))
        return data


# --- Import -------------------------------------------------------------------------------


class ImportForm(forms.Form):
    file = forms.FileField(
        label=_("CSV or Excel file"),
        help_text=_(
            "One use case per row, with a header row. Columns: team (its slug), external_id and any of "
            "the inputs of an export. Rows whose team and external id exist update that use case; "
            "others create one."
        ),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        name = upload.name.lower()
        if not name.endswith((".csv", ".xlsx")):
            raise ValidationError(_("Upload a .csv or .xlsx file."))
        if upload.size > MAX_IMPORT_BYTES:
            raise ValidationError(_("The file is larger than 5 MB."))
        return upload


class ImportConfirmForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput)


class ImportFileError(Exception):
    """The file cannot be read as a table."""


class OverlongCell(str):
    """A cell longer than ``IMPORT_MAX_CELL_CHARS``, kept as the start of its text for the preview.

    Its row is an error; the rest of the text is dropped as the file is read.
    """


def shortened(text: str) -> str:
    """Text as the import preview shows it: at most ``PREVIEW_CHARS`` characters."""
    return Truncator(text).chars(PREVIEW_CHARS)


def read_table(content: bytes, *, filename: str) -> list[dict[str, str]]:
    """Rows of a CSV or XLSX file as {column: text}, the first row giving the column names.

    The file is read a row at a time and refused as soon as it passes a limit, so refusing
    a hostile file costs no more than reading the rows it is allowed; a cell longer than
    ``IMPORT_MAX_CELL_CHARS`` becomes an ``OverlongCell``.
    """
    rows = _workbook_rows(content) if filename.lower().endswith(".xlsx") else _csv_rows(content)
    max_chars = settings.IMPORT_MAX_CELL_CHARS
    header: list[str] | None = None
    table: list[dict[str, str]] = []
    with contextlib.closing(rows):
        for number, values in enumerate(rows, start=1):
            if number > MAX_IMPORT_LINES:
                raise _too_many_lines()
            if values.count(None) == len(values):  # An empty row of a workbook, skipped at C speed.
                continue
            cells = [_cell_text(value, max_chars=max_chars) for value in values[:MAX_IMPORT_COLUMNS]]
            if not any(cells):
                continue
            if header is None:
                header = cells
                missing = [name for name in ("team", "external_id") if name not in header]
                if missing:
                    raise ImportFileError(
                        _("The header row lacks the columns: %(columns)s.") % {"columns": ", ".join(missing)}
                    )
                continue
            if len(table) == MAX_IMPORT_ROWS:
                raise ImportFileError(_("At most %(max)s rows per file.") % {"max": MAX_IMPORT_ROWS})
            table.append({name: cell for name, cell in zip(header, cells, strict=False) if name})
    if header is None:
        raise ImportFileError(_("The file has no rows."))
    return table


def _cell_text(value: Any, *, max_chars: int) -> str:
    text = "" if value is None else str(value)
    if len(text) > max_chars:
        return OverlongCell(shortened(text[: PREVIEW_CHARS + 1]))
    return text.strip()


def _workbook_rows(content: bytes) -> Iterator[tuple[Any, ...]]:
    unreadable = _("The file is not a readable Excel workbook.")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            _check_workbook_size(archive)
    except ImportFileError:
        raise
    except Exception as error:  # zipfile raises several kinds for a damaged archive.
        raise ImportFileError(unreadable) from error
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a damaged file.
        raise ImportFileError(unreadable) from error
    try:
        sheet = workbook.worksheets[0]
        # Rows as the sheet holds them, not padded to the size it declares; and only the
        # columns read, since openpyxl pads each row up to its last cell (column 16,384 at most).
        sheet.reset_dimensions()
        yield from sheet.iter_rows(values_only=True, max_col=MAX_IMPORT_COLUMNS)
    except Exception as error:
        raise ImportFileError(unreadable) from error
    finally:
        workbook.close()


# Start tags of a worksheet's rows, of its cells, and of those with their values and text
# (shared strings, rich text runs and their font), whatever their namespace prefix.
_ROW_TAG = re.compile(rb"<(?:[^\s<>/:]+:)?row[\s/>]")
_CELL_TAG = re.compile(rb"<(?:[^\s<>/:]+:)?c[\s/>]")
_CELL_TEXT_TAG = re.compile(
    rb"<(?:[^\s<>/:]+:)?(?:row|c|v|f|is|t|r|si|rPh|phoneticPr|rPr|b|i|u|strike|sz|color|rFont|family|scheme"
    rb"|vertAlign|charset|outline|shadow|condense|extend)[\s/>]"
)
# The most columns a worksheet can have.
XLSX_MAX_COLUMNS = 16_384


def _check_workbook_size(archive: zipfile.ZipFile) -> None:
    """Refuses a workbook that would take openpyxl far more memory or time to open than its rows are worth.

    The archive's directory is read first, nothing unpacked: a few kilobytes can unpack to
    gigabytes. A member is never unpacked beyond the size it declares (zipfile stops there,
    and the checksum then fails). Each part is then unpacked a piece at a time and its
    markup counted: on opening a workbook, openpyxl reads every shared string, parses
    styles and the list of sheets whole into objects, and keeps an element of every row of
    a sheet that does not declare its size; reading a row, it builds every cell of it,
    whatever columns are asked for.
    """
    members = archive.infolist()
    max_bytes = settings.IMPORT_MAX_UNPACKED_BYTES
    if sum(member.file_size for member in members) > max_bytes:
        raise ImportFileError(
            _("The workbook unpacks to more than %(max)s MB; split it into smaller files.")
            % {"max": max_bytes // (1024 * 1024)}
        )
    too_much = _("The workbook holds more than an import reads: keep only the sheet of use cases.")
    if len(members) > MAX_WORKBOOK_PARTS:
        raise ImportFileError(too_much)
    tags = 0
    for member in members:
        rows = row_cells = elements = 0
        with archive.open(member) as part:
            for data in _tag_aligned_chunks(part):
                tags += data.count(b"<")
                starts = data.count(b"<") - data.count(b"</") - data.count(b"<?") - data.count(b"<!")
                elements += starts - _CELL_TEXT_TAG.subn(b"", data)[1]
                if tags > MAX_WORKBOOK_TAGS or elements > MAX_WORKBOOK_PART_ELEMENTS:
                    raise ImportFileError(too_much)
                pieces = _ROW_TAG.split(data)
                rows += len(pieces) - 1
                if rows > MAX_IMPORT_LINES:
                    raise _too_many_lines()
                for position, piece in enumerate(pieces):
                    cells = _CELL_TAG.subn(b"", piece)[1]
                    row_cells = row_cells + cells if position == 0 else cells
                    if row_cells > XLSX_MAX_COLUMNS:
                        raise ImportFileError(_("The file is not a readable Excel workbook."))


def _tag_aligned_chunks(part) -> Iterator[bytes]:
    """A part's bytes in pieces of about 64 KiB, each cut before a "<" so that no tag is split.

    Small pieces keep counting cheap: a regular expression's count of a piece's tags briefly
    holds an object for each.
    """
    carried = b""
    while chunk := part.read(64 * 1024):
        data = carried + chunk
        # Names are short: a "<" further back is not carried, and at most one tag a
        # piece may go uncounted.
        cut = data.rfind(b"<", max(0, len(data) - 4096))
        if cut == -1:
            yield data
            carried = b""
        else:
            yield data[:cut]
            carried = data[cut:]
    yield carried


def _too_many_lines() -> ImportFileError:
    return ImportFileError(
        _("The file has more than %(lines)s rows, counting empty ones; an import takes at most %(max)s.")
        % {"lines": MAX_IMPORT_LINES, "max": MAX_IMPORT_ROWS}
    )


def _csv_rows(content: bytes) -> Iterator[list[str]]:
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig", newline=""))
    try:
        yield from reader
    except UnicodeDecodeError as error:
        raise ImportFileError(_("The CSV file is not UTF-8 text.")) from error
    except csv.Error as error:  # A cell past the csv module's own limit.
        raise ImportFileError(
            _("Line %(line)s of the CSV file cannot be read: a cell is longer than %(max)s characters.")
            % {"line": reader.line_num, "max": csv.field_size_limit()}
        ) from error


class ImportRowForm(forms.Form):
    """One spreadsheet row, typed and checked like the use case form; empty cells change nothing."""

    def __init__(self, data, *, team_slugs):
        super().__init__(data)
        self.fields["team"] = forms.ChoiceField(choices=[(slug, slug) for slug in team_slugs])
        self.fields["external_id"] = forms.CharField(max_length=128)
        self.fields["owner"] = forms.CharField(max_length=150, required=False)
        for name, form_field in forms.fields_for_model(UseCase, fields=IMPORT_FIELDS).items():
            form_field.required = False
            self.fields[name] = form_field


@dataclass
class ImportRow:
    number: int  # Line in the file, the header being line 1.
    values: dict[str, str]
    action: str = ""  # "create" or "update" once validated.
    errors: list[str] = field(default_factory=list)


@dataclass
class ImportPlan:
    """The rows of a file, checked: what the bulk upsert gets, and each row's action or errors."""

    rows: list[ImportRow]
    bulk_rows: list[services.BulkRow] = field(default_factory=list)
    sources: list[ImportRow] = field(default_factory=list)  # The file row of each bulk row.

    @property
    def has_errors(self) -> bool:
        return any(row.errors for row in self.rows)

    @property
    def counts(self) -> dict[str, int]:
        return {action: sum(1 for row in self.rows if row.action == action) for action in ("create", "update")}

    def record_errors(self, error: ValidationError) -> None:
        """Put the bulk upsert's errors (row index to a flat list of messages) on the file's rows."""
        for index, messages in error.message_dict.items():
            self.sources[int(index)].errors = list(messages)

    def record_actions(self, result: services.BulkResult) -> None:
        created = {(use_case.team_id, use_case.external_id) for use_case in result.created}
        for row, bulk_row in zip(self.sources, self.bulk_rows, strict=True):
            row.action = "create" if (bulk_row.team.pk, bulk_row.external_id) in created else "update"


def _messages(errors: dict[str, list[ValidationError]]) -> list[str]:
    return [
        message if name == NON_FIELD_ERRORS else f"{name}: {message}"
        for name, error_list in errors.items()
        for error in error_list
        for message in _quoting_shortened(error).messages
    ]


def _quoting_shortened(error: ValidationError) -> ValidationError:
    # An error can quote the cell (an invalid choice does): the preview shows the start of it.
    if not getattr(error, "params", None):
        return error
    params = {name: shortened(value) if isinstance(value, str) else value for name, value in error.params.items()}
    return ValidationError(error.message, code=error.code, params=params)


def _owners_named(names: set[str], *, teams) -> dict[str, Any]:
    """The users of these names who are members of one of ``teams``, by username, in one query."""
    if not names:
        return {}
    users = get_user_model().objects.filter(username__in=names, memberships__team__in=teams).distinct()
    return {user.username: user for user in users}


def parse_import(table: list[dict[str, str]], *, user) -> ImportPlan:
    """Type-check every row of a file; rows that pass become bulk rows for the service."""
    teams = {team.slug: team for team in selectors.visible_teams(user=user)}
    owners = _owners_named({_unguarded(values.get("owner", "")) for values in table} - {""}, teams=list(teams.values()))
    plan = ImportPlan(rows=[])
    for number, values in enumerate(table, start=2):
        row = ImportRow(number=number, values={name: _unguarded(value) for name, value in values.items()})
        plan.rows.append(row)
        overlong = [name for name, value in values.items() if isinstance(value, OverlongCell)]
        if overlong:
            message = _("A cell may hold at most %(max)s characters.") % {"max": settings.IMPORT_MAX_CELL_CHARS}
            row.errors = [f"{name}: {message}" for name in overlong]
            continue
        form = ImportRowForm(row.values, team_slugs=teams)
        if not form.is_valid():
            row.errors = _messages(form.errors.as_data())
            continue
        fields = {name: form.cleaned_data[name] for name in IMPORT_FIELDS if row.values.get(name, "") != ""}
        if form.cleaned_data["owner"]:
            # An unknown name goes to the service as an unsaved user, refused as an outsider is.
            name = form.cleaned_data["owner"]
            fields["owner"] = owners.get(name) or get_user_model()(username=name)
        plan.bulk_rows.append(
            services.BulkRow(
                team=teams[form.cleaned_data["team"]], external_id=form.cleaned_data["external_id"], fields=fields
            )
        )
        plan.sources.append(row)
    return plan


# Spreadsheet programs run a cell starting with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@")


def guarded(value: str) -> str:
    """Text for a spreadsheet cell that can never run as a formula (an apostrophe in front)."""
    return f"'{value}" if value.startswith(FORMULA_PREFIXES) else value


def _unguarded(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES) else value
