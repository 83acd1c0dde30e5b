import datetime
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from pricing import selectors, services
from pricing.models import LanguageModel, ModelAlias, Price, Provider
from tests.factories import LanguageModelFactory

pytestmark = pytest.mark.django_db

# An excerpt of LiteLLM's price map: multi-slash names (fireworks_ai, together_ai, bedrock regions,
# azure/eu, cloudflare/@cf), date-suffixed OpenAI names, alias_of entries, image-, audio- and
# character-priced entries and the sample_spec entry.
EXCERPT = Path(__file__).resolve().parent.parent / "fixtures" / "litellm_catalogue_excerpt.json"
DAY = datetime.date(2026, 1, 15)


def excerpt() -> dict:
    return json.loads(EXCERPT.read_text(encoding="utf-8"))


def per_token_names(entries: dict) -> list[str]:
    return [
        name
        for name, entry in entries.items()
        if name != "sample_spec" and "input_cost_per_token" in entry and "output_cost_per_token" in entry
    ]


def run(entries: dict) -> services.ImportReport:
    return services.import_prices(entries=entries, effective_from=DAY)


def entry(**fields):
    return {"litellm_provider": "acme", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, **fields}


def row_counts() -> tuple[int, int, int, int]:
    return Price.objects.count(), LanguageModel.objects.count(), ModelAlias.objects.count(), Provider.objects.count()


# --- Importing the excerpt ----------------------------------------------------------------


def test_every_per_token_entry_imports_and_resolves_by_its_exact_name():
    entries = excerpt()

    report = run(entries)

    names = per_token_names(entries)
    assert len(names) == 111
    assert report.created + report.superseded + report.unchanged == len(names)
    book = selectors.price_book(on=DAY)
    for name in names:
        model = selectors.resolve_model(name)
        # Stored as the map writes it (the shipped models' names are aliases already).
        assert ModelAlias.objects.filter(name=name).exists() or model.key == name, name
        price = book.price(model.pk)
        assert price is not None, name
        assert price.token_price.input * 1 == price.token_price.input  # A Decimal, not a float.


def test_the_excerpt_reports_each_skip_reason_with_its_count():
    report = run(excerpt())

    assert report.skip_reasons == {
        "priced per image, not per token": 12,
        "priced per second of audio or video, not per token": 4,
        "no price at all": 4,
        "priced per character, not per token": 3,
        "input price per token only, no output price per token": 3,
        "priced per page, not per token": 2,
        "output price per token only, no input price per token": 1,
        "priced per session, credit or other unit, not per token": 1,
        "sample_spec: LiteLLM's description of the format, not a model": 1,
    }
    assert sum(report.skip_reasons.values()) == len(report.skipped) == 31
    assert (report.created, report.superseded, report.unchanged, report.aliased) == (107, 0, 4, 5)
    total = report.created + report.superseded + report.unchanged + report.aliased + len(report.skipped)
    assert total == len(excerpt())


def test_a_second_import_changes_nothing():
    first = run(excerpt())
    counts = row_counts()

    second = run(excerpt())

    assert (second.created, second.superseded, second.aliased, second.models_created) == (0, 0, 0, 0)
    assert second.unchanged == first.created + first.superseded + first.unchanged + first.aliased
    assert second.skip_reasons == first.skip_reasons
    assert row_counts() == counts


@pytest.mark.parametrize(
    ("name", "key", "provider"),
    [
        ("fireworks_ai/accounts/fireworks/models/deepseek-r1", None, "fireworks_ai"),
        ("together_ai/deepseek-ai/DeepSeek-V3", None, "together_ai"),
        ("bedrock/ap-northeast-1/anthropic.claude-v2:1", None, "bedrock"),
        ("azure/eu/gpt-4o-2024-08-06", None, "azure"),
        ("azure/gpt-4o", None, "azure"),
        ("cloudflare/@cf/cloudflare/clef", None, "cloudflare"),
        ("gpt-4o-2024-08-06", "openai/gpt-4o-2024-08-06", "openai"),
        (
            "vertex_ai/claude-3-5-sonnet@20240620",
            "vertex_ai-anthropic_models/vertex_ai/claude-3-5-sonnet@20240620",
            "vertex_ai-anthropic_models",
        ),
    ],
)
def test_litellm_names_keep_their_provider_and_resolve_through_aliases(name, key, provider):
    entries = excerpt()
    assert name in entries
    run(entries)

    model = selectors.resolve_model(name)

    assert model.key == (key or name)
    assert model.provider.key == provider
    assert name in {alias.name for alias in model.aliases.all()}


