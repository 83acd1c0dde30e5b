"""Speed of the portfolio at scale, each figure against its SQL floor (the measuring is ``performance/bench.py``)."""

import argparse
import json

from django.core.management.base import BaseCommand, CommandError

from performance import bench


class Command(BaseCommand):
    help = (
        "Generate a synthetic portfolio in a database of its own (dropped afterwards), measure the summary, "
        "recompute, price-change propagation, list pages, bulk upsert and recompute memory against their "
        f"floors, and print a table. Speed targets apply from {bench.SPEED_TARGETS_FROM:,} use cases; "
        "exits 1 when a target is missed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--use-cases", type=int, default=100_000, help="Use cases to generate (default 100,000).")
        parser.add_argument("--deployments-per-use-case", type=int, default=2, help="Default 2.")
        parser.add_argument("--json", dest="json_file", metavar="FILE", help="Also write the figures to FILE as JSON.")
        parser.add_argument("--keep", action="store_true", help="Keep the bench database instead of dropping it.")
        # Internal: the memory probe that the bench runs in a subprocess on its own database.
        parser.add_argument("--recompute-rss-probe", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args, use_cases, deployments_per_use_case, json_file, keep, recompute_rss_probe, **options):
        if recompute_rss_probe:
            self.stdout.write(json.dumps(bench.recompute_rss_probe()))
            return
        if use_cases < 10 or deployments_per_use_case < 1:
            raise CommandError("Give at least 10 use cases and 1 deployment per use case.")
        report = bench.run(
            use_cases=use_cases, deployments_per_use_case=deployments_per_use_case, keep=keep, log=self.stdout.write
        )
        self.stdout.write("")
        note = (
            ""
            if report.use_cases >= bench.SPEED_TARGETS_FROM
            else (f" (speed targets apply from {bench.SPEED_TARGETS_FROM:,} use cases)")
        )
        self.stdout.write(f"{report.use_cases:,} use cases, {report.deployments:,} deployments, {report.vendor}{note}")
        self.stdout.write(report.table())
        if json_file:
            with open(json_file, "w") as handle:
                json.dump(report.as_json(), handle, indent=2, default=str)
        if report.failed:
            raise CommandError("Targets missed: " + "; ".join(figure.name for figure in report.failed), returncode=1)
