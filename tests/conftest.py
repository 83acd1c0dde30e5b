import pytest

from pricing.models import LanguageModel
from tests.factories import MembershipFactory, TeamFactory, UserFactory, make_manager


@pytest.fixture
def team():
    return TeamFactory(slug="support", name="Support")


@pytest.fixture
def other_team():
    return TeamFactory(slug="research", name="Research")


@pytest.fixture
def member(team):
    return MembershipFactory(team=team, user=UserFactory(username="alice")).user


@pytest.fixture
def outsider(other_team):
    return MembershipFactory(team=other_team, user=UserFactory(username="bob")).user


@pytest.fixture
def manager():
    return make_manager(username="carol")


@pytest.fixture
def gpt4o():
    """The shipped GPT-4o: $2.50 / $10.00 per 1M tokens, $1.25 cached."""
    return LanguageModel.objects.get(key="openai/gpt-4o")


@pytest.fixture
def llama70b():
    return LanguageModel.objects.get(key="meta/llama-3-70b")
