"""The shipped catalogue: providers, licences, models, their public prices, GPU rates,
two self-hosting profiles and a USD/JPY rate. Prices are per million tokens in USD."""

import datetime
from decimal import Decimal

from django.db import migrations

PROVIDERS = [
    ("openai", "OpenAI", "https://openai.com"),
    ("anthropic", "Anthropic", "https://www.anthropic.com"),
    ("google", "Google", "https://ai.google.dev"),
    ("meta", "Meta", "https://www.llama.com"),
    ("deepseek", "DeepSeek", "https://www.deepseek.com"),
    ("mistral", "Mistral AI", "https://mistral.ai"),
    ("qwen", "Alibaba Cloud (Qwen)", "https://qwenlm.github.io"),
]

# key, name, url, commercial use, MAU limit, attribution, acceptable-use policy, notes
LICENCES = [
    (
        "proprietary",
        "Proprietary API terms of service",
        "",
        True,
        None,
        False,
        True,
        "Commercial API: use governed by the provider's terms and usage policies; weights are not available.",
    ),
    (
        "llama3-community",
        "Meta Llama 3 Community License",
        "https://www.llama.com/llama3/license/",
        True,
        700_000_000,
        True,
        True,
        "Royalty-free. Licensees with more than 700 million monthly active users need a licence from Meta. "
        "The Llama acceptable-use policy applies; 'Built with Meta Llama 3' attribution.",
    ),
    (
        "llama3.1-community",
        "Llama 3.1 Community License",
        "https://www.llama.com/llama3_1/license/",
        True,
        700_000_000,
        True,
        True,
        "As the Llama 3 licence: 700 million monthly-active-user clause, acceptable-use policy, attribution.",
    ),
    (
        "qwen",
        "Qwen License Agreement",
        "https://huggingface.co/Qwen/Qwen2.5-72B-Instruct/blob/main/LICENSE",
        True,
        100_000_000,
        True,
        False,
        "Commercial use allowed; above 100 million monthly active users a separate licence from Alibaba Cloud is needed.",
    ),
    (
        "Apache-2.0",
        "Apache License 2.0",
        "https://www.apache.org/licenses/LICENSE-2.0",
        True,
        None,
        True,
        False,
        "Permissive; keep the licence and notices.",
    ),
    (
        "MIT",
        "MIT License",
        "https://opensource.org/license/mit",
        True,
        None,
        True,
        False,
        "Permissive; keep the copyright notice.",
    ),
]

# key, provider, display name, licence, open weights, context window,
# [(effective_from, input, output, cached input, source URL)]
MODELS = [
    (
        "openai/gpt-4o",
        "openai",
        "GPT-4o",
        "proprietary",
        False,
        128_000,
        [("2024-08-06", "2.50", "10.00", "1.25", "https://openai.com/api/pricing/")],
    ),
    (
        "openai/gpt-4o-mini",
        "openai",
        "GPT-4o mini",
        "proprietary",
        False,
        128_000,
        [("2024-07-18", "0.15", "0.60", "0.075", "https://openai.com/api/pricing/")],
    ),
    (
        "openai/gpt-5.2-pro",
        "openai",
        "GPT-5.2 Pro",
        "proprietary",
        False,
        400_000,
        [("2025-12-11", "21.00", "168.00", None, "https://openai.com/api/pricing/")],
    ),
    (
        "anthropic/claude-sonnet-4.5",
        "anthropic",
        "Claude Sonnet 4.5",
        "proprietary",
        False,
        200_000,
        [("2025-09-29", "3.00", "15.00", "0.30", "https://www.anthropic.com/pricing")],
    ),
    (
        "google/gemini-2.5-flash",
        "google",
        "Gemini 2.5 Flash",
        "proprietary",
        False,
        1_048_576,
        [("2025-06-17", "0.30", "2.50", "0.03", "https://ai.google.dev/pricing")],
    ),
    (
        "meta/llama-3-70b",
        "meta",
        "Llama 3 70B",
        "llama3-community",
        True,
        8_192,
        [("2024-04-18", "0.50", "0.75", None, "manual")],
    ),
    (
        "meta/llama-3-405b",
        "meta",
        "Llama 3.1 405B",
        "llama3.1-community",
        True,
        128_000,
        [("2024-07-23", "3.50", "3.50", None, "https://www.together.ai/pricing")],
    ),
    (
        "deepseek/deepseek-r1",
        "deepseek",
        "DeepSeek R1",
        "MIT",
        True,
        128_000,
        [
            ("2025-01-20", "0.55", "2.19", "0.14", "https://api-docs.deepseek.com/quick_start/pricing"),
            ("2025-09-29", "0.28", "0.42", "0.028", "https://api-docs.deepseek.com/quick_start/pricing"),
        ],
    ),
    (
        "mistral/mistral-large-3",
        "mistral",
        "Mistral Large 3",
        "Apache-2.0",
        True,
        256_000,
        [("2025-12-02", "0.50", "1.50", None, "https://mistral.ai/pricing")],
    ),
    (
        "qwen/qwen2.5-72b",
        "qwen",
        "Qwen2.5 72B",
        "qwen",
        True,
        131_072,
        [("2024-09-19", "1.20", "1.20", None, "https://www.together.ai/pricing")],
    ),
]

