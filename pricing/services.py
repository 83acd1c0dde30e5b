"""Writes to the price catalogue. Prices are added, never edited in place."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from portfolio import events
from portfolio import services as portfolio_services
from portfolio.models import Team, WebhookEvent
from pricing import selectors
from pricing.currencies import normalise_currency
from pricing.models import (
    ExchangeRate,
    GpuRate,
    LanguageModel,
    Licence,
    ModelAlias,
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
SAMPLE_SPEC = "sample_spec: LiteLLM's description of the format, not a model"
DIFFERENT_PRICE_ON_DATE = "a different price already exists on this date; prices are never edited"
SAME_MODEL_OTHER_PRICE = "an earlier entry names the same model with a different price"
NO_PRICE = "no price at all"
NO_INPUT_PRICE = "output price per token only, no input price per token"
NO_OUTPUT_PRICE = "input price per token only, no output price per token"
PRICED_OTHERWISE = "priced per session, credit or other unit, not per token"
# Checked in order: an image model with a per-token input price is still priced per image.
PRICED_PER_OTHER_UNIT = [
    (("per_image", "per_pixel"), "priced per image, not per token"),
    (("per_second",), "priced per second of audio or video, not per token"),
    (("per_character",), "priced per character, not per token"),
    (("per_query",), "priced per query, not per token"),
    (("per_page",), "priced per page, not per token"),
]
# Keeps every IN (...) well under SQLite's limit on bound parameters.
LOOKUP_CHUNK_SIZE = 500
LARGEST_CONTEXT_WINDOW = 2_147_483_647  # PositiveIntegerField's bound on every backend.
validate_source_url = URLValidator(schemes=["http", "https"])


@dataclass
class ImportReport:
    """What an import did: each entry is created, superseded, unchanged, aliased or skipped."""

    created: int = 0
    superseded: int = 0
    unchanged: int = 0
    aliased: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    models_created: int = 0

    def skip(self, name: str, skip: _Skip) -> None:
        self.skipped.append((name, str(skip)))
        self.skip_reasons[skip.reason] += 1


class _Alias(Exception):
    """An entry that only names another one (LiteLLM's ``alias_of``)."""

    def __init__(self, target: str):
        self.target = target
        super().__init__(target)


class _Skip(Exception):
    """An entry that cannot be imported: ``reason`` names its kind, the message adds this entry's details."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class _Entry:
    name: str
    model_key: str
    provider_key: str
    explicit_key: bool
    context_window: int | None
    licence_id: int | None
    price: Price  # Validated and unsaved; the model is assigned once it exists.


def _chunks(items: Iterable, size: int = LOOKUP_CHUNK_SIZE) -> Iterator[list]:
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _derived_model_key(name: str, provider_key: str) -> str:
    """LiteLLM's name as written, prefixed with its provider unless it already starts with it."""
    if name.startswith(f"{provider_key}/"):
        return name
    return f"{provider_key}/{name}"


def _not_per_token_reason(entry: dict, *, has_input: bool, has_output: bool) -> str:
    priced = [name for name, value in entry.items() if "cost" in name and value is not None]
    for markers, reason in PRICED_PER_OTHER_UNIT:
        if any(marker in name for name in priced for marker in markers):
            return reason
    if has_input:
        return NO_OUTPUT_PRICE
    if has_output:
        return NO_INPUT_PRICE
    return NO_PRICE if not priced else PRICED_OTHERWISE


def _per_million(entry: dict, name: str) -> Decimal | None:
    value = entry.get(name)
    if value is None:
        return None
    # bool is an int to Python, but never a price.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Skip(f"{name} is not a number", repr(value))
    # str() gives the shortest decimal that reads back as the same float, so 2.5e-06 is exactly 0.0000025.
    per_token = Decimal(str(value))
    if not per_token.is_finite():
        raise _Skip(f"{name} is not a finite number")
    if per_token < 0:
        raise _Skip(f"{name} is negative")
    per_million = abs(per_token) * ONE_MILLION  # abs() turns -0.0 into 0.
    if per_million > LARGEST_PER_MILLION:
        raise _Skip(f"{name} is too large", f"at most {LARGEST_PER_MILLION} per 1M tokens fits the catalogue")
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
        raise _Skip("effective_from is not an ISO date (YYYY-MM-DD)", repr(value)) from None


def _currency(entry: dict, default: str) -> str:
    value = entry.get("currency")
    if value is None:
        return default
    try:
        if not isinstance(value, str):
            raise ValidationError("not a string")
        currency_validator(normalise_currency(value))
    except ValidationError:
        raise _Skip("currency is not a three-letter ISO 4217 code such as USD", repr(value)) from None
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
        raise _Skip(f"unknown {what}", repr(value))
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
        raise _Skip(SAMPLE_SPEC)
    if not isinstance(entry, dict):
        raise _Skip("entry is not an object")
    longest_name = ModelAlias._meta.get_field("name").max_length
    if len(name) > longest_name:
        raise _Skip("name too long", f"at most {longest_name} characters")
    alias_of = entry.get("alias_of")
    if alias_of is not None:
        if not isinstance(alias_of, str):
            raise _Skip("alias_of is not a string", repr(alias_of))
        raise _Alias(alias_of)
    input_price = _per_million(entry, "input_cost_per_token")
    output_price = _per_million(entry, "output_cost_per_token")
    cached_price = _per_million(entry, "cache_read_input_token_cost")
    if input_price is None or output_price is None:
        raise _Skip(
            _not_per_token_reason(entry, has_input=input_price is not None, has_output=output_price is not None)
        )

    explicit_key = entry.get("model_key")
    if explicit_key is not None and not isinstance(explicit_key, str):
        raise _Skip("model_key is not a string", repr(explicit_key))
    litellm_provider = entry.get("litellm_provider")
    if isinstance(litellm_provider, str) and litellm_provider.strip():
        # As LiteLLM spells it (together_ai, vertex_ai-language-models): its names start with it.
        provider_key = litellm_provider.strip()
    elif explicit_key is not None:
        provider_key = explicit_key.partition("/")[0]
    else:
        raise _Skip("no litellm_provider")
    try:
        Provider._meta.get_field("key").clean(provider_key, None)
    except ValidationError:
        raise _Skip("litellm_provider does not make a valid provider key", repr(litellm_provider)) from None
    model_key = explicit_key if explicit_key is not None else _derived_model_key(name, provider_key)
    try:
        LanguageModel._meta.get_field("key").clean(model_key, None)
    except ValidationError:
        raise _Skip(
            "not a valid model key",
            f"{model_key!r} (provider/model, segments of letters, digits and ._:@~+-*, "
            f"at most {LanguageModel._meta.get_field('key').max_length} characters)",
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
        raise _Skip("invalid price", "; ".join(error.messages)) from None
    return _Entry(
        name=name,
        model_key=model_key,
        provider_key=provider_key,
        explicit_key=explicit_key is not None,
        context_window=_context_window(entry),
        licence_id=licence_id,
        price=price,
    )


def _models_by_key(keys: Iterable[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(set(keys)):
        found.update(LanguageModel.objects.filter(key__in=chunk).values_list("key", "pk"))
    return found


def _prices_by_scope(model_ids: Iterable[int]) -> dict[tuple[int, int | None], list]:
    """Every price of these models per (model, team), newest first."""
    prices: dict[tuple[int, int | None], list] = {}
    for chunk in _chunks(set(model_ids)):
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


def _free_keys(entries: list[_Entry], taken: set[str]) -> list[_Entry]:
    """Give each entry a key of its own, ``<derived key>~2`` and up: a second price under one derived key."""
    if not entries:
        return []
    for chunk in _chunks({entry.model_key for entry in entries}):
        starts = Q()
        for base in chunk:
            starts |= Q(key__startswith=f"{base}~")
        taken |= set(LanguageModel.objects.filter(starts).values_list("key", flat=True))
    renamed = []
    for entry in entries:
        number = 2
        while f"{entry.model_key}~{number}" in taken:
            number += 1
        key = f"{entry.model_key}~{number}"
        taken.add(key)
        renamed.append(replace(entry, model_key=key))
    return renamed


def _add_litellm_aliases(alias_of: dict[str, str], report: ImportReport) -> None:
    """Record each ``alias_of`` entry as an alias of the model its target names, once the targets are imported."""
    if not alias_of:
        return
    found = selectors.find_models(names={*alias_of, *alias_of.values()})
    new_aliases = []
    for name, target in alias_of.items():
        model = found.get(target)
        if model is None:
            report.skip(name, _Skip("alias of an entry that is not in the catalogue", repr(target)))
        elif name in found:
            report.unchanged += 1
        else:
            report.aliased += 1
            new_aliases.append(ModelAlias(name=name, model_id=model.id, source=ModelAlias.Source.LITELLM))
    ModelAlias.objects.bulk_create(new_aliases, batch_size=LOOKUP_CHUNK_SIZE, ignore_conflicts=True)


@transaction.atomic
def import_prices(
    *, entries: dict, effective_from: datetime.date, currency: str = "USD", source_url: str = ""
) -> ImportReport:
    """Import a LiteLLM price map: add new prices, count identical ones, skip the rest with a reason.

    Each entry's name is kept as an alias of its model. Per-entry extensions ``effective_from``,
    ``currency``, ``licence``, ``team`` and ``model_key`` override the file-level defaults given here.
    """
    currency_validator(currency)
    if source_url:
        validate_source_url(source_url)
    started = timezone.now()
    report = ImportReport()
    licences = dict(Licence.objects.values_list("key", "pk"))
    team_slugs = {
        entry["team"] for entry in entries.values() if isinstance(entry, dict) and isinstance(entry.get("team"), str)
    }
    teams = dict(Team.objects.filter(slug__in=team_slugs).values_list("slug", "pk"))

    parsed: list[_Entry] = []
    alias_of: dict[str, str] = {}
    for name, raw in entries.items():
        try:
            parsed.append(
                _parse_entry(
                    name,
                    raw,
                    effective_from=effective_from,
                    currency=currency,
                    source_url=source_url,
                    licences=licences,
                    teams=teams,
                )
            )
        except _Alias as alias:
            alias_of[name] = alias.target
        except _Skip as skip:
            report.skip(name, skip)
    # A name written as its own key (gemini/gemini-exp-1206) owns that key over a bare name deriving
    # the same one (gemini-exp-1206), whatever their order: the resolver finds keys before aliases.
    parsed.sort(key=lambda entry: entry.name != entry.model_key)

    found = selectors.find_models(names=[name for entry in parsed for name in (entry.name, entry.model_key)])
    claims: dict[tuple[str, int | None], _Entry] = {}
    aliases: dict[str, str] = {}  # Alias name to model key.
    conflicting: list[_Entry] = []
    for entry in parsed:
        by_name = found.get(entry.model_key) if entry.explicit_key else found.get(entry.name)
        ref = by_name or found.get(entry.model_key)
        target = ref.key if ref is not None else entry.model_key
        first = claims.setdefault((target, entry.price.team_id), entry)
        if first is entry:
            continue
        if _is_same_price(first.price, entry.price):
            report.unchanged += 1
            aliases[entry.name] = target
        elif by_name is not None or entry.explicit_key:
            report.skip(entry.name, _Skip(SAME_MODEL_OTHER_PRICE, f"{first.name!r} ({target})"))
        else:
            conflicting.append(entry)
    taken = {key for key, _ in claims} | {ref.key for ref in found.values()}
    for entry in _free_keys(conflicting, taken):
        if len(entry.model_key) > LanguageModel._meta.get_field("key").max_length:
            report.skip(entry.name, _Skip(SAME_MODEL_OTHER_PRICE, f"no room for a key of its own: {entry.model_key!r}"))
        else:
            claims[(entry.model_key, entry.price.team_id)] = entry

    existing = {ref.key: ref for ref in found.values()}
    prices_in_db = _prices_by_scope(existing[key].id for key, _ in claims if key in existing)
    to_create: list[tuple[str, _Entry]] = []
    licence_changes: dict[int, int] = {}
    for (target, team_id), entry in claims.items():
        ref = existing.get(target)
        if ref is None:
            report.created += 1
            to_create.append((target, entry))
            aliases[entry.name] = target
            continue
        rows = prices_in_db.get((ref.id, team_id), [])
        in_force = next((row for row in rows if row.effective_from <= entry.price.effective_from), None)
        if in_force is not None and _is_same_price(in_force, entry.price):
            report.unchanged += 1
        elif in_force is not None and in_force.effective_from == entry.price.effective_from:
            report.skip(entry.name, _Skip(DIFFERENT_PRICE_ON_DATE))
            continue
        elif in_force is not None:
            report.superseded += 1
            to_create.append((target, entry))
        else:
            report.created += 1
            to_create.append((target, entry))
        aliases[entry.name] = target
        if entry.licence_id is not None and entry.licence_id != ref.licence_id:
            licence_changes.setdefault(ref.id, entry.licence_id)

    report.models_created = _create_models([entry for target, entry in to_create if target not in existing])
    model_ids = _models_by_key({target for target, _ in to_create} | set(aliases.values()))
    prices = []
    for target, entry in to_create:
        entry.price.model_id = model_ids[target]
        prices.append(entry.price)
    bulk_create_with_history(prices, Price, batch_size=LOOKUP_CHUNK_SIZE)
    events.record_many(WebhookEvent.PRICE_CHANGED, [(price, None) for price in prices])
    new_aliases = [
        ModelAlias(name=name, model_id=model_ids[target], source=ModelAlias.Source.LITELLM)
        for name, target in aliases.items()
    ]
    # An alias already recorded stays as it is, so importing a file again adds none.
    ModelAlias.objects.bulk_create(new_aliases, batch_size=LOOKUP_CHUNK_SIZE, ignore_conflicts=True)
    _add_litellm_aliases(alias_of, report)
    # A new alias changes how the model reads in the API, so clients syncing with updated_since see it.
    LanguageModel.objects.filter(
        pk__in=ModelAlias.objects.filter(created_at__gte=started).values("model_id"), updated_at__lt=started
    ).update(updated_at=timezone.now())

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
        if _derived_model_key(model.key, model.provider.key) != model.key:
            entry["model_key"] = model.key
        exported[model.key] = entry
    return exported
