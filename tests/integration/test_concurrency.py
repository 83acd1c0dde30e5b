"""Concurrent recomputes of the same records: one effect, the same result (PostgreSQL row locks)."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection

from portfolio import services
from portfolio.models import CostSnapshot, RecomputeChunk, RecomputeJob, UseCase
from pricing import services as pricing_services
from tests.factories import DeploymentFactory, UseCaseFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SUPPORT_BOT = {"requests_per_month": 1_000_000, "avg_input_tokens": 1_000, "avg_output_tokens": 300}


def run_together(target, times: int = 4) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(times)

    def run():
        try:
            barrier.wait()
            target()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.fixture(autouse=True)
def needs_postgres():
    if connection.vendor != "postgresql":
        pytest.fail("Concurrency tests need PostgreSQL row locks: run them with DATABASE_URL=postgres://…")


def test_concurrent_recomputes_of_one_use_case_write_one_snapshot(team, gpt4o):
    use_case = UseCaseFactory(team=team)
    DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)
    services.recompute_use_case(use_case_id=use_case.pk)
    pricing_services.add_price(
        model=gpt4o,
        input_per_million=Decimal("2.00"),
        output_per_million=Decimal("8.00"),
        effective_from=datetime.date.today(),
    )

    errors = run_together(lambda: services.recompute_use_case(use_case_id=use_case.pk))

    assert errors == []
    assert UseCase.objects.get(pk=use_case.pk).monthly_cost == Decimal("4400.00")
    assert CostSnapshot.objects.filter(use_case=use_case, monthly_cost=Decimal("4400.00")).count() == 1


def test_a_chunk_delivered_twice_at_once_counts_once(team, gpt4o):
    use_cases = UseCaseFactory.create_batch(3, team=team)
    job = RecomputeJob.objects.create(reason="x", scope={"all": True}, status="running", total=3)
    ids = [u.pk for u in use_cases]

    errors = run_together(lambda: services.recompute_job_chunk(job_id=job.pk, use_case_ids=ids))

    job.refresh_from_db()
    assert errors == []
    assert (job.done, job.status) == (3, "finished")
    assert RecomputeChunk.objects.filter(job=job).count() == 1