def test_a_date_suffixed_name_is_a_model_of_its_own_and_the_bare_name_finds_the_shipped_one(gpt4o):
    run(excerpt())

    assert selectors.resolve_model("gpt-4o") == gpt4o
    dated = selectors.resolve_model("gpt-4o-2024-05-13")
    assert dated.key == "openai/gpt-4o-2024-05-13"
    assert selectors.price_book(on=DAY).price(dated.pk).token_price.input == 5


def test_alias_of_entries_become_aliases_of_the_model_they_name():
    report = run(excerpt())

    assert report.aliased == 5
    assert selectors.resolve_model("claude-opus-latest").key == "anthropic/claude-opus-5-5"
    alias = ModelAlias.objects.get(name="bedrock/claude-opus-latest")
    assert (alias.model.key, alias.source) == (
        "bedrock_converse/global.anthropic.claude-opus-5-5",
        ModelAlias.Source.LITELLM,
    )


def test_a_bare_name_priced_differently_from_its_prefixed_twin_keeps_its_own_price():
    run(excerpt())

    prefixed = selectors.resolve_model("gemini/gemini-exp-1206")
    bare = selectors.resolve_model("gemini-exp-1206")
    assert (prefixed.key, bare.key) == ("gemini/gemini-exp-1206", "gemini/gemini-exp-1206~2")
    book = selectors.price_book(on=DAY)
    assert book.price(prefixed.pk).token_price.input == 0
    assert str(book.price(bare.pk).token_price.input) == "0.300000"


def test_an_existing_alias_points_an_entry_at_its_model(gpt4o):
    ModelAlias.objects.create(name="my-gpt", model=gpt4o, source=ModelAlias.Source.MANUAL)

    report = run({"my-gpt": entry(litellm_provider="azure", input_cost_per_token=2e-06)})

    assert (report.superseded, report.models_created) == (1, 0)
    assert selectors.price_book(on=DAY).price(gpt4o.pk).token_price.input == 2
    assert ModelAlias.objects.get(name="my-gpt").source == ModelAlias.Source.MANUAL


def test_the_command_prints_the_counts_per_reason(capsys):
    from django.core.management import call_command

    call_command("import_prices", str(EXCERPT), "--effective-from", DAY.isoformat())
    output = capsys.readouterr().out

    assert "Created 107 prices (107 new models), 0 superseded, 4 unchanged, 5 new aliases, 31 skipped." in output
    assert "Skipped, by reason:\n  priced per image, not per token: 12\n" in output
    assert "  sample_spec: LiteLLM's description of the format, not a model: 1\n" in output


# --- The resolver -------------------------------------------------------------------------


def test_resolve_by_exact_key(gpt4o):
    assert selectors.resolve_model("openai/gpt-4o") == gpt4o


def test_resolve_by_exact_alias_case_sensitively(gpt4o):
    ModelAlias.objects.create(name="GPT-4o-Latest", model=gpt4o)

    assert selectors.resolve_model("GPT-4o-Latest") == gpt4o
    with pytest.raises(selectors.UnknownModel):
        selectors.resolve_model("gpt-4o-latest")


def test_resolve_with_a_provider_qualifies_the_name(gpt4o):
    assert selectors.resolve_model("gpt-4o", provider="openai") == gpt4o
    ModelAlias.objects.create(name="azure/gpt-4o", model=gpt4o)
    assert selectors.resolve_model("gpt-4o", provider="azure") == gpt4o
    with pytest.raises(selectors.UnknownModel):
        selectors.resolve_model("gpt-4o")


def test_an_exact_key_wins_over_an_alias_and_an_alias_over_the_provider(gpt4o, llama70b):
    ModelAlias.objects.create(name="openai/gpt-4o", model=llama70b)
    ModelAlias.objects.create(name="gpt-4o", model=llama70b)

    assert selectors.resolve_model("openai/gpt-4o") == gpt4o
    assert selectors.resolve_model("gpt-4o", provider="openai") == llama70b


