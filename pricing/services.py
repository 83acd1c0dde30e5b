"""Writes to the price catalogue. Prices are added, never edited in place."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from simple_history.utils import bulk_create_with_history

from portfolio import events
from portfolio import services as portfolio_services
from portfolio.models import Team, WebhookEvent
from pricing.currencies import normalise_currency
from pricing.models import (
    ExchangeRate,
    GpuRate,
    LanguageModel,
    Licence,
    Price,
    Provider,
    SelfHostingProfile,
    currency_validator,
)


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
    scope = f" for {team.slug}" if team is not None else ""
    portfolio_services.flag_use_cases_of_models(
        model_ids=[model.pk], reason=f"New price of {model.key}{scope} from {effective_from}"
    )
    events.record(WebhookEvent.PRICE_CHANGED, price, None)
    return price


@transaction.atomic
def add_gpu_rate(
    *, gpu_type: str, hourly_cost: Decimal, effective_from: datetime.date, currency: str = "USD", source: str = ""
) -> GpuRate:
    """Add a GPU-hour price from its date, and reprice self-hosted deployments."""
    rate = GpuRate(
        gpu_type=gpu_type, hourly_cost=hourly_cost, currency=currency, effective_from=effective_from, source=source
    )
    rate.full_clean()
    rate.save()
    portfolio_services.flag_self_hosted_use_cases(reason=f"New {gpu_type} GPU rate from {effective_from}")
    return rate


@transaction.atomic
def save_self_hosting_profile(*, profile: SelfHostingProfile) -> SelfHostingProfile:
    profile.full_clean()
    profile.save()
    portfolio_services.flag_self_hosted_use_cases(reason=f"Self-hosting profile {profile.name} changed")
    return profile


@transaction.atomic
def save_licence(*, licence: Licence) -> Licence:
    """Save a licence; its terms move the licensing checks of every use case on its models."""
    licence.full_clean()
    licence.save()
    model_ids = list(licence.models.values_list("pk", flat=True))
    if model_ids:
        portfolio_services.flag_use_cases_of_models(
            model_ids=model_ids, reason=f"Licence {licence.key} changed", governance=True
        )
    return licence


@transaction.atomic
def save_language_model(*, model: LanguageModel) -> LanguageModel:
    """Save a catalogue model; a new licence or open-weights flag moves its users' checks and costs."""
    model.full_clean()
    model.save()
    portfolio_services.flag_use_cases_of_models(
        model_ids=[model.pk], reason=f"Model {model.key} changed", governance=True
    )
    return model


@transaction.atomic
def add_exchange_rate(*, base: str, quote: str, rate: Decimal, as_of: datetime.date, source: str = "") -> ExchangeRate:
    exchange_rate = ExchangeRate(base=base, quote=quote, rate=rate, as_of=as_of, source=source)
    exchange_rate.full_clean()
    exchange_rate.save()
    portfolio_services.flag_use_cases_in_currencies(
        currencies=[base, quote], reason=f"New {base}/{quote} rate from {as_of}"
    )
    return exchange_rate


# --- LiteLLM price files ---------------------------------------------------------------

ONE_MILLION = Decimal(1_000_000)
# Price stores per-million prices with max_digits=12 and decimal_places=6.
PER_MILLION_QUANTUM = Decimal("0.000001")
LARGEST_PER_MILLION = Decimal("999999.999999")
LITELLM_SPEC_KEY = "sample_spec"
DIFFERENT_PRICE_ON_DATE = "a different price already exists on this date; prices are never edited"
# Keeps every IN (...) well under SQLite's limit on bound parameters.
LOOKUP_CHUNK_SIZE = 500
LARGEST_CONTEXT_WINDOW = 2_147_483_647  # PositiveIntegerField's bound on every backend.
validate_source_url = URLValidator(schemes=["http", "https"])


@dataclass
class ImportReport:
    created: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    models_created: int = 0


class _Skip(Exception):
    """An entry that cannot be imported; the message is the reason reported for it."""


@dataclass(frozen=True)
class _Entry:
    name: str
    model_key: str
    provider_key: str
    context_window: int | None
    licence_id: int | None
    price: Price  # Validated and unsaved; the model is assigned once it exists.


