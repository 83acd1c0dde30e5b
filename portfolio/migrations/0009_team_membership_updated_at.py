import django.utils.timezone
from django.db import migrations, models


def updated_when_created(apps, schema_editor):
    # Existing rows were last changed, as far as anyone knows, when they were created.
    for name in ("Team", "Membership"):
        apps.get_model("portfolio", name).objects.update(updated_at=models.F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("portfolio", "0008_iso_4217_currencies"),
    ]

    operations = [
        migrations.AddField(
            model_name="team",
            name="updated_at",
            field=models.DateTimeField(auto_now=True, default=django.utils.timezone.now, verbose_name="updated at"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="membership",
            name="updated_at",
            field=models.DateTimeField(auto_now=True, default=django.utils.timezone.now, verbose_name="updated at"),
            preserve_default=False,
        ),
        migrations.RunPython(updated_when_created, migrations.RunPython.noop),
    ]
