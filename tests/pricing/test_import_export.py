import datetime
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from portfolio.models import UseCase
from pricing import services
from pricing.models import LanguageModel, Licence, Price, Provider
from pricing.selectors import price_book, resolve_model
from tests.factories import DeploymentFactory, LanguageModelFactory, PriceFactory, UseCaseFactory

pytestmark = pytest.mark.django_db

EXCERPT = Path(__file__).resolve().parent.parent / "fixtures" / "litellm_excerpt.json"
DAY = datetime.date(2026, 1, 15)
GPT4O_SEED_DAY = datetime.date(2024, 8, 6)


def entry(**fields):
    return {"litellm_provider": "acme", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, **fields}


def run(entries: dict, **kwargs) -> services.ImportReport:
    kwargs.setdefault("effective_from", DAY)
    return services.import_prices(entries=entries, **kwargs)


def excerpt() -> dict:
    return json.loads(EXCERPT.read_text(encoding="utf-8"))


def row_counts() -> tuple[int, int, int]:
    return Price.objects.count(), LanguageModel.objects.count(), Provider.objects.count()


def in_force(key: str, on: datetime.date = DAY, team_id: int | None = None):
    model = LanguageModel.objects.get(key=key)
    return price_book(on=on).price(model.pk, team_id)


def call(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- Reading the numbers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_token", "per_million"),
    [
        (2.5e-06, Decimal("2.50")),
        (1.4e-08, Decimal("0.014")),
        (0.000168, Decimal("168")),
        (1e-05, Decimal("10")),
        (0, Decimal("0")),
        (0.0, Decimal("0")),
        # Float noise in the real file is rounded to the catalogue's 6 decimals.
        (2.9999900000000002e-06, Decimal("2.999990")),
        (1.0000005e-06, Decimal("1.000001")),
    ],
)
def test_per_token_floats_become_exact_per_million_prices(per_token, per_million):
    run({"m": entry(input_cost_per_token=per_token, cache_read_input_token_cost=per_token)})

    price = Price.objects.get(model__key="acme/m")
    assert price.input_per_million == per_million
    assert price.cached_input_per_million == per_million
    assert price.input_per_million.as_tuple().exponent == -6


# --- The excerpt of the real file ---------------------------------------------------------


def test_the_excerpt_imports_every_entry_or_says_why(gpt4o):
    report = run(excerpt())

    assert (report.created, report.superseded, report.unchanged, report.models_created) == (7, 1, 4, 7)
    assert dict(report.skipped) == {
        "sample_spec": "sample_spec: LiteLLM's description of the format, not a model",
        "mistral/mistral-embed": "input price per token only, no output price per token",
        "aiml/dall-e-3": "priced per image, not per token",
        "bedrock/claude-opus-latest": "alias of an entry that is not in the catalogue: 'global.anthropic.claude-opus-5-5'",
    }
    assert report.created + report.superseded + report.unchanged + len(report.skipped) == len(excerpt())
    # Written as its own key, deepseek/deepseek-reasoner owns the key; the bare name is its alias.
    reasoner = LanguageModel.objects.get(key="deepseek/deepseek-reasoner")
    assert set(reasoner.aliases.values_list("name", flat=True)) == {"deepseek-reasoner", "deepseek/deepseek-reasoner"}
    assert LanguageModel.objects.get(aliases__name="novita/deepseek/deepseek-v4-pro").key == (
        "novita/deepseek/deepseek-v4-pro"
    )