def _chunks(items: Iterable, size: int = LOOKUP_CHUNK_SIZE) -> Iterator[list]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _derived_model_key(name: str, provider_key: str) -> str:
    first, slash, rest = name.partition("/")
    if slash and first.lower() == provider_key:
        return f"{provider_key}/{rest}"
    return f"{provider_key}/{name}"


def _per_million(entry: dict, name: str) -> Decimal | None:
    value = entry.get(name)
    if value is None:
        return None
    # bool is an int to Python, but never a price.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Skip(f"{name} is not a number: {value!r}")
    # str() gives the shortest decimal that reads back as the same float, so 2.5e-06 is exactly 0.0000025.
    per_token = Decimal(str(value))
    if not per_token.is_finite():
        raise _Skip(f"{name} is not a finite number")
    if per_token < 0:
        raise _Skip(f"{name} is negative")
    per_million = abs(per_token) * ONE_MILLION  # abs() turns -0.0 into 0.
    if per_million > LARGEST_PER_MILLION:
        raise _Skip(f"{name} is too large: at most {LARGEST_PER_MILLION} per 1M tokens fits the catalogue")
    # Float noise such as 2.9999900000000002e-06 carries digits beyond the catalogue's 6 decimals.
    return per_million.quantize(PER_MILLION_QUANTUM, rounding=ROUND_HALF_UP)


