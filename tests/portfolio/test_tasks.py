from decimal import Decimal

import pytest

from portfolio import tasks
from portfolio.models import UseCase
from tests.factories import DeploymentFactory, UseCaseFactory

pytestmark = pytest.mark.django_db


def test_recompute_use_case_task_is_idempotent(team, gpt4o):
    use_case = UseCaseFactory(team=team)
    DeploymentFactory(
        use_case=use_case, model=gpt4o, requests_per_month=1_000_000, avg_input_tokens=1000, avg_output_tokens=300
    )

    assert tasks.recompute_use_case(use_case.pk) is True
    assert tasks.recompute_use_case(use_case.pk) is True

    use_case.refresh_from_db()
    assert use_case.monthly_cost == Decimal("5500.00")
    assert use_case.cost_snapshots.count() == 1


def test_recompute_use_case_task_tolerates_a_deleted_row():
    assert tasks.recompute_use_case(424242) is False


def test_stale_sweep_task(team):
    UseCaseFactory(team=team, needs_recompute=True)
    UseCaseFactory(team=team, needs_recompute=False)

    assert tasks.recompute_stale() == 1
    assert not UseCase.objects.filter(needs_recompute=True).exists()
