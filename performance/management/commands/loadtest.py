"""Throughput and latency of the API under concurrent clients (the load logic is ``performance/loadtest.py``)."""

import json

from django.core.management.base import BaseCommand, CommandError

from performance import loadtest


class Command(BaseCommand):
    help = (
        "Start gunicorn on 127.0.0.1 against the configured database (seeding a demo portfolio when it is "
        "empty), run concurrent API clients (80% reads, 15% upserts, 5% summaries) for a bounded time, and "
        "report throughput and p50/p95/p99 latency. Exits 1 on any failed request or missed limit."
    )

    def add_arguments(self, parser):
        parser.add_argument("--duration", type=float, default=30.0, help="Seconds of load (default 30).")
        parser.add_argument("--clients", type=int, default=8, help="Concurrent clients (default 8).")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2).")
        parser.add_argument(
            "--floor-seconds",
            type=float,
            default=10.0,
            help="Seconds of the floor first: the same clients on a bare Django JSON view (/healthz/) "
            "served by the same gunicorn (default 10; 0 skips it).",
        )
        parser.add_argument(
            "--min-ratio",
            type=float,
            metavar="R",
            help="Fail when the throughput is below R times the floor's (measured in the same run).",
        )
        parser.add_argument("--min-throughput", type=float, metavar="RPS", help="Fail below this many requests/s.")
        parser.add_argument("--max-p95-ms", type=float, metavar="MS", help="Fail above this 95th percentile latency.")
        parser.add_argument(
            "--drain",
            type=float,
            metavar="SECONDS",
            help="Then wait this long for the Celery workers to leave no stale use case and no queued or running "
            "recompute job; fail if they do not.",
        )
        parser.add_argument("--json", dest="json_file", metavar="FILE", help="Also write the figures to FILE as JSON.")

    def handle(
        self,
        *args,
        duration,
        clients,
        workers,
        floor_seconds,
        min_ratio,
        min_throughput,
        max_p95_ms,
        drain,
        json_file,
        **options,
    ):
        if duration <= 0 or clients < 1 or workers < 1 or floor_seconds < 0:
            raise CommandError("Give a positive duration, at least one client and one worker.")
        if min_ratio is not None and not floor_seconds:
            raise CommandError("--min-ratio needs the floor: give --floor-seconds above 0.")
        try:
            result = loadtest.run(
                duration=duration,
                clients=clients,
                workers=workers,
                floor_seconds=floor_seconds,
                drain_timeout=drain,
                log=self.stdout.write,
            )
        except loadtest.NotReady as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"{len(result.samples):,} requests in {result.duration:.1f} s from {clients} clients: "
            f"{result.throughput:.1f} requests/s, {len(result.errors)} errors."
        )
        if result.ratio is not None:
            self.stdout.write(
                f"Floor (bare JSON view, same gunicorn and clients): {result.floor_throughput:.1f} requests/s; "
                f"ratio {result.ratio:.3f}."
            )
        self.stdout.write(result.table())
        if result.drain_seconds is not None:
            drained = result.drain_seconds != float("inf")
            self.stdout.write(
                f"Recompute backlog drained in {result.drain_seconds:.1f} s."
                if drained
                else f"Recompute backlog not drained within {drain:g} s."
            )
        if json_file:
            with open(json_file, "w") as handle:
                json.dump(result.as_json(), handle, indent=2)
        failures = [f"{len(result.errors)} requests failed"] if result.errors else []
        if min_ratio is not None and (result.ratio or 0) < min_ratio:
            failures.append(f"throughput is {result.ratio or 0:.3f} of the floor's, below {min_ratio:g}")
        if min_throughput is not None and result.throughput < min_throughput:
            failures.append(f"throughput {result.throughput:.1f} requests/s is below {min_throughput:g}")
        p95_ms = result.percentiles()["p95"] * 1000
        if max_p95_ms is not None and p95_ms > max_p95_ms:
            failures.append(f"p95 {p95_ms:.1f} ms is above {max_p95_ms:g} ms")
        if result.drain_seconds == float("inf"):
            failures.append(f"the recompute backlog was not drained within {drain:g} s")
        for error in result.errors[:10]:
            self.stderr.write(error)
        if failures:
            raise CommandError("; ".join(failures) + ".", returncode=1)
