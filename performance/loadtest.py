"""The load test behind ``manage.py loadtest``: gunicorn on loopback and concurrent API clients.

gunicorn serves the configured database with real workers; client threads (a
connection per request, as gunicorn's sync workers answer) send a mix of 80 % reads,
15 % upserts by external id and 5 % portfolio summaries for a bounded time, as a
dedicated token user.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import io
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.authtoken.models import Token

from portfolio.models import MANAGERS_GROUP, RecomputeJob, Team, UseCase

LOAD_USER = "loadtest"
LOAD_TEAM = "load-test"
MIX = (("read", 80), ("upsert", 15), ("summary", 5))
FLOOR = "floor"
# Upserts cycle over this many external ids per client: creates first, updates after.
UPSERT_KEYS = 50
LIST_PAGE_SIZE = 20


class NotReady(Exception):
    """The configured database cannot serve the load test as it is."""


@dataclass
class Sample:
    kind: str
    seconds: float
    status: int  # 0: no answer (connection error)


@dataclass
class Result:
    duration: float
    clients: int
    workers: int
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    drain_seconds: float | None = None  # None: not waited for; inf: not drained in time
    # The floor: the same clients and gunicorn on a bare Django JSON view (/healthz/), just before.
    floor_requests: int = 0
    floor_duration: float = 0.0

    @property
    def floor_throughput(self) -> float:
        return self.floor_requests / self.floor_duration if self.floor_duration else 0.0

    @property
    def ratio(self) -> float | None:
        """Throughput as a share of the floor's: the figure a busier or slower machine changes least."""
        return self.throughput / self.floor_throughput if self.floor_throughput else None

    @property
    def throughput(self) -> float:
        return len(self.samples) / self.duration if self.duration else 0.0

    def percentiles(self, kind: str | None = None) -> dict[str, float]:
        times = sorted(s.seconds for s in self.samples if kind is None or s.kind == kind)
        return {f"p{q}": percentile(times, q) for q in (50, 95, 99)}

    def table(self) -> str:
        lines = [f"{'requests':<10} {'count':>7} {'p50':>9} {'p95':>9} {'p99':>9}"]
        for kind in [None, *(name for name, _ in MIX)]:
            count = sum(1 for s in self.samples if kind is None or s.kind == kind)
            if not count:
                continue
            p = self.percentiles(kind)
            lines.append(f"{kind or 'all':<10} {count:>7} " + " ".join(f"{p[k] * 1000:>6.1f} ms" for k in p))
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration,
            "clients": self.clients,
            "gunicorn_workers": self.workers,
            "requests": len(self.samples),
            "throughput_rps": self.throughput,
            "floor_throughput_rps": self.floor_throughput,
            "ratio_to_floor": self.ratio,
            "errors": len(self.errors),
            "error_samples": self.errors[:20],
            "backlog_drained_s": None if self.drain_seconds in (None, float("inf")) else self.drain_seconds,
            "backlog_drained": None if self.drain_seconds is None else self.drain_seconds != float("inf"),
            "latency_s": {kind or "all": self.percentiles(kind) for kind in [None, *(name for name, _ in MIX)]},
        }


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values; 0 when there are none."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n × q / 100)
    return sorted_values[int(rank) - 1]


def prepare() -> tuple[str, list[int], int]:
    """The token of the dedicated user, use case ids to read and how many list pages there are.

    Seeds the demo portfolio when the database has no use case yet.
    """
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise NotReady("The configured database has unapplied migrations: run `manage.py migrate` first.")
    if not UseCase.objects.exists():
        # Demo users get a throw-away password: the load test only ever uses its token.
        call_command("seed_demo", password=secrets.token_urlsafe(16), stdout=io.StringIO())
    user, _created = get_user_model().objects.get_or_create(username=LOAD_USER)
    if user.has_usable_password():
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=MANAGERS_GROUP))
    Team.objects.get_or_create(slug=LOAD_TEAM, defaults={"name": "Load test"})
    token, _created = Token.objects.get_or_create(user=user)
    ids = list(UseCase.objects.order_by("?").values_list("pk", flat=True)[:500])
    # Upserts only add rows during the run, so every one of these pages exists throughout.
    pages = max(1, -(-UseCase.objects.count() // LIST_PAGE_SIZE))
    return token.key, ids, pages


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(*, port: int, workers: int, log: Callable[[str], None]) -> Iterator[None]:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--timeout",
        "60",
    ]
    process = subprocess.Popen(
        command,
        cwd=Path(settings.BASE_DIR),
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{process.stderr.read()[-3000:]}")
            try:
                status, _body = request(port, "GET", "/api/v1/", token=None)
                if status:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer within 30 s.")
            time.sleep(0.2)
        log(f"gunicorn with {workers} workers on 127.0.0.1:{port} (pid {process.pid}).")
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def request(
    port: int, method: str, path: str, *, token: str | None, body: Any = None, timeout: float = 30.0
) -> tuple[int, bytes]:
    """One request on its own connection, read to the end; ``(status, body)``.

    Plain sockets rather than ``http.client``: the clients share the machine's cores with
    the server they measure, and ``http.client`` spends more on parsing headers (with the
    email package) than the request costs to send. gunicorn's sync workers close every
    connection after its answer, so nothing is lost by not keeping one open.
    """
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Accept: application/json",
        "Connection: close",
        # As the TLS-terminating proxy in production says: no redirect to HTTPS.
        "X-Forwarded-Proto: https",
        f"Content-Length: {len(payload)}",
    ]
    if body is not None:
        lines.append("Content-Type: application/json")
    if token:
        lines.append(f"Authorization: Token {token}")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + payload)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    head, _, content = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ConnectionError(f"not an HTTP answer: {head[:80]!r}")
    return int(status_line[1]), content


