"""Server-rendered pages: each view checks access, calls a selector or a service, and renders.

Scoping comes from the selectors (another team's record is a 404); portfolio-wide pages
are for portfolio managers (403 for others). Partial templates (``_*.html``) answer htmx
requests; every action also works as a plain form post.
"""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import PurePath

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin, UserPassesTestMixin
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views import View
from django.views.generic import CreateView, ListView, TemplateView, UpdateView
from openpyxl import Workbook

from portfolio import forms, governance, selectors, services
from portfolio.models import ChecklistItem, GovernanceFramework, RecomputeJob, UseCase
from pricing import costing
from pricing import selectors as pricing_selectors

IMPORT_SALT = "portfolio.views.import"


def is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def use_case_url(use_case_id: int, anchor: str = "") -> str:
    return reverse("portfolio:usecase-detail", args=[use_case_id]) + (f"#{anchor}" if anchor else "")


class ManagerRequiredMixin(LoginRequiredMixin, UserPassesTestMixin):
    """Portfolio managers only: other users get 403, anonymous visitors the login page."""

    def test_func(self):
        return selectors.is_portfolio_manager(self.request.user)


@login_required
def home(request):
    if selectors.is_portfolio_manager(request.user):
        return redirect("portfolio:dashboard")
    return redirect("portfolio:usecase-list")


# --- Use cases -------------------------------------------------------------------------------


def filtered_use_cases(request):
    """The list page's filter form, the use cases it selects, and the rates in force that convert them."""
    form = forms.UseCaseFilterForm(request.GET, user=request.user)
    form.is_valid()
    book = pricing_selectors.price_book(model_ids=())  # Exchange rates only: nothing here is priced.
    use_cases = selectors.list_use_cases(
        user=request.user, currency=settings.REPORTING_CURRENCY, book=book, **form.selector_arguments()
    )
    return form, use_cases, book


class UseCaseListView(LoginRequiredMixin, ListView):
    template_name = "portfolio/usecase_list.html"
    context_object_name = "use_cases"
    paginate_by = 25

    def get_queryset(self):
        self.filter_form, use_cases, self.book = filtered_use_cases(self.request)
        return use_cases

    def get_template_names(self):
        # A filter change swaps the results only.
        return ["portfolio/_usecase_results.html"] if is_htmx(self.request) else [self.template_name]

    def get_context_data(self, **kwargs):
        query = self.request.GET.copy()
        query.pop("page", None)
        return super().get_context_data(
            filter_form=self.filter_form,
            export_query=query.urlencode(),
            can_create=selectors.visible_teams(user=self.request.user).exists(),
            reporting_currency=settings.REPORTING_CURRENCY,
            unconverted=selectors.unconverted_use_cases(
                use_cases=self.object_list, currency=settings.REPORTING_CURRENCY, book=self.book
            ),
            **kwargs,
        )


class UseCaseFormMixin(LoginRequiredMixin):
    form_class = forms.UseCaseForm
    template_name = "portfolio/usecase_form.html"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def get_context_data(self, **kwargs):
        return super().get_context_data(can_create=selectors.visible_teams(user=self.request.user).exists(), **kwargs)

    def form_valid(self, form):
        try:
            use_case = form.save_through_service()
        except services.StaleVersion:
            form.add_error(
                None,
                _(
                    "Someone else changed this use case while you were editing it. "
                    "Open it again to see their change, then redo yours."
                ),
            )
            return self.form_invalid(form)
        except governance.GateRefused as refusal:
            form.add_error(None, str(refusal))
            return self.form_invalid(form)
        except ValidationError as error:
            forms.add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, self.success_message % {"title": use_case.title})
        return redirect(use_case_url(use_case.pk))


class UseCaseCreateView(UseCaseFormMixin, CreateView):
    success_message = _("Use case “%(title)s” created. Its figures appear once it is recomputed.")


class UseCaseUpdateView(UseCaseFormMixin, UpdateView):
    success_message = _("Use case “%(title)s” saved.")

    def get_queryset(self):
        return selectors.visible_use_cases(user=self.request.user)