def test_the_excerpt_creates_missing_models_and_providers():
    run(excerpt())

    # claude-sonnet-4-5 is the map's name for the shipped Claude Sonnet 4.5: it prices that
    # model (at the price it already has) and adds none beside it.
    assert not LanguageModel.objects.filter(key="anthropic/claude-sonnet-4-5").exists()
    assert resolve_model("claude-sonnet-4-5").key == "anthropic/claude-sonnet-4.5"
    bedrock = LanguageModel.objects.get(key="bedrock_converse/anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert bedrock.provider.key == "bedrock_converse"
    assert bedrock.display_name == "anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert bedrock.context_window == 200_000
    assert bedrock.licence is None
    assert Provider.objects.filter(key__in=["bedrock_converse", "databricks"]).count() == 2
    price = Price.objects.get(model=bedrock)
    assert (price.input_per_million, price.output_per_million, price.cached_input_per_million) == (
        Decimal("3"),
        Decimal("15"),
        Decimal("0.30"),
    )
    assert (price.currency, price.effective_from, price.source, price.team) == ("USD", DAY, Price.Source.IMPORT, None)
    assert price.source_url.startswith("https://pricing.us-east-1.amazonaws.com/")
    assert price.history.count() == 1


def test_the_excerpt_keeps_prefixed_keys_and_prices_without_a_cache_discount():
    run(excerpt())

    assert in_force("deepseek/deepseek-r1").token_price.input == Decimal("0.55")
    assert in_force("mistral/mistral-large-latest").token_price.output == Decimal("1.50")
    embedding = in_force("openai/text-embedding-3-small").token_price
    assert (embedding.input, embedding.output, embedding.cached_input) == (Decimal("0.02"), Decimal("0"), None)
    coder = in_force("deepseek/deepseek-coder").token_price
    assert coder.cached_input == Decimal("0.014")


def test_unchanged_prices_add_no_rows(gpt4o):
    report = run(
        {
            "gpt-4o": entry(
                litellm_provider="openai",
                input_cost_per_token=2.5e-06,
                output_cost_per_token=1e-05,
                cache_read_input_token_cost=1.25e-06,
            )
        }
    )

    assert (report.created, report.unchanged, report.skipped) == (0, 1, [])
    assert Price.objects.filter(model=gpt4o).count() == 1


# --- Skipped entries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "raw", "reason"),
    [
        ("sample_spec", entry(), "LiteLLM's description of the format, not a model"),
        ("m", ["not", "an", "object"], "entry is not an object"),
        ("m", 0.5, "entry is not an object"),
        ("m", {"litellm_provider": "acme"}, "no price at all"),
        ("m", entry(input_cost_per_token=None, output_cost_per_token=None), "no price at all"),
        ("m", entry(output_cost_per_token=None), "input price per token only, no output price per token"),
        ("m", entry(input_cost_per_token=None), "output price per token only, no input price per token"),
        ("m", entry(output_cost_per_token=None, output_cost_per_image=0.04), "priced per image, not per token"),
        ("m", {"litellm_provider": "acme", "input_cost_per_second": 1e-4}, "priced per second of audio or video"),
        ("m", {"litellm_provider": "acme", "input_cost_per_character": 1e-6}, "priced per character, not per token"),
        ("m", {"litellm_provider": "acme", "code_interpreter_cost_per_session": 0.03}, "priced per session"),
        ("m", entry(input_cost_per_token=-1e-06), "input_cost_per_token is negative"),
        ("m", entry(cache_read_input_token_cost=-1e-07), "cache_read_input_token_cost is negative"),
        ("m", entry(output_cost_per_token="0.000002"), "output_cost_per_token is not a number: '0.000002'"),
        ("m", entry(input_cost_per_token=True), "input_cost_per_token is not a number: True"),
        ("m", entry(input_cost_per_token=float("nan")), "input_cost_per_token is not a finite number"),
        ("m", entry(output_cost_per_token=2.0), "output_cost_per_token is too large"),
        ("m", entry(effective_from="15/01/2026"), "effective_from is not an ISO date (YYYY-MM-DD): '15/01/2026'"),
        ("m", entry(effective_from=20260115), "effective_from is not an ISO date (YYYY-MM-DD): 20260115"),
        ("m", entry(currency="BTC"), "currency is not a three-letter ISO 4217 code such as USD: 'BTC'"),
        ("m", entry(currency="DOLLAR"), "currency is not a three-letter ISO 4217 code such as USD: 'DOLLAR'"),
        ("m", entry(licence="WTFPL"), "unknown licence: 'WTFPL'"),
        ("m", entry(team="nobody"), "unknown team: 'nobody'"),
        ("m", entry(litellm_provider=None), "no litellm_provider"),
        ("m", entry(litellm_provider="Acme AI"), "litellm_provider does not make a valid provider key: 'Acme AI'"),
        ("acme/region//m", entry(), "not a valid model key: 'acme/region//m'"),
        ("m/../n", entry(), "not a valid model key: 'acme/m/../n'"),
        ("m n", entry(), "not a valid model key: 'acme/m n'"),
        ("m", entry(model_key="no-slash"), "not a valid model key: 'no-slash'"),
        ("m", entry(model_key=42), "model_key is not a string: 42"),
        ("x" * 199, entry(), "not a valid model key"),
        ("x" * 201, entry(), "name too long: at most 200 characters"),
        ("m", {"alias_of": "n"}, "alias of an entry that is not in the catalogue: 'n'"),
    ],
)
def test_bad_entries_are_skipped_with_a_reason(key, raw, reason):
    counts = row_counts()

    report = run({key: raw, "good": entry()})

    assert (report.created, report.unchanged) == (1, 0)
    [(skipped_key, skipped_reason)] = report.skipped
    assert skipped_key == key
    assert reason in skipped_reason
    assert Price.objects.count() == counts[0] + 1
    assert LanguageModel.objects.filter(key__startswith="acme/").get().key == "acme/good"


