import pytest
from django.urls import reverse

from portfolio import services
from portfolio.models import CostSnapshot, Deployment, Membership, ProofOfConcept, Team, UseCase
from tests.factories import DeploymentFactory, MembershipFactory, ProofOfConceptFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def records(team, gpt4o):
    deployment = DeploymentFactory(use_case__team=team, model=gpt4o, requests_per_month=1000)
    services.recompute_use_case(use_case_id=deployment.use_case_id)
    return {
        Team: team,
        Membership: MembershipFactory(team=team),
        UseCase: deployment.use_case,
        Deployment: deployment,
        ProofOfConcept: ProofOfConceptFactory(use_case=deployment.use_case),
        CostSnapshot: CostSnapshot.objects.get(use_case=deployment.use_case),
    }


@pytest.mark.parametrize("model", [Team, Membership, UseCase, Deployment, ProofOfConcept, CostSnapshot])
def test_every_portfolio_admin_page_renders(admin_client, records, model):
    name = f"admin:portfolio_{model._meta.model_name}"
    assert admin_client.get(reverse(f"{name}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"{name}_change", args=[records[model].pk])).status_code == 200
    expected_add = 403 if model is CostSnapshot else 200
    assert admin_client.get(reverse(f"{name}_add")).status_code == expected_add


def test_admin_edit_of_a_use_case_flags_a_recompute(admin_client, records, django_capture_on_commit_callbacks):
    use_case = records[UseCase]
    UseCase.objects.filter(pk=use_case.pk).update(needs_recompute=False)
    url = reverse("admin:portfolio_usecase_change", args=[use_case.pk])
    form = {
        "team": use_case.team_id, "title": "Renamed", "description": "", "category": "other", "stage": "idea",
        "risk_tier": "unassessed", "data_classification": "internal", "currency": "USD",
        "hours_saved_per_month": "10", "hourly_rate": "50", "other_monthly_benefit": "0", "one_time_cost": "0",
        "monthly_fixed_cost": "0", "horizon_months": "36", "expected_monthly_active_users": "0",
        "deployments-TOTAL_FORMS": "0", "deployments-INITIAL_FORMS": "0",
        "pocs-TOTAL_FORMS": "0", "pocs-INITIAL_FORMS": "0",
    }
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(url, form)

    assert response.status_code == 302, response.content.decode()[:2000]
    assert callbacks, "a recompute is queued after commit"
    use_case.refresh_from_db()
    assert (use_case.title, use_case.needs_recompute) == ("Renamed", True)
    services.recompute_stale()
    use_case.refresh_from_db()
    assert use_case.monthly_benefit == 500
