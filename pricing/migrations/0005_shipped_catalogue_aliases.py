from django.db import migrations

# The names LiteLLM's price map and the providers' own APIs give the shipped catalogue's
# models (first-party endpoints only: a reseller's or cloud's copy has prices of its own and
# imports as a model of its own). With them, importing the map prices the shipped models
# instead of adding a second model beside each one. DeepSeek R1 needs none: the map names
# it deepseek/deepseek-r1, as the catalogue does (its deepseek-reasoner is today's price of
# the same model under another name, and one model holds one price a day).
SHIPPED_NAMES = {
    "openai/gpt-5.2-pro": ["gpt-5.2-pro"],
    "anthropic/claude-sonnet-4.5": ["claude-sonnet-4-5"],
    "google/gemini-2.5-flash": ["gemini/gemini-2.5-flash"],
}


def add_aliases(apps, schema_editor):
    LanguageModel = apps.get_model("pricing", "LanguageModel")
    ModelAlias = apps.get_model("pricing", "ModelAlias")
    models = {model.key: model for model in LanguageModel.objects.filter(key__in=SHIPPED_NAMES)}
    for key, names in SHIPPED_NAMES.items():
        if key not in models:
            continue  # Removed from this database's catalogue.
        for name in names:
            if not ModelAlias.objects.filter(name=name).exists():
                ModelAlias.objects.create(name=name, model=models[key], source="manual")


def remove_aliases(apps, schema_editor):
    ModelAlias = apps.get_model("pricing", "ModelAlias")
    names = [name for names in SHIPPED_NAMES.values() for name in names]
    ModelAlias.objects.filter(name__in=names, source="manual", model__key__in=SHIPPED_NAMES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("pricing", "0004_model_aliases"),
    ]

    operations = [migrations.RunPython(add_aliases, remove_aliases)]