def test_a_different_price_on_the_same_date_is_skipped(gpt4o):
    report = run({"gpt-4o": entry(litellm_provider="openai")}, effective_from=GPT4O_SEED_DAY)

    assert report.skipped == [("gpt-4o", "a different price already exists on this date; prices are never edited")]
    assert report.created == 0
    assert Price.objects.get(model=gpt4o).input_per_million == Decimal("2.50")


def test_a_bare_and_a_prefixed_name_with_one_price_are_one_model():
    report = run({"m": entry(), "acme/m": entry()})

    assert (report.created, report.unchanged, report.skipped) == (1, 1, [])
    model = LanguageModel.objects.get(key="acme/m")
    assert set(model.aliases.values_list("name", flat=True)) == {"m", "acme/m"}


def test_a_bare_name_with_another_price_than_its_prefixed_name_gets_a_model_of_its_own():
    report = run(
        {
            "m": entry(input_cost_per_token=1e-06),
            "acme/m": entry(input_cost_per_token=3e-06),
            "other": entry(model_key="acme/m", input_cost_per_token=4e-06),
        }
    )

    assert (report.created, report.models_created) == (2, 2)
    # The name written as the key owns it, wherever it stands in the file.
    assert Price.objects.get(model__key="acme/m").input_per_million == Decimal("3")
    assert Price.objects.get(model__key="acme/m~2").input_per_million == Decimal("1")
    assert LanguageModel.objects.get(aliases__name="m").key == "acme/m~2"
    assert report.skipped == [
        ("other", "an earlier entry names the same model with a different price: 'acme/m' (acme/m)")
    ]
    assert report.skip_reasons == {services.SAME_MODEL_OTHER_PRICE: 1}
    again = run({"m": entry(input_cost_per_token=1e-06), "acme/m": entry(input_cost_per_token=3e-06)})
    assert (again.created, again.unchanged, again.skipped) == (0, 2, [])


def test_the_first_valid_entry_wins_over_an_invalid_one():
    report = run({"m": entry(input_cost_per_token="free"), "acme/m": entry()})

    assert report.created == 1
    assert [key for key, _ in report.skipped] == ["m"]


def test_a_bad_file_level_currency_or_url_raises():
    with pytest.raises(ValidationError):
        run({"m": entry()}, currency="usd")
    with pytest.raises(ValidationError):
        run({"m": entry()}, source_url="not a url")
    assert not LanguageModel.objects.filter(key="acme/m").exists()


# --- Idempotency and superseding ----------------------------------------------------------


def test_importing_twice_changes_nothing_the_second_time():
    first = run(excerpt())
    counts = row_counts()

    second = run(excerpt())

    assert (second.created, second.superseded, second.models_created) == (0, 0, 0)
    assert second.unchanged == first.created + first.superseded + first.unchanged
    assert second.skipped == first.skipped
    assert row_counts() == counts


def test_the_same_price_on_a_later_date_adds_nothing(gpt4o):
    run({"m": entry()}, effective_from=DAY)

    report = run({"m": entry()}, effective_from=DAY + datetime.timedelta(days=30))

    assert (report.created, report.unchanged) == (0, 1)
    assert Price.objects.filter(model__key="acme/m").count() == 1