def render_use_case(request, use_case: UseCase, *, status: int = 200, **extra):
    """The use case page; a refused stage move renders it again with the refusal explained."""
    checklist = list(
        selectors.visible_checklist_items(user=request.user)
        .filter(use_case=use_case)
        .order_by("template__category", "template__position", "template__code")
    )
    cost_history = list(selectors.cost_history(use_case=use_case))
    deployments = list(use_case.deployments.all())
    # Why a cost could not be priced, from the latest recompute's breakdown.
    breakdown = cost_history[0].breakdown if cost_history else []
    reasons = {line.get("deployment_id"): line["error"] for line in breakdown if "error" in line}
    for deployment in deployments:
        deployment.cost_unavailable = reasons.get(deployment.pk, "") if deployment.monthly_cost is None else ""
    context = {
        "use_case": use_case,
        "deployments": deployments,
        "pocs": list(use_case.pocs.all()),
        "cost_history": cost_history,
        "frameworks": [
            GovernanceFramework(value).label for value in use_case.frameworks if value in GovernanceFramework.values
        ],
        "checklist": checklist,
        "checklist_blocking": sum(1 for item in checklist if item.required and item.status not in item.CLEARED),
        "stage_form": forms.StageForm(initial={"stage": use_case.stage, "expected_version": use_case.version}),
        "item_statuses": ChecklistItem.Status,
        **extra,
    }
    return render(request, "portfolio/usecase_detail.html", context, status=status)


class UseCaseDetailView(LoginRequiredMixin, View):
    def get(self, request, pk):
        return render_use_case(request, get_object_or_404(selectors.use_case_detail(user=request.user), pk=pk))


class UseCaseFiguresView(LoginRequiredMixin, View):
    """The figures panel alone: polled by htmx while the figures are being recomputed."""

    def get(self, request, pk):
        use_case = get_object_or_404(selectors.visible_use_cases(user=request.user), pk=pk)
        return render(request, "portfolio/_usecase_figures.html", {"use_case": use_case})


class UseCaseMoveView(LoginRequiredMixin, View):
    """The stage control: a move into production or scaled passes the governance gate."""

    def post(self, request, pk):
        use_case = get_object_or_404(selectors.visible_use_cases(user=request.user), pk=pk)
        form = forms.StageForm(request.POST)
        if form.is_valid():
            stage = form.cleaned_data["stage"]
            try:
                services.update_use_case(
                    use_case=use_case, expected_version=form.cleaned_data["expected_version"], stage=stage
                )
            except governance.GateRefused as refusal:
                fresh = get_object_or_404(selectors.use_case_detail(user=request.user), pk=pk)
                return render_use_case(
                    request, fresh, status=409, gate_refusal=refusal, refused_stage=UseCase.Stage(refusal.stage).label
                )
            except services.StaleVersion:
                messages.error(request, _("The use case changed since you opened it; here it is as it is now."))
                return redirect(use_case_url(pk))
            except ValidationError as error:
                forms.add_service_errors(form, error)
            else:
                messages.success(request, _("Moved to %(stage)s.") % {"stage": UseCase.Stage(stage).label})
                return redirect(use_case_url(pk))
        fresh = get_object_or_404(selectors.use_case_detail(user=request.user), pk=pk)
        return render_use_case(request, fresh, status=400, stage_form=form)


# --- Checklist ------------------------------------------------------------------------------


def evidence_file_response(item: ChecklistItem) -> FileResponse:
    """An item's evidence file as an attachment; 404 when it has none or the file is gone.
    Callers have checked that the user may see the item."""
    if not item.evidence_file:
        raise Http404
    try:
        handle = item.evidence_file.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    return FileResponse(handle, as_attachment=True, filename=PurePath(item.evidence_file.name).name)


def _checklist_item(request, pk) -> ChecklistItem:
    return get_object_or_404(selectors.visible_checklist_items(user=request.user), pk=pk)


def _report_errors(request, error: ValidationError) -> None:
    for message in error.messages:
        messages.error(request, message)


