import datetime
from decimal import Decimal

import pytest
from django.core.management import call_command

from portfolio import services, tasks
from portfolio.models import PortfolioSnapshot, RecomputeChunk, RecomputeJob, UseCase
from pricing import services as pricing_services
from tests.factories import DeploymentFactory, UseCaseFactory

pytestmark = pytest.mark.django_db

SUPPORT_BOT = {"requests_per_month": 1_000_000, "avg_input_tokens": 1_000, "avg_output_tokens": 300}


@pytest.fixture
def small_chunks(settings):
    settings.RECOMPUTE_CHUNK_SIZE = 2


def bots(team, model, count):
    use_cases = []
    for _ in range(count):
        use_case = UseCaseFactory(team=team)
        DeploymentFactory(use_case=use_case, model=model, **SUPPORT_BOT)
        use_cases.append(use_case)
    services.recompute_use_cases(use_case_ids=[u.pk for u in use_cases])
    return use_cases


def test_starting_a_job_queues_it_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        job = services.start_recompute_job(reason="test", scope={"all": True})
    assert job.status == RecomputeJob.Status.QUEUED
    assert len(callbacks) == 1


def test_full_job_runs_in_chunks_and_reports_progress(team, gpt4o, small_chunks):
    bots(team, gpt4o, 5)
    UseCase.objects.update(needs_recompute=True)
    job = services.start_recompute_job(reason="full", scope={"all": True})

    job = services.run_recompute_job(job_id=job.pk, inline=True)

    assert (job.status, job.total, job.done, job.progress_pct) == ("finished", 5, 5, 100)
    assert job.chunks.count() == 3
    assert job.started_at and job.finished_at
    assert job.monthly_cost_before == job.monthly_cost_after == Decimal("27500.00")
    assert not UseCase.objects.filter(needs_recompute=True).exists()


def test_a_new_price_reports_its_effect_across_the_affected_use_cases(team, gpt4o, llama70b):
    bots(team, gpt4o, 3)
    bots(team, llama70b, 2)

    pricing_services.add_price(
        model=gpt4o,
        input_per_million=Decimal("2.00"),
        output_per_million=Decimal("8.00"),
        effective_from=datetime.date.today(),
    )
    job = services.run_recompute_job(job_id=RecomputeJob.objects.latest().pk, inline=True)

    assert job.scope == {"model_ids": [gpt4o.pk]}
    assert (job.total, job.changed) == (3, 3)
    assert (job.monthly_cost_before, job.monthly_cost_after) == (Decimal("16500.00"), Decimal("13200.00"))
    assert job.monthly_cost_delta == Decimal("-3300.00")
    assert set(UseCase.objects.values_list("monthly_cost", flat=True)) == {Decimal("4400.00"), Decimal("725.00")}


def test_a_redelivered_chunk_is_counted_once(team, gpt4o):
    use_cases = bots(team, gpt4o, 2)
    job = services.start_recompute_job(reason="x", scope={"all": True})
    RecomputeJob.objects.filter(pk=job.pk).update(status="running", total=2)
    ids = [u.pk for u in use_cases]

    services.recompute_job_chunk(job_id=job.pk, use_case_ids=ids)
    services.recompute_job_chunk(job_id=job.pk, use_case_ids=ids)

    job.refresh_from_db()
    assert (job.done, job.status) == (2, "finished")
    assert RecomputeChunk.objects.filter(job=job).count() == 1


def test_running_a_job_twice_gives_the_same_result(team, gpt4o, small_chunks):
    bots(team, gpt4o, 3)
    job = services.start_recompute_job(reason="x", scope={"all": True})
    RecomputeJob.objects.filter(pk=job.pk).update(status="running")  # as if a worker died mid-way

    first = services.run_recompute_job(job_id=job.pk, inline=True)
    second = services.run_recompute_job(job_id=job.pk, inline=True)

    assert (second.done, second.total, second.status) == (first.done, first.total, "finished")


def test_job_of_a_deleted_use_case_still_finishes(team, gpt4o):
    use_cases = bots(team, gpt4o, 2)
    job = services.start_recompute_job(reason="x", scope={"use_case_ids": [u.pk for u in use_cases]})
    services.delete_use_case(use_case=use_cases[0])
    assert services.run_recompute_job(job_id=job.pk, inline=True).status == "finished"


def test_nightly_job_stores_one_snapshot_a_day(team, gpt4o, django_capture_on_commit_callbacks):
    bots(team, gpt4o, 2)
    with django_capture_on_commit_callbacks():
        job_id = tasks.nightly_portfolio()
    services.run_recompute_job(job_id=job_id, inline=True)
    services.take_portfolio_snapshot()

    snapshot = PortfolioSnapshot.objects.get()
    assert (snapshot.use_cases, snapshot.monthly_cost, snapshot.currency) == (2, Decimal("11000.00"), "USD")
    assert snapshot.by_team["support"]["monthly_cost"] == "11000.00"
    assert snapshot.by_model["openai/gpt-4o"]["count"] == 2