def test_a_new_price_on_a_later_date_supersedes_the_old_one(gpt4o):
    report = run({"gpt-4o": entry(litellm_provider="openai", input_cost_per_token=2e-06, output_cost_per_token=8e-06)})

    assert (report.created, report.superseded) == (0, 1)
    new = in_force("openai/gpt-4o", on=DAY)
    assert (new.token_price.input, new.token_price.output, new.token_price.cached_input) == (
        Decimal("2"),
        Decimal("8"),
        None,
    )
    assert new.effective_from == DAY
    old = in_force("openai/gpt-4o", on=DAY - datetime.timedelta(days=1))
    assert (old.token_price.input, old.effective_from) == (Decimal("2.50"), GPT4O_SEED_DAY)
    assert Price.objects.filter(model=gpt4o).count() == 2


def test_an_earlier_date_in_history_can_still_be_filled_in(gpt4o):
    report = run(
        {"gpt-4o": entry(litellm_provider="openai", input_cost_per_token=5e-06, output_cost_per_token=1.5e-05)},
        effective_from=datetime.date(2024, 5, 13),
    )

    assert report.created == 1
    assert in_force("openai/gpt-4o", on=datetime.date(2024, 6, 1)).token_price.input == Decimal("5")
    assert in_force("openai/gpt-4o", on=DAY).token_price.input == Decimal("2.50")


# --- Extensions -------------------------------------------------------------------------


def test_an_entry_may_carry_its_own_date_and_currency():
    report = run(
        {
            "m": entry(effective_from="2025-03-01", currency="JPY", input_cost_per_token=0.00015),
            "n": entry(),
        },
        currency="EUR",
    )

    assert report.created == 2
    m = Price.objects.get(model__key="acme/m")
    assert (m.effective_from, m.currency, m.input_per_million) == (datetime.date(2025, 3, 1), "JPY", Decimal("150"))
    n = Price.objects.get(model__key="acme/n")
    assert (n.effective_from, n.currency) == (DAY, "EUR")


def test_a_licence_is_set_on_new_and_existing_models(gpt4o):
    report = run(
        {
            "m": entry(licence="Apache-2.0"),
            "gpt-4o": entry(
                litellm_provider="openai",
                input_cost_per_token=2.5e-06,
                output_cost_per_token=1e-05,
                cache_read_input_token_cost=1.25e-06,
                licence="MIT",
            ),
        }
    )

    assert (report.created, report.unchanged) == (1, 1)
    assert LanguageModel.objects.get(key="acme/m").licence.key == "Apache-2.0"
    gpt4o.refresh_from_db()
    assert gpt4o.licence == Licence.objects.get(key="MIT")


def test_a_team_entry_is_a_contract_price_that_beats_the_public_one(gpt4o, team):
    report = run(
        {
            "gpt-4o": entry(
                litellm_provider="openai", input_cost_per_token=2e-06, output_cost_per_token=8e-06, team="support"
            ),
        }
    )

    assert report.created == 1
    contract = Price.objects.get(model=gpt4o, team=team)
    assert (contract.source, contract.input_per_million, contract.effective_from) == (
        Price.Source.CONTRACT,
        Decimal("2"),
        DAY,
    )
    book = price_book(on=DAY)
    assert book.price(gpt4o.pk, team.pk).is_contract
    assert book.price(gpt4o.pk, team.pk).token_price.input == Decimal("2")
    assert book.price(gpt4o.pk).token_price.input == Decimal("2.50")


def test_a_public_and_a_contract_price_for_one_model_both_import(team):
    report = run({"m": entry(), "m-contract": entry(model_key="acme/m", team="support", input_cost_per_token=5e-07)})

    assert (report.created, report.skipped) == (2, [])
    assert in_force("acme/m", team_id=team.pk).token_price.input == Decimal("0.5")
    assert in_force("acme/m").token_price.input == Decimal("1")