def test_an_unknown_name_lists_the_closest_names(gpt4o):
    ModelAlias.objects.create(name="gpt-4o-2024-08-06", model=gpt4o)

    with pytest.raises(selectors.UnknownModel) as excinfo:
        selectors.resolve_model("gpt-4o-2024-08-07")

    assert isinstance(excinfo.value, LookupError)
    assert excinfo.value.suggestions[0] == "gpt-4o-2024-08-06"
    assert str(excinfo.value).startswith("Unknown model 'gpt-4o-2024-08-07'. Closest names: gpt-4o-2024-08-06")


def test_a_misspelt_start_still_finds_close_names(gpt4o):
    with pytest.raises(selectors.UnknownModel) as excinfo:
        selectors.resolve_model("openai/gtp-4o")

    assert "openai/gpt-4o" in excinfo.value.suggestions


def test_a_name_like_nothing_suggests_nothing():
    with pytest.raises(selectors.UnknownModel) as excinfo:
        selectors.resolve_model("zzzzzzzz")

    assert excinfo.value.suggestions == []
    assert str(excinfo.value) == "Unknown model 'zzzzzzzz'."


def test_the_resolver_runs_a_constant_number_of_queries(gpt4o, django_assert_num_queries):
    for number in range(50):
        model = LanguageModelFactory(key=f"acme/model-{number}")
        ModelAlias.objects.create(name=f"model-{number}", model=model)

    with django_assert_num_queries(2):  # The model, then its aliases.
        assert selectors.resolve_model("model-7").key == "acme/model-7"
    with django_assert_num_queries(2):
        assert selectors.resolve_model("openai/gpt-4o") == gpt4o
    # Not found, then the names starting alike.
    with django_assert_num_queries(2), pytest.raises(selectors.UnknownModel):
        selectors.resolve_model("model-77")
    # Nothing close among those: the whole catalogue's names, once.
    with django_assert_num_queries(3), pytest.raises(selectors.UnknownModel):
        selectors.resolve_model("qqqq")


def test_find_models_takes_two_queries_per_chunk(gpt4o, django_assert_num_queries):
    ModelAlias.objects.create(name="gpt-4o", model=gpt4o)
    names = ["openai/gpt-4o", "gpt-4o", *(f"unknown-{number}" for number in range(700))]

    with django_assert_num_queries(4):
        found = selectors.find_models(names=names)

    assert set(found) == {"openai/gpt-4o", "gpt-4o"}
    assert found["gpt-4o"].id == gpt4o.pk


def import_queries(entries: dict) -> int:
    with CaptureQueriesContext(connection) as queries:
        run(entries)
    return len(queries)


def test_the_import_runs_a_constant_number_of_queries_per_chunk():
    # SQLite splits a bulk insert by its limit on bound parameters: 60 entries stay within one insert.
    small = {f"small-{number}": entry(litellm_provider="small") for number in range(5)}
    large = {f"large-{number}": entry(litellm_provider="large") for number in range(60)}

    assert import_queries(large) == import_queries(small)
    # Again, all unchanged: found through their aliases.
    assert import_queries(large) == import_queries(small)


# --- Search by alias ----------------------------------------------------------------------


def test_the_models_api_lists_aliases_and_searches_by_them(member, gpt4o):
    ModelAlias.objects.create(name="gpt-4o-2024-08-06", model=gpt4o)
    ModelAlias.objects.create(name="azure/gpt-4o-2024-08-06", model=gpt4o)
    client = APIClient()
    client.force_authenticate(member)

    body = client.get("/api/v1/models/", {"search": "2024-08-06"}).json()

    assert [row["key"] for row in body["results"]] == ["openai/gpt-4o"]
    assert body["results"][0]["aliases"] == ["azure/gpt-4o-2024-08-06", "gpt-4o-2024-08-06"]
    detail = client.get("/api/v1/models/openai/gpt-4o/").json()
    assert detail["aliases"] == ["azure/gpt-4o-2024-08-06", "gpt-4o-2024-08-06"]


