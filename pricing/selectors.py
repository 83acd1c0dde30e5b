"""Reads of the price catalogue: what is in force on a date."""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q, QuerySet
from django.utils import timezone

from pricing.costing import ONE, TokenPrice
from pricing.models import ExchangeRate, GpuRate, LanguageModel, ModelAlias, Price, SelfHostingProfile

# Keeps every IN (...) well under SQLite's limit on bound parameters.
LOOKUP_CHUNK_SIZE = 500
CLOSE_MATCHES = 5
# Names holding the first characters of the unknown name's last segment are compared first;
# the whole catalogue only when none of them is close.
SUGGESTION_PREFIX_LENGTH = 3


class MissingRate(LookupError):
    """No exchange rate in force converts between two currencies."""


class UnknownModel(LookupError):
    """No catalogue model has this name as its key or an alias."""

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = suggestions
        message = f"Unknown model {name!r}."
        if suggestions:
            message += " Closest names: " + ", ".join(suggestions) + "."
        super().__init__(message)


@dataclass(frozen=True)
class ModelRef:
    id: int
    key: str
    licence_id: int | None


@dataclass(frozen=True)
class PriceInForce:
    id: int
    token_price: TokenPrice
    currency: str
    effective_from: datetime.date
    is_contract: bool


@dataclass(frozen=True)
class GpuRateInForce:
    id: int
    hourly_cost: Decimal
    currency: str


@dataclass(frozen=True)
class RateInForce:
    """``rate`` converts one unit of the source currency; ``id`` is ``None`` for identity."""

    id: int | None
    rate: Decimal
    as_of: datetime.date | None = None


@dataclass
class PriceBook:
    """Every price, GPU rate and exchange rate in force on one date, loaded once.

    A recompute of any number of use cases reads from one book, so it runs a fixed
    number of catalogue queries whatever its size.
    """

    on: datetime.date
    prices: dict[tuple[int, int | None], PriceInForce] = field(default_factory=dict)
    gpu_rates: dict[str, GpuRateInForce] = field(default_factory=dict)
    exchange_rates: dict[tuple[str, str], RateInForce] = field(default_factory=dict)

    def price(self, model_id: int, team_id: int | None = None) -> PriceInForce | None:
        """The team's contract price where one is in force, else the public price."""
        if team_id is not None:
            contract = self.prices.get((model_id, team_id))
            if contract is not None:
                return contract
        return self.prices.get((model_id, None))

    def gpu_rate(self, gpu_type: str) -> GpuRateInForce | None:
        return self.gpu_rates.get(gpu_type)

    def rate(self, source: str, target: str) -> RateInForce:
        if source == target:
            return RateInForce(id=None, rate=ONE)
        direct = self.exchange_rates.get((source, target))
        inverse = self.exchange_rates.get((target, source))
        # A pair may be recorded either way round: the newer row is the rate in force.
        if inverse is not None and (direct is None or inverse.as_of > direct.as_of):
            return RateInForce(id=inverse.id, rate=ONE / inverse.rate, as_of=inverse.as_of)
        if direct is not None:
            return direct
        raise MissingRate(f"No exchange rate from {source} to {target} in force on {self.on}.")


def _latest_per_key(rows: Iterable, key) -> dict:
    # Rows arrive newest first within each key: the first seen is the one in force.
    latest: dict = {}
    for row in rows:
        latest.setdefault(key(row), row)
    return latest


def price_book(*, on: datetime.date | None = None, model_ids: Iterable[int] | None = None) -> PriceBook:
    on = on or timezone.localdate()
    prices = Price.objects.filter(effective_from__lte=on)
    if model_ids is not None:
        prices = prices.filter(model_id__in=set(model_ids))
    price_rows = _latest_per_key(
        prices.order_by("model_id", "team_id", "-effective_from").values_list(
            "id",
            "model_id",
            "team_id",
            "input_per_million",
            "output_per_million",
            "cached_input_per_million",
            "currency",
            "effective_from",
        ),
        key=lambda row: (row[1], row[2]),
    )
    gpu_rows = _latest_per_key(
        GpuRate.objects.filter(effective_from__lte=on)
        .order_by("gpu_type", "-effective_from")
        .values_list("id", "gpu_type", "hourly_cost", "currency"),
        key=lambda row: row[1],
    )
    rate_rows = _latest_per_key(
        ExchangeRate.objects.filter(as_of__lte=on)
        .order_by("base", "quote", "-as_of")
        .values_list("id", "base", "quote", "rate", "as_of"),
        key=lambda row: (row[1], row[2]),
    )
    return PriceBook(
        on=on,
        prices={
            key: PriceInForce(
                id=row[0],
                token_price=TokenPrice(input=row[3], output=row[4], cached_input=row[5]),
                currency=row[6],
                effective_from=row[7],
                is_contract=row[2] is not None,
            )
            for key, row in price_rows.items()
        },
        gpu_rates={
            key: GpuRateInForce(id=row[0], hourly_cost=row[2], currency=row[3]) for key, row in gpu_rows.items()
        },
        exchange_rates={key: RateInForce(id=row[0], rate=row[3], as_of=row[4]) for key, row in rate_rows.items()},
    )