def test_a_contract_price_is_compared_with_the_teams_own_price(gpt4o, team):
    PriceFactory(
        model=gpt4o,
        team=team,
        input_per_million=Decimal("2"),
        output_per_million=Decimal("8"),
        effective_from=DAY,
        source=Price.Source.CONTRACT,
    )
    same = entry(litellm_provider="openai", input_cost_per_token=2e-06, output_cost_per_token=8e-06, team="support")

    assert run({"gpt-4o": same}).unchanged == 1
    assert run({"gpt-4o": {**same, "output_cost_per_token": 9e-06}}).skipped == [
        ("gpt-4o", services.DIFFERENT_PRICE_ON_DATE)
    ]


# --- Recompute of affected use cases ------------------------------------------------------


def test_a_new_price_flags_the_use_cases_deployed_on_the_model(gpt4o, llama70b):
    on_gpt4o = DeploymentFactory(model=gpt4o, use_case=UseCaseFactory()).use_case
    on_llama = DeploymentFactory(model=llama70b, use_case=UseCaseFactory()).use_case
    UseCase.objects.update(needs_recompute=False)

    run({"gpt-4o": entry(litellm_provider="openai", input_cost_per_token=2e-06, output_cost_per_token=8e-06)})

    on_gpt4o.refresh_from_db()
    on_llama.refresh_from_db()
    assert on_gpt4o.needs_recompute
    assert not on_llama.needs_recompute


def test_an_unchanged_price_flags_nothing(gpt4o):
    use_case = DeploymentFactory(model=gpt4o, use_case=UseCaseFactory()).use_case
    UseCase.objects.update(needs_recompute=False)

    run(
        {
            "gpt-4o": entry(
                litellm_provider="openai",
                input_cost_per_token=2.5e-06,
                output_cost_per_token=1e-05,
                cache_read_input_token_cost=1.25e-06,
            )
        }
    )

    use_case.refresh_from_db()
    assert not use_case.needs_recompute


# --- The import_prices command ----------------------------------------------------------


def test_the_command_imports_the_excerpt_and_reports(gpt4o):
    output = call("import_prices", str(EXCERPT), "--effective-from", DAY.isoformat())

    assert "Created 7 prices (7 new models), 1 superseded, 4 unchanged, 0 new aliases, 4 skipped." in output
    assert "skipped sample_spec: sample_spec: LiteLLM's description of the format, not a model" in output
    assert "skipped mistral/mistral-embed: input price per token only, no output price per token" in output
    assert in_force("bedrock_converse/anthropic.claude-sonnet-4-5-20250929-v1:0").effective_from == DAY


def test_the_command_defaults_to_today_and_usd():
    before = Price.objects.count()

    call("import_prices", str(EXCERPT))

    imported = Price.objects.filter(source=Price.Source.IMPORT)
    assert imported.count() == Price.objects.count() - before > 0
    assert set(imported.values_list("currency", flat=True)) == {"USD"}
    assert set(imported.values_list("effective_from", flat=True)) == {timezone.localdate()}


def test_the_command_takes_a_file_level_currency(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"m": entry()}))

    call("import_prices", str(path), "--currency", "jpy", "--effective-from", DAY.isoformat())

    assert Price.objects.get(model__key="acme/m").currency == "JPY"


def test_the_command_lists_the_first_20_skipped_unless_verbose(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({f"bad-{n}": {"litellm_provider": "acme"} for n in range(25)}))

    short = call("import_prices", str(path))
    full = call("import_prices", str(path), "-v", "2")

    assert short.count("  skipped bad-") == 20
    assert "… and 5 more skipped (-v 2 lists them all)." in short
    assert full.count("  skipped bad-") == 25
    assert "more skipped" not in full


def test_a_dry_run_saves_nothing(gpt4o):
    use_case = DeploymentFactory(model=gpt4o, use_case=UseCaseFactory()).use_case
    UseCase.objects.update(needs_recompute=False)
    counts = row_counts()

    output = call("import_prices", str(EXCERPT), "--dry-run", "--effective-from", DAY.isoformat())

    assert (
        "Dry run, nothing saved: would create 7 prices (7 new models), 1 superseded, 4 unchanged, 0 new aliases, "
        "4 skipped." in output
    )
    assert row_counts() == counts
    use_case.refresh_from_db()
    assert not use_case.needs_recompute


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "No such file"),
        ("{not json", [], "is not valid JSON"),
        ("[1, 2]", [], "must hold a JSON object"),
        ("{}", ["--effective-from", "2026-13-01"], "--effective-from '2026-13-01' is not a date"),
        ("{}", ["--effective-from", "yesterday"], "--effective-from 'yesterday' is not a date"),
        ("{}", ["--currency", "dollars"], "--currency 'dollars' is not a three-letter ISO 4217 code"),
    ],
)
def test_the_command_refuses_bad_input(tmp_path, content, args, message):
    path = tmp_path / "prices.json"
    if content is not None:
        path.write_text(content)

    with pytest.raises(CommandError, match=message):
        call("import_prices", str(path), *args)


