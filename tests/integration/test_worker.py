"""The recompute pipeline end to end: real worker, real Redis, real PostgreSQL."""

import datetime
import os
import re
import signal
import time
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from portfolio import services
from portfolio.models import CostSnapshot, RecomputeJob, UseCase
from pricing import services as pricing_services
from tests.factories import DeploymentFactory, UseCaseFactory
from tests.integration.conftest import wait_until, waiting_for_a_lock

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SUPPORT_BOT = {"requests_per_month": 1_000_000, "avg_input_tokens": 1_000, "avg_output_tokens": 300}


def computed(use_case_id, monthly_cost):
    use_case = UseCase.objects.get(pk=use_case_id)
    return not use_case.needs_recompute and use_case.monthly_cost == Decimal(monthly_cost)


def test_saving_a_deployment_is_recomputed_by_the_worker(celery_worker, team, gpt4o):
    use_case = services.create_use_case(team=team, title="Support bot")
    services.create_deployment(use_case=use_case, model=gpt4o, status="active", **SUPPORT_BOT)

    assert wait_until(lambda: computed(use_case.pk, "5500.00"), timeout=30)


def test_a_new_price_reprices_every_affected_use_case(celery_worker, team, gpt4o, llama70b):
    on_gpt4o = [services.create_use_case(team=team, title=f"Bot {n}") for n in range(3)]
    for use_case in on_gpt4o:
        services.create_deployment(use_case=use_case, model=gpt4o, status="active", **SUPPORT_BOT)
    on_llama = services.create_use_case(team=team, title="Llama bot")
    services.create_deployment(use_case=on_llama, model=llama70b, status="active", **SUPPORT_BOT)
    assert wait_until(lambda: all(computed(u.pk, "5500.00") for u in on_gpt4o), timeout=30)
    assert wait_until(lambda: computed(on_llama.pk, "725.00"), timeout=30)

    pricing_services.add_price(
        model=gpt4o,
        input_per_million=Decimal("2.00"),
        output_per_million=Decimal("8.00"),
        effective_from=datetime.date.today(),
    )

    assert wait_until(lambda: all(computed(u.pk, "4400.00") for u in on_gpt4o), timeout=30)
    latest = CostSnapshot.objects.filter(use_case=on_gpt4o[0]).latest()
    assert (latest.previous_monthly_cost, latest.monthly_cost) == (Decimal("5500.00"), Decimal("4400.00"))
    assert computed(on_llama.pk, "725.00")
    job = wait_until(
        lambda: RecomputeJob.objects.filter(status="finished", scope__model_ids=[gpt4o.pk]).first(), timeout=30
    )
    assert (job.total, job.changed, job.monthly_cost_delta) == (3, 3, Decimal("-3300.00"))


def test_nothing_is_lost_while_redis_is_down(redis_control, start_worker, celery_beat, team, member, gpt4o, measured):
    start_worker()
    client = APIClient()
    client.force_authenticate(member)
    redis_control.stop()
    timings, statuses = [], []
    for n in range(200):
        started = time.monotonic()
        answer = client.post(
            "/api/v1/use-cases/",
            {
                "team": team.slug,
                "title": f"Written during the outage {n}",
                "other_monthly_benefit": str(n),
            },
            format="json",
        )
        timings.append(time.monotonic() - started)
        statuses.append(answer.status_code)
    assert statuses == [201] * 200
    assert max(timings) < 1.5, f"a write took {max(timings):.2f}s while the broker was down"
    assert UseCase.objects.filter(needs_recompute=True).count() == 200
    measured(f"200 writes with Redis down: slowest {max(timings):.3f}s, mean {sum(timings) / 200:.3f}s")

    redis_control.start()
    back = time.monotonic()

    assert wait_until(lambda: not UseCase.objects.filter(needs_recompute=True).exists(), timeout=60)
    measured(f"all 200 recomputed {time.monotonic() - back:.1f}s after Redis came back")
    assert UseCase.objects.get(title="Written during the outage 7").monthly_benefit == Decimal("7.00")


TASK_ID = r"\[([0-9a-f-]{36})\]"


def test_a_worker_process_killed_mid_job_loses_nothing(start_worker, row_lock, team, gpt4o, measured):
    count = 800
    use_cases = UseCaseFactory.create_batch(count, team=team)
    for use_case in use_cases:
        DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)
    UseCase.objects.update(needs_recompute=False)  # Left to the job, not to the start-up sweep.
    # A use case halfway through stays locked: the pool process stops there, mid-task.
    release = row_lock(sorted(u.pk for u in use_cases)[count // 2])
    worker = start_worker(pool="prefork", RECOMPUTE_CHUNK_SIZE="25")
    job = services.start_recompute_job(reason="interrupted", scope={"all": True})

    assert wait_until(waiting_for_a_lock, timeout=60), "the worker never reached the locked use case"
    for child in worker.children():
        os.kill(child, signal.SIGKILL)
    killed_at = time.monotonic()
    log_at_kill = worker.output
    release.set()
    # The task the child was running: received, not yet finished.
    running = set(re.findall(TASK_ID + " received", log_at_kill)) - set(re.findall(TASK_ID + " succeeded", log_at_kill))
    assert running, "the kill landed between two tasks"

    rerun = wait_until(lambda: all(f"[{task}] succeeded" in worker.output for task in running), timeout=10)
    assert rerun, f"the killed task {running} did not run again within 10 s:\n{worker.output[-3000:]}"
    measured(f"the killed task ran again and succeeded {time.monotonic() - killed_at:.1f}s after the kill")
    finished = wait_until(lambda: RecomputeJob.objects.get(pk=job.pk).status == "finished", timeout=120)
    job.refresh_from_db()
    assert finished, f"job stuck at {job.done}/{job.total}"
    assert "WorkerLostError" in worker.output, "the kill landed while a chunk was running"
    assert (job.done, job.total) == (count, count)
    assert not UseCase.objects.filter(needs_recompute=True).exists()
    assert set(UseCase.objects.values_list("monthly_cost", flat=True)) == {Decimal("5500.00")}
