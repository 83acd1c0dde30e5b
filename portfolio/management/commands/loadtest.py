"""Throughput and latency of the API under concurrent clients (the load logic is ``portfolio/loadtest.py``)."""
import json
import time

from django.core.management.base import BaseCommand, CommandError

from portfolio import loadtest
from portfolio.models import UseCase


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
        parser.add_argument("--min-throughput", type=float, default=0.0,
                            help="Fail below this many requests/s (default: no bar).")
        parser.add_argument("--max-p95-ms", type=float, default=0.0,
                            help="Fail when the 95th percentile latency exceeds this (default: no bar).")
        parser.add_argument("--drain", type=float, default=0.0, metavar="SECONDS",
                            help="After the load, wait up to SECONDS for a running Celery worker to recompute every "
                                 "flagged use case, and fail if any is left (default: do not wait).")

    def handle(self, *args, duration, clients, workers, json_file, min_throughput, max_p95_ms, drain, **options):
        if duration <= 0 or clients < 1 or workers < 1:
            raise CommandError("Give a positive duration, at least one client and one worker.")
        result = loadtest.run(duration=duration, clients=clients, workers=workers, log=self.stdout.write)
        self.stdout.write(
            f"{len(result.samples):,} requests in {result.duration:.1f} s from {clients} clients: "
            f"{result.throughput:.1f} requests/s, {len(result.errors)} errors."
        )
        self.stdout.write(result.table())
        figures = result.as_json()
        if drain:
            figures["drain"] = self.drain(drain)
        if json_file:
            with open(json_file, "w") as handle:
                json.dump(figures, handle, indent=2)
        if result.errors:
            for error in result.errors[:10]:
                self.stderr.write(error)
            raise CommandError(f"{len(result.errors)} requests failed.", returncode=1)
        failures = []
        if result.throughput < min_throughput:
            failures.append(f"{result.throughput:.1f} requests/s is below {min_throughput:g}")
        p95_ms = result.percentiles()["p95"] * 1000
        if max_p95_ms and p95_ms > max_p95_ms:
            failures.append(f"p95 {p95_ms:.1f} ms is above {max_p95_ms:g} ms")
        if drain and figures["drain"]["left"]:
            failures.append(f"{figures['drain']['left']} use cases still wait for a recompute after {drain:g} s")
        if failures:
            raise CommandError("; ".join(failures) + ".", returncode=1)

    def drain(self, timeout: float) -> dict[str, float | int]:
        """Wait for the recompute backlog the load left (use cases flagged ``needs_recompute``) to empty."""
        flagged = UseCase.objects.filter(needs_recompute=True)
        backlog, started = flagged.count(), time.monotonic()
        left = backlog
        while left and time.monotonic() - started < timeout:
            time.sleep(0.5)
            left = flagged.count()
        seconds = time.monotonic() - started
        self.stdout.write(f"Recompute backlog of {backlog} use cases: {left} left after {seconds:.1f} s.")
        return {"backlog": backlog, "left": left, "seconds": round(seconds, 1)}
