import pytest
from django.contrib.auth.models import AnonymousUser, Group

from portfolio import selectors
from tests.factories import DeploymentFactory, ProofOfConceptFactory, UseCaseFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_teams_of_use_cases(team, other_team):
    ours = UseCaseFactory(team=team)
    theirs = UseCaseFactory(team=other_team)
    DeploymentFactory(use_case=ours)
    DeploymentFactory(use_case=theirs)
    ProofOfConceptFactory(use_case=ours)
    ProofOfConceptFactory(use_case=theirs)
    return ours, theirs


def test_member_sees_only_their_teams(member, two_teams_of_use_cases):
    ours, _ = two_teams_of_use_cases
    assert list(selectors.visible_use_cases(user=member)) == [ours]
    assert [d.use_case for d in selectors.visible_deployments(user=member)] == [ours]
    assert [p.use_case for p in selectors.visible_pocs(user=member)] == [ours]
    assert [t.slug for t in selectors.visible_teams(user=member)] == ["support"]


def test_manager_and_superuser_see_everything(manager, two_teams_of_use_cases):
    superuser = UserFactory(username="root", is_superuser=True)
    for user in (manager, superuser):
        assert selectors.is_portfolio_manager(user)
        assert selectors.visible_use_cases(user=user).count() == 2
        assert selectors.visible_deployments(user=user).count() == 2


def test_anonymous_and_teamless_users_see_nothing(two_teams_of_use_cases):
    for user in (AnonymousUser(), UserFactory(username="nobody")):
        assert not selectors.visible_use_cases(user=user).exists()
        assert not selectors.visible_teams(user=user).exists()


def test_only_the_managers_group_makes_a_manager(manager, member):
    auditor = UserFactory(username="auditor")
    auditor.groups.add(Group.objects.create(name="auditors"))
    assert [selectors.is_portfolio_manager(user) for user in (manager, member, auditor)] == [True, False, False]
    # Asked once per request: the answer is kept on the user object.
    manager.groups.clear()
    assert selectors.is_portfolio_manager(manager)
    assert not selectors.is_portfolio_manager(type(manager).objects.get(pk=manager.pk))


def test_inactive_manager_is_not_a_manager(manager):
    manager.is_active = False
    assert not selectors.is_portfolio_manager(manager)


def test_a_record_without_history_rows_has_an_empty_audit_trail(team):
    use_case = UseCaseFactory(team=team)
    use_case.history.all().delete()  # As for rows a migration loaded.
    assert selectors.audit_trail(records=use_case.history.all()) == []
