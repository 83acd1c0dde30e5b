"""JSON request bodies are read within bounds: nesting beyond ``API_MAX_JSON_DEPTH`` is a 400, found before parsing."""

import io
import json

import pytest
from django.urls import URLResolver, get_resolver
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient
from rest_framework.views import APIView

from config.api import JSONParser, json_depth_exceeds
from portfolio import governance, services
from portfolio.models import ChecklistItem, UseCase

pytestmark = pytest.mark.django_db

# 100 KB: parsed recursively, it exhausts the interpreter's stack (a RecursionError, so a 500).
DEEP = "[" * 100_000


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def nested(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


def parse(body: str, **context):
    return JSONParser().parse(io.BytesIO(body.encode()), parser_context=context)


@pytest.fixture
def checklist_item(team):
    use_case = services.create_use_case(team=team, title="FAQ bot", external_id="crm-1", risk_tier="minimal")
    governance.evaluate_checklists(use_case_ids=[use_case.pk])
    return ChecklistItem.objects.filter(use_case=use_case).order_by("pk")[0]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/api/v1/use-cases/"),
        ("post", "/api/v1/use-cases/bulk/"),
        ("put", "/api/v1/use-cases/by-external-id/support/crm-1/"),
        ("patch", "checklist-item"),
        ("post", "/api/v1/auth/token/"),
    ],
)
def test_json_nested_100000_levels_is_a_400_on_write_endpoints(member, checklist_item, method, url):
    if url == "checklist-item":
        url = f"/api/v1/checklist-items/{checklist_item.pk}/"
    response = getattr(api(member), method)(url, DEEP, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "JSON nested deeper than 64 levels."}


def test_an_object_nested_too_deep_is_refused_too(member):
    body = '{"a":' * 100_000 + "1" + "}" * 100_000
    response = api(member).post("/api/v1/use-cases/", body, content_type="application/json")
    assert response.status_code == 400


def test_a_body_in_another_charset_is_scanned_as_its_text(member):
    # In UTF-16 a quote's byte also stands in other characters: a scan of the raw bytes
    # could take the brackets to be inside a string.
    body = ('["\u0122",' + DEEP).encode("utf-16")
    response = api(member).post("/api/v1/use-cases/", body, content_type="application/json; charset=utf-16")
    assert response.status_code == 400
    assert "64 levels" in response.json()["detail"]


def test_64_levels_are_parsed_and_65_refused():
    assert parse(nested(64)) == json.loads(nested(64))
    with pytest.raises(ParseError, match="deeper than 64 levels"):
        parse(nested(65))


def test_64_levels_reach_the_serializer_which_answers_for_the_field(member, team):
    body = json.dumps({"team": "support", "title": json.loads(nested(63))})
    response = api(member).post("/api/v1/use-cases/", body, content_type="application/json")
    assert response.status_code == 400
    assert "title" in response.json()
    assert not UseCase.objects.exists()


def test_brackets_inside_strings_do_not_count(member, team):
    title = 'The "[[[[" bot \\ ' + "[{" * 60
    body = json.dumps({"team": "support", "title": title, "description": '\\"' + "[" * 5_000})
    response = api(member).post("/api/v1/use-cases/", body, content_type="application/json")
    assert response.status_code == 201, response.json()
    assert UseCase.objects.get().title == title


def test_the_depth_limit_is_a_setting(settings):
    settings.API_MAX_JSON_DEPTH = 3
    assert parse(nested(3)) == [[[1]]]
    with pytest.raises(ParseError, match="deeper than 3 levels"):
        parse(nested(4))


@pytest.mark.parametrize(
    ("text", "too_deep"),
    [
        (nested(64), False),
        (nested(65), True),
        ("[]" * 10_000, False),  # Many brackets, little depth: a bulk body.
        ('{"a": [' * 30 + "]}" * 30, False),
        ('["' + "[" * 1_000 + '"]', False),
        ('["\\"' + "[" * 1_000 + '"]', False),  # An escaped quote does not end the string.
        ('["\\\\"' + "[" * 1_000 + "]", True),  # An escaped backslash does not escape the quote.
        ('"' + "[" * 1_000, False),  # An unterminated string: the parser refuses it before any bracket.
        ("[" * 65 + "]" * 64, True),
    ],
)
def test_json_depth_is_found_without_parsing(text, too_deep):
    assert json_depth_exceeds(text, 64) is too_deep


def api_views(resolver: URLResolver | None = None) -> set[type[APIView]]:
    views = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            views |= api_views(entry)
        elif isinstance(getattr(entry.callback, "cls", None), type) and issubclass(entry.callback.cls, APIView):
            views.add(entry.callback.cls)
    return views


def test_every_api_view_parses_json_with_the_bounded_parser():
    views = api_views()
    assert len(views) > 10
    unbounded = [
        view.__name__
        for view in views
        for parser in view.parser_classes
        if parser.media_type == "application/json" and not issubclass(parser, JSONParser)
    ]
    assert unbounded == []