class ChecklistEvidenceView(LoginRequiredMixin, View):
    """Record evidence on a checklist item, and the status of a manual item."""

    def post(self, request, pk):
        item = _checklist_item(request, pk)
        form = forms.EvidenceForm(request.POST, request.FILES)
        if not form.is_valid():
            for errors in form.errors.values():
                for message in errors:
                    messages.error(request, message)
            return redirect(use_case_url(item.use_case_id, f"item-{item.pk}"))
        data = form.cleaned_data
        evidence = {"text": data["evidence_text"], "url": data["evidence_url"]}
        if data["evidence_file"] is not None:
            evidence["file"] = data["evidence_file"]
        try:
            governance.record_evidence(item=item, by=request.user, status=data["status"] or None, **evidence)
        except ValidationError as error:
            _report_errors(request, error)
        else:
            messages.success(request, _("Evidence recorded on “%(item)s”.") % {"item": item.template.title})
        return redirect(use_case_url(item.use_case_id, f"item-{item.pk}"))


class ChecklistEvidenceFileView(LoginRequiredMixin, View):
    """An item's evidence file, as an attachment: to its team and managers only, as the item."""

    def get(self, request, pk):
        return evidence_file_response(_checklist_item(request, pk))


class ChecklistWaiveView(ManagerRequiredMixin, View):
    """Waive a checklist item: portfolio managers only, with a written reason."""

    def post(self, request, pk):
        item = _checklist_item(request, pk)
        form = forms.WaiverForm(request.POST)
        if form.is_valid():
            try:
                governance.waive_item(
                    item=item,
                    by=request.user,
                    reason=form.cleaned_data["waiver_reason"],
                    expires_on=form.cleaned_data["waiver_expires_on"],
                )
            except ValidationError as error:
                _report_errors(request, error)
            else:
                messages.success(request, _("“%(item)s” waived.") % {"item": item.template.title})
        else:
            for errors in form.errors.values():
                for message in errors:
                    messages.error(request, message)
        return redirect(use_case_url(item.use_case_id, f"item-{item.pk}"))


# --- PoCs and deployments ---------------------------------------------------------------------


class UseCaseChildMixin(LoginRequiredMixin):
    """Create or edit a record that belongs to a use case the user may see."""

    def get_use_case(self) -> UseCase:
        if not hasattr(self, "_use_case"):
            if "use_case_pk" in self.kwargs:
                self._use_case = get_object_or_404(
                    selectors.visible_use_cases(user=self.request.user), pk=self.kwargs["use_case_pk"]
                )
            else:
                self._use_case = self.object.use_case
        return self._use_case

    def get_context_data(self, **kwargs):
        return super().get_context_data(use_case=self.get_use_case(), **kwargs)

    def form_valid(self, form):
        try:
            self.save(form)
        except ValidationError as error:
            forms.add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, self.success_message)
        return redirect(use_case_url(self.get_use_case().pk, self.anchor))


class DeploymentCreateView(UseCaseChildMixin, CreateView):
    form_class = forms.DeploymentForm
    template_name = "portfolio/deployment_form.html"
    success_message = _("Deployment added; the use case's cost is being recomputed.")
    anchor = "deployments"

    def save(self, form):
        services.create_deployment(use_case=self.get_use_case(), **form.cleaned_data)


class DeploymentUpdateView(UseCaseChildMixin, UpdateView):
    form_class = forms.DeploymentForm
    template_name = "portfolio/deployment_form.html"
    success_message = _("Deployment saved; the use case's cost is being recomputed.")
    anchor = "deployments"

    def get_queryset(self):
        return selectors.visible_deployments(user=self.request.user)

    def save(self, form):
        services.update_deployment(deployment=form.instance, **form.cleaned_data)


class ProofOfConceptCreateView(UseCaseChildMixin, CreateView):
    form_class = forms.ProofOfConceptForm
    template_name = "portfolio/poc_form.html"
    success_message = _("Proof of concept added.")
    anchor = "pocs"

    def save(self, form):
        services.create_poc(use_case=self.get_use_case(), **form.cleaned_data)


class ProofOfConceptUpdateView(UseCaseChildMixin, UpdateView):
    form_class = forms.ProofOfConceptForm
    template_name = "portfolio/poc_form.html"
    success_message = _("Proof of concept saved.")
    anchor = "pocs"

    def get_queryset(self):
        return selectors.visible_pocs(user=self.request.user)

    def save(self, form):
        services.update_poc(poc=form.instance, **form.cleaned_data)