def test_the_models_api_reads_a_key_with_several_slashes(member):
    run({"together_ai/meta-llama/Llama-3.3-70B": entry(litellm_provider="together_ai")})
    client = APIClient()
    client.force_authenticate(member)

    response = client.get("/api/v1/models/together_ai/meta-llama/Llama-3.3-70B/")

    assert response.status_code == 200
    assert response.json()["provider"] == "together_ai"


def test_the_catalogue_page_searches_by_alias_and_shows_aliases(member, gpt4o):
    ModelAlias.objects.create(name="gpt-4o-2024-08-06", model=gpt4o)
    ModelAlias.objects.create(name="azure/gpt-4o-2024-08-06", model=gpt4o)
    client = Client()
    client.force_login(member)

    found = client.get(reverse("pricing:model-list"), {"q": "4o-2024-08"})
    nothing = client.get(reverse("pricing:model-list"), {"q": "no-such-model"})
    detail = client.get(reverse("pricing:model-detail", args=[gpt4o.key]))

    assert [model.key for model, _ in found.context["rows"]] == ["openai/gpt-4o"]
    assert 'value="4o-2024-08"' in found.content.decode()
    assert nothing.context["rows"] == []
    assert "No model matches this search." in nothing.content.decode()
    assert "<code>gpt-4o-2024-08-06</code>" in detail.content.decode()


def test_a_new_price_may_name_its_model_by_an_alias_and_an_unknown_name_is_a_400(manager, gpt4o):
    ModelAlias.objects.create(name="gpt-4o-2024-08-06", model=gpt4o)
    client = APIClient()
    client.force_authenticate(manager)
    payload = {"input_per_million": "2", "output_per_million": "8", "effective_from": "2026-02-01"}

    created = client.post("/api/v1/prices/", {**payload, "model": "gpt-4o-2024-08-06"}, format="json")
    unknown = client.post("/api/v1/prices/", {**payload, "model": "gpt-4o-2024-08-07"}, format="json")

    assert created.status_code == 201
    assert created.json()["model"] == "openai/gpt-4o"
    assert unknown.status_code == 400
    assert unknown.json()["model"] == ["Unknown model 'gpt-4o-2024-08-07'. Closest names: gpt-4o-2024-08-06."]


def test_a_new_alias_marks_its_model_updated_and_a_second_import_does_not(gpt4o):
    before = gpt4o.updated_at

    run({"gpt-4o": entry(litellm_provider="openai", input_cost_per_token=2.5e-06, output_cost_per_token=1e-05)})
    gpt4o.refresh_from_db()
    after_first = gpt4o.updated_at
    run({"gpt-4o": entry(litellm_provider="openai", input_cost_per_token=2.5e-06, output_cost_per_token=1e-05)})
    gpt4o.refresh_from_db()

    assert after_first > before
    assert gpt4o.updated_at == after_first


# --- The shipped catalogue's names in LiteLLM's map -------------------------------------------


@pytest.mark.parametrize(
    ("name", "provider", "key"),
    [
        ("gpt-4o", "openai", "openai/gpt-4o"),
        ("gpt-5.2-pro", None, "openai/gpt-5.2-pro"),
        ("claude-sonnet-4-5", None, "anthropic/claude-sonnet-4.5"),
        ("gemini/gemini-2.5-flash", None, "google/gemini-2.5-flash"),
        ("mistral/mistral-large-3", None, "mistral/mistral-large-3"),
        ("deepseek/deepseek-r1", None, "deepseek/deepseek-r1"),
    ],
)
def test_the_shipped_models_resolve_by_the_names_litellm_gives_them(name, provider, key):
    assert selectors.resolve_model(name, provider=provider).key == key


def test_importing_a_shipped_models_litellm_name_prices_that_model_instead_of_adding_one():
    before = LanguageModel.objects.count()
    sonnet = {"litellm_provider": "anthropic", "input_cost_per_token": 3.3e-06, "output_cost_per_token": 1.65e-05}

    report = run({"claude-sonnet-4-5": sonnet})

    assert (report.created + report.superseded, LanguageModel.objects.count()) == (1, before)
    price = selectors.price_book(on=DAY).price(LanguageModel.objects.get(key="anthropic/claude-sonnet-4.5").pk)
    assert (price.token_price.input, price.token_price.output) == (Decimal("3.30"), Decimal("16.50"))
