"""Writes to the price catalogue. Prices are added, never edited in place."""
from __future__ import annotations

import datetime
from decimal import Decimal

from django.db import transaction

from portfolio import services as portfolio_services
from portfolio.models import Team
from pricing.models import ExchangeRate, LanguageModel, Price


@transaction.atomic
def add_price(
    *,
    model: LanguageModel,
    input_per_million: Decimal,
    output_per_million: Decimal,
    effective_from: datetime.date,
    cached_input_per_million: Decimal | None = None,
    currency: str = "USD",
    source: str = Price.Source.MANUAL,
    source_url: str = "",
    team: Team | None = None,
) -> Price:
    """Add a price that supersedes the one in force from ``effective_from``, and reprice its users."""
    price = Price(
        model=model,
        team=team,
        input_per_million=input_per_million,
        output_per_million=output_per_million,
        cached_input_per_million=cached_input_per_million,
        currency=currency,
        effective_from=effective_from,
        source=source,
        source_url=source_url,
    )
    price.full_clean()
    price.save()
    portfolio_services.flag_use_cases_of_models(model_ids=[model.pk])
    return price


@transaction.atomic
def add_exchange_rate(*, base: str, quote: str, rate: Decimal, as_of: datetime.date, source: str = "") -> ExchangeRate:
    exchange_rate = ExchangeRate(base=base, quote=quote, rate=rate, as_of=as_of, source=source)
    exchange_rate.full_clean()
    exchange_rate.save()
    portfolio_services.flag_use_cases_in_currencies(currencies=[base, quote])
    return exchange_rate
