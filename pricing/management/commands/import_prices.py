"""Import token prices from a LiteLLM ``model_prices_and_context_window.json`` file."""

import datetime
import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from pricing import services
from pricing.models import currency_validator

SKIPPED_SHOWN = 20


class Command(BaseCommand):
    help = (
        "Import prices from a LiteLLM model_prices_and_context_window.json file. Entries may carry the "
        "extensions effective_from, currency, licence, team and model_key. Each entry's name is kept as an "
        "alias of its model, and an alias_of entry becomes an alias of the model it names. Superseded counts "
        "new prices that replace a different one in force."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the JSON file.")
        parser.add_argument(
            "--effective-from",
            metavar="YYYY-MM-DD",
            help="Date the prices apply from, unless an entry says (default: today).",
        )
        parser.add_argument("--currency", default="USD", help="ISO 4217 code, unless an entry says (default: USD).")
        parser.add_argument("--dry-run", action="store_true", help="Report what would happen and save nothing.")

    def handle(self, *args, **options):
        entries = self._read(options["file"])
        effective_from = self._date(options["effective_from"])
        currency = options["currency"].upper()
        try:
            currency_validator(currency)
        except ValidationError:
            raise CommandError(f"--currency {options['currency']!r} is not a three-letter ISO 4217 code.") from None

        with transaction.atomic():
            report = services.import_prices(entries=entries, effective_from=effective_from, currency=currency)
            if options["dry_run"]:
                transaction.set_rollback(True)

        prefix = "Dry run, nothing saved: would create" if options["dry_run"] else "Created"
        self.stdout.write(
            f"{prefix} {report.created} prices ({report.models_created} new models), "
            f"{report.superseded} superseded, {report.unchanged} unchanged, {report.aliased} new aliases, "
            f"{len(report.skipped)} skipped."
        )
        verbosity = options["verbosity"]
        if verbosity == 0 or not report.skipped:
            return
        self.stdout.write("Skipped, by reason:")
        for reason, count in report.skip_reasons.most_common():
            self.stdout.write(f"  {reason}: {count}")
        shown = report.skipped if verbosity >= 2 else report.skipped[:SKIPPED_SHOWN]
        for key, reason in shown:
            self.stdout.write(f"  skipped {key}: {reason}")
        if len(shown) < len(report.skipped):
            self.stdout.write(f"  … and {len(report.skipped) - len(shown)} more skipped (-v 2 lists them all).")

    def _read(self, path: str) -> dict:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CommandError(f"No such file: {path}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {path}: {error}") from None
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"{path} is not valid JSON: {error}") from None
        if not isinstance(entries, dict):
            raise CommandError(f"{path} must hold a JSON object of entries keyed by model name.")
        return entries

    def _date(self, value: str | None) -> datetime.date:
        if value is None:
            return timezone.localdate()
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            raise CommandError(f"--effective-from {value!r} is not a date in the form YYYY-MM-DD.") from None