class Client(threading.Thread):
    def __init__(
        self,
        number: int,
        *,
        port: int,
        token: str,
        ids: list[int],
        pages: int,
        deadline: float,
        result: Result,
        lock: threading.Lock,
    ):
        super().__init__(name=f"load-client-{number}", daemon=True)
        self.number, self.port, self.token, self.ids, self.pages = number, port, token, ids, pages
        self.deadline, self.result, self.lock = deadline, result, lock
        self.rng = random.Random(number)
        self.upserts = 0

    def next_request(self) -> tuple[str, str, str, Any]:
        kind = self.rng.choices([name for name, _ in MIX], weights=[weight for _, weight in MIX])[0]
        if kind == "summary":
            return kind, "GET", "/api/v1/portfolio/summary/", None
        if kind == "upsert":
            self.upserts += 1
            key = f"load-{self.number}-{self.upserts % UPSERT_KEYS}"
            body = {
                "title": f"Load test {key}",
                "stage": "poc",
                "currency": "USD",
                "hours_saved_per_month": str(Decimal(self.rng.randint(0, 50_000)).scaleb(-2)),
                "hourly_rate": "60.00",
                "one_time_cost": str(self.rng.randint(0, 90_000)),
                "horizon_months": 36,
            }
            return kind, "PUT", f"/api/v1/use-cases/by-external-id/{LOAD_TEAM}/{key}/", body
        if self.rng.random() < 0.5 and self.ids:
            return kind, "GET", f"/api/v1/use-cases/{self.rng.choice(self.ids)}/", None
        page = self.rng.randint(1, min(self.pages, 50))
        return kind, "GET", f"/api/v1/use-cases/?page_size={LIST_PAGE_SIZE}&page={page}", None

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            kind, method, path, body = self.next_request()
            if kind == FLOOR:
                try:
                    status, _content = request(self.port, method, path, token=None)
                except OSError:
                    status = 0
                with self.lock:
                    self.result.floor_requests += status == 200
                continue
            started = time.perf_counter()
            try:
                status, content = request(self.port, method, path, token=self.token, body=body)
            except OSError as error:
                status, content = 0, repr(error).encode()
            elapsed = time.perf_counter() - started
            with self.lock:
                self.result.samples.append(Sample(kind, elapsed, status))
                if not 200 <= status < 300:
                    self.result.errors.append(f"{method} {path} → {status}: {content[:200]!r}")


def backlog() -> int:
    """Recompute work still to do: use cases flagged stale, and jobs queued or running."""
    jobs = RecomputeJob.objects.filter(status__in=[RecomputeJob.Status.QUEUED, RecomputeJob.Status.RUNNING])
    return UseCase.objects.filter(needs_recompute=True).count() + jobs.count()


def drain(*, timeout: float) -> float:
    """Seconds until the workers have done the recompute work the load left; inf past ``timeout``."""
    started = time.monotonic()
    while backlog():
        if time.monotonic() - started > timeout:
            return float("inf")
        time.sleep(0.5)
    return time.monotonic() - started


class FloorClient(Client):
    """Asks only for the bare JSON view: what the same gunicorn serves with no work at all."""

    def next_request(self) -> tuple[str, str, str, Any]:
        return FLOOR, "GET", "/healthz/", None


def _load(client_class: type[Client], *, clients: int, seconds: float, **kwargs: Any) -> float:
    """Run ``clients`` threads of ``client_class`` for ``seconds``; the time they took."""
    started = time.monotonic()
    threads = [client_class(n, deadline=started + seconds, **kwargs) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def run(
    *,
    duration: float,
    clients: int,
    workers: int = 2,
    floor_seconds: float = 10.0,
    drain_timeout: float | None = None,
    log: Callable[[str], None] = print,
) -> Result:
    token, ids, pages = prepare()
    port = free_port()
    result = Result(duration=duration, clients=clients, workers=workers)
    with gunicorn(port=port, workers=workers, log=log):
        lock = threading.Lock()
        # Warm each worker (imports, URL resolver, first connection) before measuring.
        for _ in range(workers * 2):
            request(port, "GET", "/api/v1/portfolio/summary/", token=token)
        shared = {"port": port, "token": token, "ids": ids, "pages": pages, "result": result, "lock": lock}
        if floor_seconds > 0:
            result.floor_duration = _load(FloorClient, clients=clients, seconds=floor_seconds, **shared)
        result.duration = _load(Client, clients=clients, seconds=duration, **shared)
    if drain_timeout is not None:
        log(f"Waiting up to {drain_timeout:g} s for the workers to drain the recompute backlog ({backlog()} left)…")
        result.drain_seconds = drain(timeout=drain_timeout)
    return result
