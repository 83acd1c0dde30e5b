"""The recompute pipeline end to end: real worker, real Redis, real PostgreSQL."""
import datetime
from decimal import Decimal

import pytest

from portfolio import services
from portfolio.models import CostSnapshot, UseCase
from pricing import services as pricing_services
from tests.integration.conftest import wait_until

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

    pricing_services.add_price(model=gpt4o, input_per_million=Decimal("2.00"), output_per_million=Decimal("8.00"),
                               effective_from=datetime.date.today())

    assert wait_until(lambda: all(computed(u.pk, "4400.00") for u in on_gpt4o), timeout=30)
    latest = CostSnapshot.objects.filter(use_case=on_gpt4o[0]).latest()
    assert (latest.previous_monthly_cost, latest.monthly_cost) == (Decimal("5500.00"), Decimal("4400.00"))
    assert computed(on_llama.pk, "725.00")
