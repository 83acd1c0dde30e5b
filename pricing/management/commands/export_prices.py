"""Export the public prices in force on a date as a LiteLLM price file."""

import datetime
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pricing import services


class Command(BaseCommand):
    help = "Export the public prices in force on a date in LiteLLM's model_prices_and_context_window.json format."

    def add_arguments(self, parser):
        parser.add_argument("file", help='Path to write, or "-" for standard output.')
        parser.add_argument("--on", metavar="YYYY-MM-DD", help="Date the prices are in force on (default: today).")

    def handle(self, *args, **options):
        on = None
        if options["on"] is not None:
            try:
                on = datetime.date.fromisoformat(options["on"])
            except ValueError:
                raise CommandError(f"--on {options['on']!r} is not a date in the form YYYY-MM-DD.") from None
        entries = services.export_prices(on=on)
        text = json.dumps(entries, indent=4, ensure_ascii=False) + "\n"
        if options["file"] == "-":
            self.stdout.write(text, ending="")
            return
        try:
            Path(options["file"]).write_text(text, encoding="utf-8")
        except OSError as error:
            raise CommandError(f"Cannot write {options['file']}: {error}") from None
        self.stdout.write(f"Exported {len(entries)} prices to {options['file']}.")