def _context_window(entry: dict) -> int | None:
    for name in ("max_input_tokens", "max_tokens"):
        value = entry.get(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= LARGEST_CONTEXT_WINDOW:
            return value
    return None


def _effective_from(entry: dict, default: datetime.date) -> datetime.date:
    value = entry.get("effective_from")
    if value is None:
        return default
    try:
        if not isinstance(value, str):
            raise ValueError
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise _Skip(f"effective_from {value!r} is not an ISO date (YYYY-MM-DD)") from None


def _currency(entry: dict, default: str) -> str:
    value = entry.get("currency")
    if value is None:
        return default
    try:
        if not isinstance(value, str):
            raise ValidationError("not a string")
        currency_validator(normalise_currency(value))
    except ValidationError:
        raise _Skip(f"currency {value!r} is not a three-letter ISO 4217 code such as USD") from None
    return normalise_currency(value)


def _source_url(entry: dict, default: str) -> str:
    # LiteLLM's own "source" names the pricing page; keep it as provenance when it is a usable URL.
    if default:
        return default
    value = entry.get("source")
    if not isinstance(value, str) or len(value) > Price._meta.get_field("source_url").max_length:
        return ""
    try:
        validate_source_url(value)
    except ValidationError:
        return ""
    return value


def _lookup(entry: dict, name: str, known: dict[str, int], what: str) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or value not in known:
        raise _Skip(f"unknown {what} {value!r}")
    return known[value]


def _parse_entry(
    name: str,
    entry: Any,
    *,
    effective_from: datetime.date,
    currency: str,
    source_url: str,
    licences: dict[str, int],
    teams: dict[str, int],
) -> _Entry:
    if name == LITELLM_SPEC_KEY:
        raise _Skip("LiteLLM's description of the format, not a model")
    if not isinstance(entry, dict):
        raise _Skip("entry is not an object")
    if entry.get("alias_of") is not None:
        raise _Skip(f"alias of {entry['alias_of']!r}, not a priced model")
    input_price = _per_million(entry, "input_cost_per_token")
    output_price = _per_million(entry, "output_cost_per_token")
    cached_price = _per_million(entry, "cache_read_input_token_cost")
    if input_price is None and output_price is None:
        raise _Skip("no input_cost_per_token or output_cost_per_token: not priced per token")
    if input_price is None:
        raise _Skip("no input_cost_per_token")
    if output_price is None:
        raise _Skip("no output_cost_per_token")

    explicit_key = entry.get("model_key")
    if explicit_key is not None and not isinstance(explicit_key, str):
        raise _Skip(f"model_key is not a string: {explicit_key!r}")
    litellm_provider = entry.get("litellm_provider")
    if isinstance(litellm_provider, str) and litellm_provider.strip():
        provider_key = slugify(litellm_provider)
    elif explicit_key is not None:
        provider_key = explicit_key.partition("/")[0]
    else:
        raise _Skip("no litellm_provider")
    try:
        Provider._meta.get_field("key").clean(provider_key, None)
    except ValidationError:
        raise _Skip(f"litellm_provider {litellm_provider!r} does not make a valid provider key") from None
    model_key = explicit_key if explicit_key is not None else _derived_model_key(name, provider_key)
    try:
        LanguageModel._meta.get_field("key").clean(model_key, None)
    except ValidationError:
        raise _Skip(
            f"{model_key!r} is not a valid model key (provider/model with a single slash, at most 128 characters)"
        ) from None

    licence_id = _lookup(entry, "licence", licences, "licence")
    team_id = _lookup(entry, "team", teams, "team")
    price = Price(
        team_id=team_id,
        input_per_million=input_price,
        output_per_million=output_price,
        cached_input_per_million=cached_price,
        currency=_currency(entry, currency),
        effective_from=_effective_from(entry, effective_from),
        source=Price.Source.IMPORT if team_id is None else Price.Source.CONTRACT,
        source_url=_source_url(entry, source_url),
    )
    try:
        # The model may not exist yet, and uniqueness is checked against the prices in force below.
        price.full_clean(exclude=["model", "team"], validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        raise _Skip("; ".join(error.messages)) from None
    return _Entry(
        name=name,
        model_key=model_key,
        provider_key=provider_key,
        context_window=_context_window(entry),
        licence_id=licence_id,
        price=price,
    )


def _models_by_key(keys: Iterable[str]) -> dict[str, tuple[int, int | None]]:
    """Map each existing model key to its id and licence id."""
    found: dict[str, tuple[int, int | None]] = {}
    for chunk in _chunks(keys):
        for key, pk, licence_id in LanguageModel.objects.filter(key__in=chunk).values_list("key", "pk", "licence_id"):
            found[key] = (pk, licence_id)
    return found


def _prices_by_scope(model_ids: Iterable[int]) -> dict[tuple[int, int | None], list]:
    """Every price of these models per (model, team), newest first."""
    prices: dict[tuple[int, int | None], list] = {}
    for chunk in _chunks(model_ids):
        rows = (
            Price.objects.filter(model_id__in=chunk)
            .order_by("-effective_from")
            .values_list(
                "model_id",
                "team_id",
                "effective_from",
                "input_per_million",
                "output_per_million",
                "cached_input_per_million",
                "currency",
                named=True,
            )
        )
        for row in rows:
            prices.setdefault((row.model_id, row.team_id), []).append(row)
    return prices


def _is_same_price(row, price: Price) -> bool:
    return (
        row.input_per_million == price.input_per_million
        and row.output_per_million == price.output_per_million
        and row.cached_input_per_million == price.cached_input_per_million
        and row.currency == price.currency
    )


def _create_models(entries: list[_Entry]) -> int:
    """Create the providers and models these entries name, in bulk; the first entry per model describes it."""
    new: dict[str, _Entry] = {}
    for entry in entries:
        new.setdefault(entry.model_key, entry)
    if not new:
        return 0
    provider_keys = {entry.provider_key for entry in new.values()}
    providers = dict(Provider.objects.filter(key__in=provider_keys).values_list("key", "pk"))
    Provider.objects.bulk_create([Provider(key=key, name=key) for key in sorted(provider_keys - providers.keys())])
    providers = dict(Provider.objects.filter(key__in=provider_keys).values_list("key", "pk"))
    LanguageModel.objects.bulk_create(
        [
            LanguageModel(
                key=entry.model_key,
                provider_id=providers[entry.provider_key],
                display_name=entry.name[: LanguageModel._meta.get_field("display_name").max_length],
                licence_id=entry.licence_id,
                context_window=entry.context_window,
            )
            for entry in new.values()
        ],
        batch_size=LOOKUP_CHUNK_SIZE,
    )
    return len(new)


@transaction.atomic
def import_prices(
    *, entries: dict, effective_from: datetime.date, currency: str = "USD", source_url: str = ""
) -> ImportReport:
    """Import a LiteLLM price map: add new prices, count identical ones, skip the rest with a reason.

    Per-entry extensions ``effective_from``, ``currency``, ``licence``, ``team`` and
    ``model_key`` override the file-level defaults given here.
    """
    currency_validator(currency)
    if source_url:
        validate_source_url(source_url)
    report = ImportReport()
    licences = dict(Licence.objects.values_list("key", "pk"))
    team_slugs = {
        entry["team"] for entry in entries.values() if isinstance(entry, dict) and isinstance(entry.get("team"), str)
    }
    teams = dict(Team.objects.filter(slug__in=team_slugs).values_list("slug", "pk"))

    parsed: dict[tuple[str, int | None], _Entry] = {}
    for name, raw in entries.items():
        try:
            entry = _parse_entry(
                name,
                raw,
                effective_from=effective_from,
                currency=currency,
                source_url=source_url,
                licences=licences,
                teams=teams,
            )
        except _Skip as skip:
            report.skipped.append((name, str(skip)))
            continue
        scope = (entry.model_key, entry.price.team_id)
        first = parsed.setdefault(scope, entry)
        if first is not entry:
            report.skipped.append((name, f"same model as {first.name!r} ({entry.model_key}); the first entry wins"))

    existing = _models_by_key(model_key for model_key, _ in parsed)
    prices_in_db = _prices_by_scope(pk for pk, _ in existing.values())
    to_create: list[_Entry] = []
    licence_changes: dict[int, int] = {}
    for entry in parsed.values():
        if entry.model_key not in existing:
            to_create.append(entry)
            continue
        model_id, licence_id = existing[entry.model_key]
        rows = prices_in_db.get((model_id, entry.price.team_id), [])
        in_force = next((row for row in rows if row.effective_from <= entry.price.effective_from), None)
        if in_force is not None and _is_same_price(in_force, entry.price):
            report.unchanged += 1
        elif in_force is not None and in_force.effective_from == entry.price.effective_from:
            report.skipped.append((entry.name, DIFFERENT_PRICE_ON_DATE))
            continue
        else:
            to_create.append(entry)
        if entry.licence_id is not None and entry.licence_id != licence_id:
            licence_changes.setdefault(model_id, entry.licence_id)

    report.models_created = _create_models([entry for entry in to_create if entry.model_key not in existing])
    model_ids = {key: pk for key, (pk, _) in _models_by_key({entry.model_key for entry in to_create}).items()}
    prices = []
    for entry in to_create:
        entry.price.model_id = model_ids[entry.model_key]
        prices.append(entry.price)
    bulk_create_with_history(prices, Price, batch_size=LOOKUP_CHUNK_SIZE)
    report.created = len(prices)
    events.record_many(WebhookEvent.PRICE_CHANGED, [(price, None) for price in prices])

    models_per_licence: dict[int, list[int]] = {}
    for model_id, licence_id in licence_changes.items():
        models_per_licence.setdefault(licence_id, []).append(model_id)
    for licence_id, ids in models_per_licence.items():
        for chunk in _chunks(ids):
            LanguageModel.objects.filter(pk__in=chunk).update(licence_id=licence_id, updated_at=timezone.now())

    # A licence change reprices nothing but moves the licensing checks, so its users are flagged too.
    affected = {price.model_id for price in prices} | licence_changes.keys()
    if affected:
        portfolio_services.flag_use_cases_of_models(model_ids=sorted(affected), reason="Price file imported")
    return report


def _per_token(per_million: Decimal) -> float:
    # LiteLLM files carry JSON numbers; a value of at most 12 significant digits survives the float exactly.
    return float(per_million / ONE_MILLION)


def export_prices(*, on: datetime.date | None = None) -> dict:
    """The public prices in force on ``on`` as a LiteLLM price map, with our extensions."""
    on = on or timezone.localdate()
    prices = (
        Price.objects.filter(team__isnull=True, effective_from__lte=on)
        .select_related("model__provider", "model__licence")
        .order_by("model__key", "-effective_from")
    )
    exported: dict[str, dict[str, Any]] = {}
    for price in prices:
        model = price.model
        if model.key in exported:  # Newest first: the first row per model is the one in force.
            continue
        entry: dict[str, Any] = {
            "input_cost_per_token": _per_token(price.input_per_million),
            "output_cost_per_token": _per_token(price.output_per_million),
        }
        if price.cached_input_per_million is not None:
            entry["cache_read_input_token_cost"] = _per_token(price.cached_input_per_million)
        entry["litellm_provider"] = model.provider.key
        if model.context_window is not None:
            entry["max_input_tokens"] = model.context_window
        entry["mode"] = "chat"
        entry["effective_from"] = price.effective_from.isoformat()
        entry["currency"] = price.currency
        if model.licence is not None:
            entry["licence"] = model.licence.key
        if price.source_url:
            entry["source"] = price.source_url
        if _derived_model_key(model.key, slugify(model.provider.key)) != model.key:
            entry["model_key"] = model.key
        exported[model.key] = entry
    return exported