def current_price(*, model: LanguageModel, team_id: int | None = None, on: datetime.date | None = None) -> Price | None:
    on = on or timezone.localdate()
    in_force = Price.objects.filter(model=model, effective_from__lte=on).order_by("-effective_from")
    if team_id is not None:
        contract = in_force.filter(team_id=team_id).first()
        if contract is not None:
            return contract
    return in_force.filter(team__isnull=True).first()


def price_history(*, model: LanguageModel) -> QuerySet[Price]:
    return model.prices.select_related("team").order_by("-effective_from", "team__name")


def list_models() -> QuerySet[LanguageModel]:
    return LanguageModel.objects.select_related("provider", "licence").prefetch_related("aliases")


def search_models(*, query: str = "") -> QuerySet[LanguageModel]:
    """Models whose key, display name or any alias contains ``query``."""
    models = list_models()
    query = query.strip()
    if not query:
        return models
    matching = Q(key__icontains=query) | Q(display_name__icontains=query)
    matching |= Q(pk__in=ModelAlias.objects.filter(name__icontains=query).values("model_id"))
    return models.filter(matching)


def find_models(*, names: Iterable[str]) -> dict[str, ModelRef]:
    """Each of ``names`` that is a model's key or, failing that, an alias: two queries per 500 names."""
    found: dict[str, ModelRef] = {}
    by_alias: dict[str, ModelRef] = {}
    names = sorted(set(names))
    for start in range(0, len(names), LOOKUP_CHUNK_SIZE):
        chunk = names[start : start + LOOKUP_CHUNK_SIZE]
        for pk, key, licence_id in LanguageModel.objects.filter(key__in=chunk).values_list("pk", "key", "licence_id"):
            found[key] = ModelRef(id=pk, key=key, licence_id=licence_id)
        aliases = ModelAlias.objects.filter(name__in=chunk).values_list(
            "name", "model_id", "model__key", "model__licence_id"
        )
        for name, pk, key, licence_id in aliases:
            by_alias[name] = ModelRef(id=pk, key=key, licence_id=licence_id)
    return {**by_alias, **found}


def resolve_model(name: str, provider: str | None = None) -> LanguageModel:
    """The model named ``name``: its exact key, else an exact alias, else ``provider/name`` as key or alias.

    Raises ``UnknownModel`` with the closest known names when nothing matches.
    """
    qualified = f"{provider}/{name}" if provider else None
    names = [name] if qualified is None else [name, qualified]
    candidates = list(
        list_models().filter(Q(key__in=names) | Q(pk__in=ModelAlias.objects.filter(name__in=names).values("model_id")))
    )
    for wanted in names:
        for model in candidates:
            if model.key == wanted:
                return model
        for model in candidates:
            if any(alias.name == wanted for alias in model.aliases.all()):
                return model
    raise UnknownModel(name, close_model_names(name, provider=provider))


def close_model_names(name: str, *, provider: str | None = None) -> list[str]:
    """Keys and aliases that look like ``name``, closest first: at most two queries."""
    segment = name.rpartition("/")[2]
    start = segment[:SUGGESTION_PREFIX_LENGTH]
    narrowed = Q(key__icontains=start)
    aliases = Q(name__icontains=start)
    if provider:
        narrowed |= Q(provider__key=provider)
        aliases |= Q(model__provider__key=provider)
    matches = _close_matches(name, narrowed, aliases)
    if not matches:
        matches = _close_matches(name, Q(), Q())
    return matches


def _close_matches(name: str, models: Q, aliases: Q) -> list[str]:
    keys = LanguageModel.objects.filter(models).order_by().values_list("key", flat=True)
    alias_names = ModelAlias.objects.filter(aliases).order_by().values_list("name", flat=True)
    candidates = set(keys.union(alias_names))
    return difflib.get_close_matches(name, candidates, n=CLOSE_MATCHES, cutoff=0.6)


def list_exchange_rates() -> QuerySet[ExchangeRate]:
    return ExchangeRate.objects.order_by("base", "quote", "-as_of", "pk")


def list_self_hosting_profiles() -> QuerySet[SelfHostingProfile]:
    return SelfHostingProfile.objects.order_by("name")


def known_currencies(*, also: Iterable[str] = ()) -> list[str]:
    """Currencies the catalogue can convert between: those of its exchange rates, plus ``also``."""
    pairs = ExchangeRate.objects.order_by().values_list("base", "quote").distinct()
    return sorted({*also, *(code for pair in pairs for code in pair)})
