"""Catalogue pages: models with their licences, price history, and the self-hosting break-even."""

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.views.generic import TemplateView

from portfolio import selectors as portfolio_selectors
from pricing import selectors
from pricing.forms import BreakEvenForm


class ModelListView(LoginRequiredMixin, TemplateView):
    template_name = "pricing/model_list.html"

    def get_context_data(self, **kwargs):
        book = selectors.price_book()
        query = self.request.GET.get("q", "")
        models = selectors.search_models(query=query).order_by("provider__name", "display_name")
        return super().get_context_data(rows=[(model, book.price(model.pk)) for model in models], query=query, **kwargs)


class ModelDetailView(LoginRequiredMixin, TemplateView):
    template_name = "pricing/model_detail.html"

    def get_context_data(self, **kwargs):
        model = get_object_or_404(selectors.list_models(), key=self.kwargs["key"])
        prices = list(portfolio_selectors.visible_price_history(user=self.request.user, model=model))
        public = [price for price in reversed(prices) if price.team_id is None]
        return super().get_context_data(
            model=model,
            prices=prices,
            current=selectors.current_price(model=model),
            chart_data={
                "labels": [price.effective_from.isoformat() for price in public],
                "series": [
                    {"label": _("Input per 1M tokens"), "values": [price.input_per_million for price in public]},
                    {"label": _("Output per 1M tokens"), "values": [price.output_per_million for price in public]},
                ],
                "currency": public[-1].currency if public else settings.REPORTING_CURRENCY,
            },
            **kwargs,
        )


class BreakEvenView(LoginRequiredMixin, TemplateView):
    template_name = "pricing/break_even.html"

    def get_context_data(self, **kwargs):
        currencies = selectors.known_currencies(also=[settings.REPORTING_CURRENCY])
        bound = "profile" in self.request.GET
        form = BreakEvenForm(
            self.request.GET if bound else None,
            currencies=currencies,
            initial={"currency": settings.REPORTING_CURRENCY},
        )
        result = None
        if bound and form.is_valid():
            data = form.cleaned_data
            result = portfolio_selectors.break_even(
                profile=data["profile"],
                requests=data["requests_per_month"],
                input_tokens=data["avg_input_tokens"],
                output_tokens=data["avg_output_tokens"],
                cached_ratio=data["cached_input_ratio"],
                currency=data["currency"],
                models=list(selectors.list_models().order_by("display_name")),
            )
        return super().get_context_data(form=form, result=result, **kwargs)
