"""Compile the translation catalogues to the .mo files Django reads, in pure Python.

The same job as ``manage.py compilemessages`` without GNU gettext on the machine:
polib writes every translated, non-fuzzy entry of each ``locale/<lang>/LC_MESSAGES/*.po``
beside it as ``.mo``.
"""

import os
from pathlib import Path

import polib
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Compile locale/*/LC_MESSAGES/*.po to .mo with polib (no GNU gettext needed)."

    def handle(self, *args, **options):
        compiled = 0
        for locale_path in settings.LOCALE_PATHS:
            for po_path in sorted(Path(locale_path).glob("*/LC_MESSAGES/*.po")):
                catalogue = polib.pofile(str(po_path))
                # Written beside it, then renamed over the old one: a process reading the
                # catalogue meanwhile (a test run, a server) sees the old file or the new.
                partial = po_path.with_suffix(f".mo.{os.getpid()}")
                catalogue.save_as_mofile(str(partial))
                os.replace(partial, po_path.with_suffix(".mo"))
                compiled += 1
                if options["verbosity"] > 1:
                    self.stdout.write(f"{po_path}: {catalogue.percent_translated()}% translated")
        self.stdout.write(self.style.SUCCESS(f"Compiled {compiled} translation catalogue(s)."))
