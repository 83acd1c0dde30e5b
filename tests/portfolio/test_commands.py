import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from portfolio import selectors
from portfolio.models import Deployment, PortfolioSnapshot, ProofOfConcept, Team, UseCase

pytestmark = pytest.mark.django_db


def test_seed_demo_builds_a_realistic_portfolio():
    call_command("seed_demo", "--password", "s3cret-pass")

    assert set(Team.objects.values_list("slug", flat=True)) >= {"support", "research", "legal"}
    users = {user.username: user for user in get_user_model().objects.all()}
    assert users["alice"].check_password("s3cret-pass")
    assert users["alice"].memberships.get().team.slug == "support"
    assert users["bob"].memberships.get().team.slug == "research"
    assert selectors.is_portfolio_manager(users["carol"])
    assert users["admin"].is_superuser
    assert UseCase.objects.count() >= 30
    assert set(UseCase.objects.values_list("stage", flat=True)) == set(UseCase.Stage.values)
    assert set(UseCase.objects.values_list("currency", flat=True)) == {"USD", "JPY"}
    assert set(Deployment.objects.values_list("hosting", flat=True)) == set(Deployment.Hosting.values)
    assert Deployment.objects.filter(model__open_weights=True).exists()
    assert Deployment.objects.filter(model__open_weights=False).exists()
    assert ProofOfConcept.objects.exists()
    assert not UseCase.objects.filter(needs_recompute=True).exists()
    assert not UseCase.objects.filter(monthly_cost__isnull=True).exists()


def test_seed_demo_twice_adds_nothing():
    call_command("seed_demo")
    counts = (UseCase.objects.count(), Deployment.objects.count(), get_user_model().objects.count())
    call_command("seed_demo")
    assert (UseCase.objects.count(), Deployment.objects.count(), get_user_model().objects.count()) == counts


def test_seed_demo_leaves_twelve_weeks_of_portfolio_snapshots_for_the_trend_chart():
    call_command("seed_demo")
    call_command("seed_demo")
    snapshots = list(PortfolioSnapshot.objects.order_by("taken_on"))
    assert len(snapshots) == 13
    assert (snapshots[-1].taken_on - snapshots[0].taken_on).days == 84
    costs = [snapshot.monthly_cost for snapshot in snapshots]
    assert costs == sorted(costs) and costs[0] < costs[-1]