# --- Dashboard -----------------------------------------------------------------------------------


JOB_RUNNING = (RecomputeJob.Status.QUEUED, RecomputeJob.Status.RUNNING)


def dashboard_currency(request) -> tuple[str, list[str]]:
    currencies = pricing_selectors.known_currencies(also=[settings.REPORTING_CURRENCY])
    currency = request.GET.get("currency", "")
    return (currency if currency in currencies else settings.REPORTING_CURRENCY), currencies


def run_what_if(form: forms.WhatIfForm, *, user, currency: str, book) -> dict | None:
    if not form.is_bound or not form.is_valid():
        return None
    data = form.cleaned_data
    return selectors.what_if(
        user=user,
        from_model=data["from_model"],
        to_model=data["to_model"],
        team=data["team"],
        stage=data["stage"] or None,
        currency=currency,
        book=book,
    )


class DashboardView(ManagerRequiredMixin, TemplateView):
    template_name = "portfolio/dashboard.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        currency, currencies = dashboard_currency(self.request)
        book = pricing_selectors.price_book()
        summary = selectors.portfolio_summary(user=user, currency=currency, book=book)
        returns = selectors.portfolio_returns(user=user, currency=currency, book=book)
        trend = selectors.portfolio_trend(currency=currency, book=book)
        jobs = list(selectors.recompute_jobs()[:8])
        whatif_form = forms.WhatIfForm(self.request.GET if "from_model" in self.request.GET else None, user=user)
        stages = [
            {"stage": value, "label": label, **summary["by_stage"].get(value, {"count": 0})}
            for value, label in UseCase.Stage.choices
        ]
        by_model = sorted(summary["by_model"].items(), key=lambda item: item[1]["monthly_cost"], reverse=True)
        requested = self.request.GET.get("job", "")
        current_job = next((job for job in jobs if str(job.pk) == requested or job.status in JOB_RUNNING), None)
        return super().get_context_data(
            currency=currency,
            currencies=currencies,
            summary=summary,
            totals=summary["totals"],
            unconverted=summary["unconverted"],
            compliance=summary.get("compliance"),
            returns=returns,
            stages=stages,
            jobs=jobs,
            current_job=current_job,
            attention=list(selectors.use_cases_needing_attention(user=user)),
            whatif_form=whatif_form,
            whatif=run_what_if(whatif_form, user=user, currency=currency, book=book),
            chart_data={
                "currency": currency,
                "costByModel": {
                    "label": _("Monthly cost (%(currency)s)") % {"currency": currency},
                    "labels": [key for key, _row in by_model],
                    "values": [row["monthly_cost"] for _key, row in by_model],
                },
                "roiByTeam": {
                    "label": _("ROI over the horizon (%)"),
                    "labels": [team["name"] for team in returns["by_team"]],
                    "values": [team["roi_pct"] for team in returns["by_team"]],
                },
                "stageFunnel": {
                    "label": _("Use cases"),
                    "labels": [str(stage["label"]) for stage in stages if stage["stage"] != UseCase.Stage.RETIRED],
                    "values": [stage["count"] for stage in stages if stage["stage"] != UseCase.Stage.RETIRED],
                },
                "trend": {
                    "labels": [point["taken_on"].isoformat() for point in trend],
                    "series": [
                        {"label": _("Monthly cost"), "values": [point["monthly_cost"] for point in trend]},
                        {"label": _("Monthly benefit"), "values": [point["monthly_benefit"] for point in trend]},
                    ],
                },
            },
            **kwargs,
        )


class WhatIfView(ManagerRequiredMixin, View):
    """The what-if result alone, for htmx; a plain request gets the dashboard showing it."""

    def get(self, request):
        if not is_htmx(request):
            return redirect(f"{reverse('portfolio:dashboard')}?{request.GET.urlencode()}#what-if")
        currency, _currencies = dashboard_currency(request)
        form = forms.WhatIfForm(request.GET, user=request.user)
        result = run_what_if(form, user=request.user, currency=currency, book=pricing_selectors.price_book())
        return render(
            request, "portfolio/_whatif_result.html", {"whatif_form": form, "whatif": result, "currency": currency}
        )


