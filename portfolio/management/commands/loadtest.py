"""Throughput and latency of the API under concurrent clients (the load logic is ``portfolio/loadtest.py``)."""
import json

from django.core.management.base import BaseCommand, CommandError

from portfolio import loadtest


class Command(BaseCommand):
    help = (
        "Start gunicorn on 127.0.0.1 against the configured database (seeding a demo portfolio when it is "
        "empty), run concurrent API clients (80% reads, 15% upserts, 5% summaries) for a bounded time, and "
        "report throughput and p50/p95/p99 latency. Exits 1 when any request failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--duration", type=float, default=30.0, help="Seconds of load (default 30).")
        parser.add_argument("--clients", type=int, default=8, help="Concurrent clients (default 8).")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2).")
        parser.add_argument("--json", dest="json_file", metavar="FILE", help="Also write the figures to FILE as JSON.")

    def handle(self, *args, duration, clients, workers, json_file, **options):
        if duration <= 0 or clients < 1 or workers < 1:
            raise CommandError("Give a positive duration, at least one client and one worker.")
        result = loadtest.run(duration=duration, clients=clients, workers=workers, log=self.stdout.write)
        self.stdout.write(
            f"{len(result.samples):,} requests in {result.duration:.1f} s from {clients} clients: "
            f"{result.throughput:.1f} requests/s, {len(result.errors)} errors."
        )
        self.stdout.write(result.table())
        if json_file:
            with open(json_file, "w") as handle:
                json.dump(result.as_json(), handle, indent=2)
        if result.errors:
            for error in result.errors[:10]:
                self.stderr.write(error)
            raise CommandError(f"{len(result.errors)} requests failed.", returncode=1)