def test_lost_jobs_are_requeued_by_the_sweep(monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.run_recompute_job, "apply_async", lambda args, countdown=None: sent.append(args[0]))
    old = RecomputeJob.objects.create(reason="lost", scope={"all": True})
    RecomputeJob.objects.filter(pk=old.pk).update(created_at=old.created_at - datetime.timedelta(minutes=5))
    RecomputeJob.objects.create(reason="just queued", scope={"all": True})

    assert services.requeue_lost_jobs() == 1
    assert sent == [old.pk]


def test_broker_down_when_starting_a_job_keeps_the_job(monkeypatch, django_capture_on_commit_callbacks):
    def broker_down(*args, **kwargs):
        raise ConnectionError("no broker")

    monkeypatch.setattr(tasks.run_recompute_job, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.start_recompute_job(reason="x", scope={"all": True})
    assert RecomputeJob.objects.get(pk=job.pk).status == "queued"


def test_recompute_command(team, gpt4o):
    bots(team, gpt4o, 2)
    UseCase.objects.update(needs_recompute=True)

    call_command("recompute")
    assert not UseCase.objects.filter(needs_recompute=True).exists()

    call_command("recompute", "--all", "--snapshot")
    assert RecomputeJob.objects.get().status == "finished"
    assert PortfolioSnapshot.objects.count() == 1


def test_exchange_rate_change_reprices_jpy_use_cases(team, gpt4o):
    use_case = UseCaseFactory(team=team, currency="JPY")
    DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)
    services.recompute_use_case(use_case_id=use_case.pk)

    pricing_services.add_exchange_rate(base="USD", quote="JPY", rate=Decimal("160"), as_of=datetime.date.today())
    services.run_recompute_job(job_id=RecomputeJob.objects.latest().pk, inline=True)

    use_case.refresh_from_db()
    assert use_case.monthly_cost == Decimal("880000")


def test_managers_start_and_follow_a_job_through_the_api(
    manager, member, team, gpt4o, django_capture_on_commit_callbacks
):
    from rest_framework.test import APIClient

    bots(team, gpt4o, 2)
    client = APIClient()
    client.force_authenticate(member)
    assert client.post("/api/v1/jobs/").status_code == 403
    assert client.get("/api/v1/jobs/").status_code == 403
    assert client.get("/api/v1/snapshots/").status_code == 403

    client.force_authenticate(manager)
    with django_capture_on_commit_callbacks() as callbacks:
        created = client.post("/api/v1/jobs/")
    assert created.status_code == 201 and callbacks
    assert created.json()["status"] == "queued"
    services.run_recompute_job(job_id=created.json()["id"], inline=True)

    job = client.get(f"/api/v1/jobs/{created.json()['id']}/").json()
    assert (job["status"], job["done"], job["total"], job["progress_pct"]) == ("finished", 2, 2, 100)
    assert job["requested_by"] == "carol"

    services.take_portfolio_snapshot()
    snapshots = client.get("/api/v1/snapshots/").json()["results"]
    assert snapshots[0]["monthly_cost"] == "11000.00"


def test_the_pipeline_re_evaluates_checklists_when_a_deployment_changes(team, gpt4o, llama70b):
    use_case = services.create_use_case(
        team=team,
        title="Huge consumer app",
        risk_tier="minimal",
        data_classification="public",
        expected_monthly_active_users=800_000_000,
    )
    deployment = services.create_deployment(use_case=use_case, model=gpt4o, status="active", **SUPPORT_BOT)
    tasks.recompute_use_case(use_case.pk)
    use_case.refresh_from_db()
    assert use_case.governance_status != "failed"

    services.update_deployment(deployment=deployment, model=llama70b)
    tasks.recompute_use_case(use_case.pk)

    use_case.refresh_from_db()
    assert use_case.governance_status == "failed"
    assert use_case.checklist_items.filter(status="failed", template__category="licensing").exists()


def test_a_governance_job_re_evaluates_the_checklists_of_its_scope(team, gpt4o):
    use_case = services.create_use_case(team=team, title="Bot", risk_tier="minimal")
    services.create_deployment(use_case=use_case, model=gpt4o, status="active", **SUPPORT_BOT)
    assert not use_case.checklist_items.exists()

    job = services.start_recompute_job(reason="nightly", scope={"all": True, "governance": True})
    services.run_recompute_job(job_id=job.pk, inline=True)

    use_case.refresh_from_db()
    assert use_case.checklist_items.exists()
    assert use_case.governance_status != "not_evaluated"


def test_a_licence_change_re_evaluates_the_licensing_checks(team, llama70b):
    use_case = services.create_use_case(
        team=team,
        title="Consumer app",
        risk_tier="minimal",
        data_classification="public",
        expected_monthly_active_users=5_000_000,
    )
    services.create_deployment(use_case=use_case, model=llama70b, status="active", **SUPPORT_BOT)
    tasks.recompute_use_case(use_case.pk)
    use_case.refresh_from_db()
    assert use_case.governance_status != "failed"

    licence = llama70b.licence
    licence.monthly_active_user_limit = 1_000_000
    pricing_services.save_licence(licence=licence)
    services.run_recompute_job(job_id=RecomputeJob.objects.latest().pk, inline=True)

    use_case.refresh_from_db()
    assert use_case.governance_status == "failed"