class RecomputeStartView(ManagerRequiredMixin, View):
    """Start a recompute of the whole portfolio; its progress bar polls until it finishes."""

    def post(self, request):
        job = services.start_recompute_job(
            reason="Full recompute requested from the dashboard", scope={"all": True}, requested_by=request.user
        )
        job.refresh_from_db()  # Without a broker the job has already run.
        if is_htmx(request):
            return render(request, "portfolio/_recompute_progress.html", {"job": job})
        messages.success(request, _("Recompute of the whole portfolio started."))
        return redirect(f"{reverse('portfolio:dashboard')}?{urlencode({'job': job.pk})}#recompute")


class RecomputeProgressView(ManagerRequiredMixin, View):
    def get(self, request, pk):
        job = get_object_or_404(selectors.recompute_jobs(), pk=pk)
        return render(request, "portfolio/_recompute_progress.html", {"job": job})


# --- Export and import ----------------------------------------------------------------------------


def export_row(use_case: UseCase) -> list:
    row = []
    for name in forms.EXPORT_COLUMNS:
        if name == "team":
            value = use_case.team.slug
        elif name == "owner":
            value = use_case.owner.username if use_case.owner_id else None
        else:
            value = getattr(use_case, name)
        if isinstance(value, str):
            value = forms.guarded(value)
        row.append("" if value is None else value)
    return row


# Each figure in the reporting currency, after the use case's own columns.
CONVERTED_EXPORT_FIGURES = ["monthly_cost", "monthly_benefit", "npv"]


def export_header() -> list[str]:
    return [
        *forms.EXPORT_COLUMNS,
        "reporting_currency",
        *(f"{name}_converted" for name in CONVERTED_EXPORT_FIGURES),
    ]


def converted_columns(use_case: UseCase, *, currency: str, book: pricing_selectors.PriceBook) -> list:
    """The use case's figures in ``currency``; "no rate" where no rate in force converts its currency."""
    rate = selectors.rate_or_none(book, use_case.currency, currency)
    values = []
    for name in CONVERTED_EXPORT_FIGURES:
        value = getattr(use_case, name)
        if rate is None:
            values.append(_("no rate"))
        else:
            values.append("" if value is None else costing.quantize_money(value * rate, currency))
    return [currency, *values]


def unconverted_warning(count: int, *, currency: str, currencies: list[str]) -> str:
    return ngettext(
        "%(count)s use case has no exchange rate in force to %(currency)s (%(currencies)s): its converted "
        "figures read “no rate”, and portfolio totals leave it out.",
        "%(count)s use cases have no exchange rate in force to %(currency)s (%(currencies)s): their converted "
        "figures read “no rate”, and portfolio totals leave them out.",
        count,
    ) % {"count": count, "currency": currency, "currencies": ", ".join(currencies)}


class Echo:
    """A file-like object whose write returns the line, for streaming CSV."""

    def write(self, value):
        return value


