"""The shared REST framework glue: token authentication, serializer fields built once per class,
filters on lists only, writes answered without reading relations again."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_filters import rest_framework as filters
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from config.api import FilterSet, refresh_keeping_relations
from config.drf_speed import TokenAuthentication
from portfolio import selectors, services
from portfolio.api.serializers import BulkUseCaseRowSerializer, SyncUseCaseSerializer, UseCaseSerializer
from portfolio.api.views import UseCaseFilter
from portfolio.models import Team, UseCase

pytestmark = pytest.mark.django_db


# --- Serializer fields derived once per class ----------------------------------------------------


def test_each_serializer_gets_its_own_fields():
    first, second = UseCaseSerializer(), UseCaseSerializer()
    assert first.fields["title"] is not second.fields["title"]
    first.fields["title"].read_only = True  # What an update does to ``team``.
    assert UseCaseSerializer().fields["title"].read_only is False
    assert second.fields["title"].read_only is False


def test_fields_are_derived_once_per_class(monkeypatch):
    _ = UseCaseSerializer().fields  # Derived and kept.
    derivations = []
    original = UseCaseSerializer.build_field
    monkeypatch.setattr(
        UseCaseSerializer, "build_field", lambda self, *args: derivations.append(args[0]) or original(self, *args)
    )
    _ = UseCaseSerializer().fields
    assert derivations == []


def test_subclasses_keep_their_own_fields():
    # A subclass declares fields of its own: it never takes its parent's derived set.
    _ = UseCaseSerializer().fields
    bulk_external_id = BulkUseCaseRowSerializer().fields["external_id"]
    assert bulk_external_id.__class__.__name__ == "RegexField"
    assert UseCaseSerializer().fields["external_id"].__class__.__name__ == "CharField"
    assert SyncUseCaseSerializer().fields["external_id"].read_only is True
    assert UseCaseSerializer().fields["external_id"].read_only is False


def test_a_fields_per_request_state_stays_with_its_serializer(manager, member, other_team):
    # The team field scopes by the request's user and remembers the teams it found: a
    # manager's serializer finding another team must not let a member's use it.
    class Request:
        def __init__(self, user):
            self.user = user

    data = {"team": other_team.slug, "title": "Bot"}
    assert UseCaseSerializer(data=data, context={"request": Request(manager)}).is_valid()
    as_member = UseCaseSerializer(data=data, context={"request": Request(member)})
    assert not as_member.is_valid() and "team" in as_member.errors
    # A field holding other fields is copied deeply: its child is bound to this serializer's copy.
    frameworks = UseCaseSerializer().fields["frameworks"]
    assert frameworks.child.parent is frameworks


def test_validation_and_output_are_unchanged_by_the_cache(team):
    for _ in range(2):  # The second time from the kept fields.
        serializer = UseCaseSerializer(data={"title": "", "horizon_months": 0})
        assert not serializer.is_valid()
        assert set(serializer.errors) == {"team", "title", "horizon_months"}
    use_case = services.create_use_case(team=team, title="FAQ bot")
    assert UseCaseSerializer(use_case).data["title"] == UseCaseSerializer(use_case).data["title"] == "FAQ bot"


# --- Filters narrow lists only ----------------------------------------------------------------


def test_filters_narrow_lists_but_not_detail_lookups(manager, team, other_team):
    use_case = services.create_use_case(team=team, title="FAQ bot")
    services.create_use_case(team=other_team, title="Research bot")
    client = APIClient()
    client.force_authenticate(manager)

    listed = client.get("/api/v1/use-cases/", {"team": other_team.slug}).json()["results"]
    assert [row["title"] for row in listed] == ["Research bot"]
    # A detail route finds its row by id: a list's query parameters do not hide it.
    answer = client.get(f"/api/v1/use-cases/{use_case.pk}/", {"team": other_team.slug})
    assert answer.status_code == 200 and answer.json()["title"] == "FAQ bot"
    assert client.get("/api/v1/use-cases/", {"updated_since": "yesterday"}).status_code == 400


def test_detail_lookups_stay_scoped(member, other_team):
    theirs = services.create_use_case(team=other_team, title="Research bot")
    client = APIClient()
    client.force_authenticate(member)
    assert client.get(f"/api/v1/use-cases/{theirs.pk}/").status_code == 404


def test_a_filter_sets_form_class_is_built_once():
    data = {"stage": "poc"}
    first = UseCaseFilter(data, queryset=UseCase.objects.all()).form
    second = UseCaseFilter(data, queryset=UseCase.objects.all()).form
    assert type(first) is type(second)
    assert first is not second and first.fields["stage"] is not second.fields["stage"]


def test_a_filter_choosing_rows_by_request_is_built_per_request(team, other_team):
    class ByVisibleTeam(FilterSet):
        team = filters.ModelChoiceFilter(queryset=lambda request: Team.objects.filter(pk=request.team_pk))

        class Meta:
            model = UseCase
            fields = ["team"]

    class Request:
        def __init__(self, team_pk):
            self.team_pk = team_pk

    forms = [
        ByVisibleTeam({}, queryset=UseCase.objects.all(), request=Request(pk)).form for pk in (team.pk, other_team.pk)
    ]
    assert type(forms[0]) is not type(forms[1])
    assert [list(form.fields["team"].queryset) for form in forms] == [[team], [other_team]]


def test_a_plain_page_builds_no_filter_form(manager, team, monkeypatch):
    services.create_use_case(team=team, title="FAQ bot", stage="poc")
    services.create_use_case(team=team, title="Triage", stage="idea")
    built = []
    original = UseCaseFilter.get_form_class
    monkeypatch.setattr(UseCaseFilter, "get_form_class", lambda self: built.append(1) or original(self))
    client = APIClient()
    client.force_authenticate(manager)

    assert client.get("/api/v1/use-cases/", {"page_size": 10, "ordering": "title"}).json()["count"] == 2
    assert built == []
    filtered = client.get("/api/v1/use-cases/", {"stage": "poc"}).json()["results"]
    assert [row["title"] for row in filtered] == ["FAQ bot"] and built
    assert client.get("/api/v1/use-cases/", {"stage": "nonsense"}).status_code == 400


def test_a_write_answers_the_stored_row_without_reading_its_relations_again(member, team):
    use_case = services.create_use_case(team=team, title="FAQ bot", owner=member)
    use_case = UseCase.objects.select_related("team", "owner").get(pk=use_case.pk)
    UseCase.objects.filter(pk=use_case.pk).update(title="Renamed elsewhere")

    refresh_keeping_relations(use_case)

    assert use_case.title == "Renamed elsewhere"
    with CaptureQueriesContext(connection) as queries:
        assert (use_case.team.slug, use_case.owner.username) == (team.slug, member.username)
    assert len(queries) == 0
    # A relation that now points elsewhere is read afresh.
    UseCase.objects.filter(pk=use_case.pk).update(owner=None)
    refresh_keeping_relations(use_case)
    assert use_case.owner is None


# --- Token authentication in one query ----------------------------------------------------------


def test_a_token_gives_its_user_and_the_manager_flag_in_one_query(manager, member):
    for user, is_manager in ((manager, True), (member, False)):
        key = Token.objects.create(user=user).key
        with CaptureQueriesContext(connection) as queries:
            found, token = TokenAuthentication().authenticate_credentials(key)
            assert selectors.is_portfolio_manager(found) is is_manager
        assert len(queries) == 1
        assert (found.pk, found.username, token.key, token.user_id) == (user.pk, user.username, key, user.pk)
        assert token.created == Token.objects.get(key=key).created


def test_unknown_and_inactive_tokens_are_refused_as_rest_framework_words_it(member):
    key = Token.objects.create(user=member).key
    with pytest.raises(AuthenticationFailed, match="Invalid token."):
        TokenAuthentication().authenticate_credentials("0" * 40)
    member.is_active = False
    member.save()
    with pytest.raises(AuthenticationFailed, match="User inactive or deleted."):
        TokenAuthentication().authenticate_credentials(key)
    answer = APIClient(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/teams/")
    assert answer.status_code == 401 and answer["WWW-Authenticate"] == "Token"