# --- Export and round trip ----------------------------------------------------------------


def test_export_writes_the_litellm_shape_with_our_extensions(gpt4o, team):
    PriceFactory(model=gpt4o, team=team, effective_from=DAY, source=Price.Source.CONTRACT)
    PriceFactory(model=gpt4o, effective_from=DAY + datetime.timedelta(days=1))

    exported = services.export_prices(on=DAY)

    assert exported["openai/gpt-4o"] == {
        "input_cost_per_token": 2.5e-06,
        "output_cost_per_token": 1e-05,
        "cache_read_input_token_cost": 1.25e-06,
        "litellm_provider": "openai",
        "max_input_tokens": 128_000,
        "mode": "chat",
        "effective_from": "2024-08-06",
        "currency": "USD",
        "licence": "proprietary",
        "source": "https://openai.com/api/pricing/",
    }
    assert exported["deepseek/deepseek-r1"]["input_cost_per_token"] == 2.8e-07
    assert "cache_read_input_token_cost" not in exported["openai/gpt-5.2-pro"]
    assert exported["openai/gpt-5.2-pro"]["output_cost_per_token"] == 0.000168


def test_export_leaves_out_models_without_a_price_in_force():
    assert "deepseek/deepseek-r1" not in services.export_prices(on=datetime.date(2025, 1, 1))


def test_export_then_import_reproduces_the_same_prices(tmp_path):
    odd = LanguageModelFactory(key="test/odd-model", licence=None)  # Its provider key is not "test".
    PriceFactory(
        model=odd,
        input_per_million=Decimal("0.123457"),
        output_per_million=Decimal("999999.999999"),
        cached_input_per_million=Decimal("0.000001"),
        currency="JPY",
        effective_from=datetime.date(2025, 2, 3),
    )
    run(excerpt())
    path = tmp_path / "export.json"
    call("export_prices", str(path), "--on", DAY.isoformat())
    before = {
        key: (price.token_price, price.currency, price.effective_from)
        for key, price in ((model.key, in_force(model.key)) for model in LanguageModel.objects.all())
        if price is not None
    }
    exported = json.loads(path.read_text())
    assert exported["test/odd-model"]["model_key"] == "test/odd-model"

    Price.objects.all().delete()
    output = call("import_prices", str(path), "--effective-from", "2000-01-01")

    assert (
        f"Created {len(before)} prices (0 new models), 0 superseded, 0 unchanged, 0 new aliases, 0 skipped." in output
    )
    after = {
        key: (price.token_price, price.currency, price.effective_from)
        for key, price in ((model.key, in_force(model.key)) for model in LanguageModel.objects.all())
        if price is not None
    }
    assert after == before
    assert services.export_prices(on=DAY) == exported


def test_export_to_standard_output():
    output = call("export_prices", "-", "--on", DAY.isoformat())

    exported = json.loads(output)
    assert exported["meta/llama-3-70b"]["input_cost_per_token"] == 5e-07
    assert exported["meta/llama-3-70b"]["licence"] == "llama3-community"


def test_export_refuses_a_bad_date():
    with pytest.raises(CommandError, match="--on 'soon' is not a date"):
        call("export_prices", "-", "--on", "soon")


def test_a_second_price_under_a_key_too_long_for_a_suffix_is_skipped():
    name = "m" * 194  # "acme/" and the name fill the 200 characters of a key.

    report = run({f"acme/{name}": entry(), name: entry(input_cost_per_token=5e-06)})

    assert report.created == 1
    assert report.skip_reasons == {services.SAME_MODEL_OTHER_PRICE: 1}
    assert report.skipped[0][0] == name