class UseCaseExportView(LoginRequiredMixin, View):
    """The use cases the list shows (same filters), as CSV or Excel, one row each."""

    def get(self, request, fmt):
        if fmt not in ("csv", "xlsx"):
            raise Http404
        _form, use_cases, book = filtered_use_cases(request)
        currency = settings.REPORTING_CURRENCY
        filename = f"use-cases-{timezone.localdate().isoformat()}.{fmt}"
        rows = (
            export_row(use_case) + converted_columns(use_case, currency=currency, book=book)
            for use_case in use_cases.iterator(chunk_size=2000)
        )
        if fmt == "csv":
            writer = csv.writer(Echo())
            lines = (writer.writerow(row) for row in _with_header(rows))
            response = StreamingHttpResponse(_with_bom(lines), content_type="text/csv; charset=utf-8")
        else:
            workbook = Workbook(write_only=True)
            sheet = workbook.create_sheet(_("Use cases"))
            for row in _with_header(rows):
                sheet.append(row)
            # The data sheet comes first, so the file imports back; the warning is a sheet of its own.
            unconverted = selectors.unconverted_use_cases(use_cases=use_cases, currency=currency, book=book)
            if unconverted["count"]:
                notes = workbook.create_sheet(_("Warnings"))
                notes.append(
                    [unconverted_warning(unconverted["count"], currency=currency, currencies=unconverted["currencies"])]
                )
            buffer = io.BytesIO()
            workbook.save(buffer)
            response = HttpResponse(
                buffer.getvalue(),
                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


def _with_header(rows):
    yield export_header()
    yield from rows


def _with_bom(lines):
    # Excel reads UTF-8 (Japanese titles) correctly only after a byte-order mark.
    yield "\ufeff"
    yield from lines


class UseCaseImportView(LoginRequiredMixin, View):
    """Step 1: upload a file and preview it. Nothing is saved until the preview is confirmed."""

    template_name = "portfolio/usecase_import.html"

    def get(self, request):
        return render(request, self.template_name, {"form": forms.ImportForm()})

    def post(self, request):
        form = forms.ImportForm(request.POST, request.FILES)
        if not form.is_valid():
            return render(request, self.template_name, {"form": form}, status=400)
        upload = form.cleaned_data["file"]
        content = upload.read()
        try:
            table = forms.read_table(content, filename=upload.name)
        except forms.ImportFileError as error:
            form.add_error("file", str(error))
            return render(request, self.template_name, {"form": form}, status=400)
        plan = preview(forms.parse_import(table, user=request.user))
        token = None
        if not plan.has_errors:
            # Kept for the confirmation; the signed token names it and who uploaded it.
            name = default_storage.save(
                f"{services.IMPORT_PREVIEWS}/{uuid.uuid4().hex}{PurePath(upload.name).suffix.lower()}",
                ContentFile(content),
            )
            token = signing.dumps({"name": name, "user": request.user.pk}, salt=IMPORT_SALT)
        return render(
            request,
            self.template_name,
            {
                "form": forms.ImportForm(),
                "plan": plan,
                "filename": upload.name,
                "confirm_form": forms.ImportConfirmForm(initial={"token": token}) if token else None,
            },
        )


def preview(plan: forms.ImportPlan) -> forms.ImportPlan:
    if plan.bulk_rows:
        try:
            plan.record_actions(services.bulk_upsert_use_cases(rows=plan.bulk_rows, dry_run=True))
        except ValidationError as error:
            plan.record_errors(error)
    return plan


class UseCaseImportConfirmView(LoginRequiredMixin, View):
    """Step 2: save the previewed file, checked again, all rows or none."""

    def post(self, request):
        form = forms.ImportConfirmForm(request.POST)
        try:
            if not form.is_valid():
                raise signing.BadSignature
            data = signing.loads(
                form.cleaned_data["token"], salt=IMPORT_SALT, max_age=settings.IMPORT_PREVIEW_MAX_AGE_SECONDS
            )
            if data["user"] != request.user.pk or not data["name"].startswith(f"{services.IMPORT_PREVIEWS}/"):
                raise signing.BadSignature
            with default_storage.open(data["name"], "rb") as stored:
                content = stored.read()
        except (signing.BadSignature, FileNotFoundError, KeyError):
            messages.error(request, _("This preview has expired or was already imported. Upload the file again."))
            return redirect("portfolio:usecase-import")
        name = data["name"]
        try:
            table = forms.read_table(content, filename=name)
        except forms.ImportFileError as error:
            # The limits may have been lowered since the preview: the file is refused as on upload.
            default_storage.delete(name)
            messages.error(request, str(error))
            return redirect("portfolio:usecase-import")
        plan = preview(forms.parse_import(table, user=request.user))
        if not plan.has_errors:
            try:
                result = services.bulk_upsert_use_cases(rows=plan.bulk_rows)
            except ValidationError as error:
                plan.record_errors(error)
            else:
                default_storage.delete(name)
                messages.success(
                    request,
                    _("Imported: %(created)s use cases created, %(updated)s updated.")
                    % {"created": len(result.created), "updated": len(result.updated)},
                )
                return redirect("portfolio:usecase-list")
        default_storage.delete(name)
        return render(
            request,
            "portfolio/usecase_import.html",
            {"form": forms.ImportForm(), "plan": plan, "filename": "", "confirm_form": None},
            status=400,
        )
