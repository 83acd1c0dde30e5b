"""The broker failing in ways other than being down (see test_worker.py for that):
a Redis that accepts connections but never answers, and a worker killed outright."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pytest
from rest_framework.authtoken.models import Token

from portfolio import services
from portfolio.models import RecomputeJob, UseCase
from tests.factories import DeploymentFactory, UseCaseFactory
from tests.integration.conftest import ROOT, unacked_tasks, wait_until, waiting_for_a_lock

pytestmark = [pytest.mark.worker, pytest.mark.faults, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SUPPORT_BOT = {"requests_per_month": 1_000_000, "avg_input_tokens": 1_000, "avg_output_tokens": 300}


@pytest.fixture
def silent_redis():
    """A TCP server on a free loopback port that accepts connections and never answers: a hung broker."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


# Run in a process of its own, whose Celery app publishes to the silent broker.
WRITES = """
import json, sys, time
import django
django.setup()
from rest_framework.test import APIClient
client = APIClient(HTTP_AUTHORIZATION="Token " + sys.argv[1], SERVER_NAME="localhost")
timings = []
for n in range(int(sys.argv[3])):
    started = time.monotonic()
    answer = client.post("/api/v1/use-cases/", {"team": sys.argv[2], "title": f"Broker hung {n}",
                                               "other_monthly_benefit": str(n)}, format="json")
    timings.append((answer.status_code, time.monotonic() - started))
    if answer.status_code != 201:
        print(answer.content[:500], file=sys.stderr)
print(json.dumps(timings))
"""


def test_writes_succeed_within_3s_when_redis_accepts_but_never_answers(
    silent_redis, celery_env, start_worker, team, member, measured
):
    token = Token.objects.create(user=member).key

    result = subprocess.run(
        [sys.executable, "-c", WRITES, token, team.slug, "5"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=celery_env | {"CELERY_BROKER_URL": silent_redis},
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    timings = json.loads(result.stdout.strip().splitlines()[-1])
    assert [status for status, _seconds in timings] == [201] * 5, result.stderr[-2000:]
    slowest = max(seconds for _status, seconds in timings)
    assert slowest < 3, f"a write took {slowest:.2f}s with a hung broker"
    assert "Could not enqueue portfolio.tasks.recompute_use_case" in result.stderr
    measured(f"5 writes with a hung broker: slowest {slowest:.2f}s")
    assert UseCase.objects.filter(needs_recompute=True).count() == 5

    # Flagged in the write's transaction, so the sweep on the real broker recomputes them.
    start_worker()
    assert wait_until(lambda: not UseCase.objects.filter(needs_recompute=True).exists(), timeout=60)
    assert UseCase.objects.get(title="Broker hung 3").monthly_benefit == Decimal("3.00")


def test_a_worker_killed_outright_mid_task_has_its_task_redelivered_within_30s(
    start_worker, row_lock, team, gpt4o, measured
):
    count = 600
    use_cases = UseCaseFactory.create_batch(count, team=team)
    for use_case in use_cases:
        DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)
    # Not stale, so the worker's start-up sweep leaves them to the job.
    UseCase.objects.update(needs_recompute=False)
    # A use case of the eighth chunk stays locked: the worker stops there, mid-task.
    release = row_lock(sorted(u.pk for u in use_cases)[150])
    worker = start_worker(RECOMPUTE_CHUNK_SIZE="20")  # Solo pool: the task runs in the main process.
    job = services.start_recompute_job(reason="worker killed", scope={"all": True})
    assert wait_until(waiting_for_a_lock, timeout=60), "the worker never reached the locked use case"

    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait()
    killed_at = time.monotonic()
    release.set()
    in_flight = [
        task["headers"]["id"]
        for task in unacked_tasks()
        if task["headers"]["task"].endswith("recompute_job_chunk")
        and task["headers"]["argsrepr"].startswith(f"({job.pk},")
    ]
    assert in_flight, "the kill landed between two tasks"
    done_at_kill = RecomputeJob.objects.get(pk=job.pk).done

    # A new worker, with the default visibility timeout: the dead worker's task comes back to it.
    successor = start_worker(RECOMPUTE_CHUNK_SIZE="20")
    rerun = wait_until(lambda: all(f"[{task}] succeeded" in successor.output for task in in_flight), timeout=30)
    rerun_after = time.monotonic() - killed_at
    assert rerun, f"the killed worker's task {in_flight} did not run again within 30 s"
    finished = wait_until(lambda: RecomputeJob.objects.get(pk=job.pk).status == "finished", timeout=30)

    job.refresh_from_db()
    assert finished, f"job stuck at {job.done}/{job.total} (at {done_at_kill} when the worker was killed)"
    measured(
        f"worker killed with {done_at_kill}/{count} done: its task ran again {rerun_after:.1f}s after the kill, "
        f"the job finished {time.monotonic() - killed_at:.1f}s after it"
    )
    assert (job.done, job.total) == (count, count)
    assert not UseCase.objects.filter(needs_recompute=True).exists()
    assert set(UseCase.objects.values_list("monthly_cost", flat=True)) == {Decimal("5500.00")}
