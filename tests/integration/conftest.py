"""Real Celery processes on the configured broker, sharing the test database.

These tests need PostgreSQL (a second process must see the test database) and a
broker: run them with DATABASE_URL and CELERY_BROKER_URL set, as ``.ci/run`` does.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
import redis
from django.conf import settings
from django.db import connection, connections, transaction

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate, *, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    return predicate()


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("Worker tests need a database a second process can share: run them with DATABASE_URL=postgres://…")
    credentials = quote(db["USER"] or "") + (":" + quote(db["PASSWORD"]) if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def broker() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)


def unacked_tasks() -> list[dict]:
    """The messages delivered to a worker and not yet acknowledged (kombu keeps them in a hash)."""
    return [json.loads(entry)[0] for entry in broker().hvals("unacked")]


class CeleryProcess:
    def __init__(self, args: list[str], log: Path, env: dict[str, str]):
        self.log = log
        with log.open("w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", *args],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def output(self) -> str:
        return self.log.read_text()

    def children(self) -> list[int]:
        result = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in result.stdout.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def celery_env():
    if not settings.CELERY_BROKER_URL:
        pytest.fail("Worker tests need a broker: set CELERY_BROKER_URL=redis://…")
    return os.environ | {"DJANGO_SETTINGS_MODULE": "config.test_settings", "DATABASE_URL": _database_url()}


@pytest.fixture
def start_worker(tmp_path, celery_env):
    """Start a worker; ``pool="prefork"`` gives it a child process that a test can kill."""
    celery_app.control.purge()
    # Nor any task an earlier test's killed worker left unacknowledged.
    broker().delete("unacked", "unacked_index")
    started: list[CeleryProcess] = []

    def start(*, pool: str = "solo", **env: str) -> CeleryProcess:
        worker = CeleryProcess(
            [
                "worker",
                f"--pool={pool}",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"test-{os.getpid()}-{len(started)}@%h",
            ],
            tmp_path / f"worker-{len(started)}.log",
            celery_env | env,
        )
        started.append(worker)
        if not wait_until(lambda: "ready" in worker.output, timeout=30):
            pytest.fail(f"The Celery worker did not start:\n{worker.output}")
        return worker

    yield start
    for worker in started:
        worker.stop()
        print(worker.output[-5000:])


@pytest.fixture
def celery_worker(start_worker):
    return start_worker()


@pytest.fixture
def celery_beat(tmp_path, celery_env):
    """The scheduler, with the stale and webhook sweeps every two seconds."""
    beat = CeleryProcess(
        ["beat", "--loglevel=INFO", "--schedule", str(tmp_path / "beat-schedule")],
        tmp_path / "beat.log",
        celery_env | {"RECOMPUTE_SWEEP_SECONDS": "2", "WEBHOOK_SWEEP_SECONDS": "2"},
    )
    yield beat
    beat.stop()
    print(beat.output[-3000:])


@pytest.fixture
def redis_control():
    """Stop and start the broker's Redis server (restored after the test whatever happens)."""
    url = urlparse(settings.CELERY_BROKER_URL)
    if url.scheme != "redis" or url.hostname not in ("127.0.0.1", "localhost"):
        pytest.fail("The Redis outage test needs a local Redis broker.")
    port = str(url.port or 6379)
    redis_cli = shutil.which("redis-cli")
    redis_server = shutil.which("redis-server")

    def ping() -> bool:
        return subprocess.run([redis_cli, "-p", port, "ping"], capture_output=True).returncode == 0

    class Control:
        def stop(self) -> None:
            subprocess.run([redis_cli, "-p", port, "shutdown", "nosave"], capture_output=True)
            assert wait_until(lambda: not ping(), timeout=10), "Redis did not stop"

        def start(self) -> None:
            if ping():
                return
            Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    redis_server,
                    "--daemonize",
                    "yes",
                    "--bind",
                    "127.0.0.1",
                    "-::1",
                    "--port",
                    port,
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    "/var/lib/redis",
                ],
                check=True,
            )
            assert wait_until(ping, timeout=10), "Redis did not start"

    control = Control()
    yield control
    control.start()


@pytest.fixture
def postgres_control():
    """Stop and start the local PostgreSQL cluster (started again after the test whatever happens).

    Stopping it ends every connection, the test's own too: the fixture closes them once the
    server is back, so the test and its database teardown reconnect.
    """
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql" or (db["HOST"] or "127.0.0.1") not in ("127.0.0.1", "localhost"):
        pytest.fail("The database fault tests need a local PostgreSQL: run them with DATABASE_URL=postgres://…")
    version = min(os.listdir("/etc/postgresql"))
    port = str(db["PORT"] or 5432)

    def ready() -> bool:
        return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", port], check=False).returncode == 0

    def ctl(action: str) -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
            check=True,
            capture_output=True,
            timeout=60,
        )

    class Control:
        def stop(self) -> None:
            ctl("stop")  # "fast": open transactions roll back, connections end.
            assert wait_until(lambda: not ready(), timeout=10), "PostgreSQL did not stop"

        def start(self) -> None:
            if not ready():
                ctl("start")
            assert wait_until(ready, timeout=30), "PostgreSQL did not start"
            connections.close_all()

    control = Control()
    yield control
    control.start()


@pytest.fixture
def gunicorn_server(tmp_path, celery_env):
    """gunicorn with two sync workers on a free loopback port, serving the test database."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
                "--timeout",
                "30",
                "--log-level",
                "warning",
            ],
            # Persistent connections, as in production: each must pass its health check after a restart.
            cwd=ROOT,
            env=celery_env | {"DATABASE_CONN_MAX_AGE": "60"},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return process.poll() is not None

    if not wait_until(answers, timeout=30) or process.poll() is not None:
        pytest.fail(f"gunicorn did not start:\n{log.read_text()}")
    yield f"127.0.0.1:{port}"
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    print(log.read_text()[-5000:])


@pytest.fixture
def row_lock():
    """Hold a use case's row lock from another connection, so the task that recomputes it
    waits mid-task (for a test to kill its worker there); released after the test at the latest."""
    from portfolio.models import UseCase

    held: list[tuple[threading.Thread, threading.Event]] = []

    def lock(use_case_id: int) -> threading.Event:
        locked, release = threading.Event(), threading.Event()

        def hold() -> None:
            try:
                with transaction.atomic():
                    UseCase.objects.select_for_update().get(pk=use_case_id)
                    locked.set()
                    release.wait(120)
            finally:
                connection.close()

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        assert locked.wait(10), "could not lock the row"
        held.append((thread, release))
        return release

    yield lock
    for thread, release in held:
        release.set()
        thread.join()


def waiting_for_a_lock() -> bool:
    """Whether a connection to the test database is waiting for a row lock (a task, mid-task)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0