GPU_RATES = [("H100 80GB", "2.50"), ("A100 80GB", "1.60"), ("L40S", "1.00"), ("L4", "0.80")]


def load(apps, schema_editor):
    Provider = apps.get_model("pricing", "Provider")
    Licence = apps.get_model("pricing", "Licence")
    LanguageModel = apps.get_model("pricing", "LanguageModel")
    Price = apps.get_model("pricing", "Price")
    GpuRate = apps.get_model("pricing", "GpuRate")
    ExchangeRate = apps.get_model("pricing", "ExchangeRate")
    SelfHostingProfile = apps.get_model("pricing", "SelfHostingProfile")

    providers = {key: Provider.objects.create(key=key, name=name, website=url) for key, name, url in PROVIDERS}
    licences = {}
    for key, name, url, commercial, mau, attribution, aup, notes in LICENCES:
        licences[key] = Licence.objects.create(
            key=key,
            name=name,
            url=url,
            commercial_use=commercial,
            monthly_active_user_limit=mau,
            requires_attribution=attribution,
            requires_acceptable_use_policy=aup,
            notes=notes,
        )
    for key, provider, name, licence, open_weights, context, prices in MODELS:
        model = LanguageModel.objects.create(
            key=key,
            provider=providers[provider],
            display_name=name,
            licence=licences[licence],
            open_weights=open_weights,
            context_window=context,
        )
        for effective_from, input_price, output_price, cached, url in prices:
            Price.objects.create(
                model=model,
                input_per_million=Decimal(input_price),
                output_per_million=Decimal(output_price),
                cached_input_per_million=None if cached is None else Decimal(cached),
                currency="USD",
                effective_from=datetime.date.fromisoformat(effective_from),
                source="seed",
                source_url="" if url == "manual" else url,
            )
    for gpu_type, hourly in GPU_RATES:
        GpuRate.objects.create(
            gpu_type=gpu_type,
            hourly_cost=Decimal(hourly),
            currency="USD",
            effective_from=datetime.date(2025, 1, 1),
            source="Typical on-demand cloud price per GPU-hour",
        )
    ExchangeRate.objects.create(
        base="USD",
        quote="JPY",
        rate=Decimal("150.00"),
        as_of=datetime.date(2025, 1, 1),
        source="Shipped default; record the current rate in the admin or the API",
    )
    SelfHostingProfile.objects.create(
        name="Cloud 4×H100, vLLM, Llama 70B class",
        gpu_type="H100 80GB",
        gpu_count=4,
        throughput_tokens_per_s=Decimal("3543"),
        utilisation=Decimal("0.30"),
        currency="USD",
    )
    SelfHostingProfile.objects.create(
        name="On-prem 8×H100 server",
        gpu_type="H100 80GB",
        gpu_count=8,
        capex=Decimal("320000.00"),
        salvage_ratio=Decimal("0.10"),
        amortisation_months=36,
        power_monthly_cost=Decimal("2200.00"),
        operations_monthly_cost=Decimal("3500.00"),
        throughput_tokens_per_s=Decimal("7000"),
        utilisation=Decimal("0.50"),
        currency="USD",
    )


def unload(apps, schema_editor):
    for name in ("SelfHostingProfile", "ExchangeRate", "GpuRate", "Price", "LanguageModel", "Licence", "Provider"):
        apps.get_model("pricing", name).objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("pricing", "0001_initial")]
    operations = [migrations.RunPython(load, unload)]
