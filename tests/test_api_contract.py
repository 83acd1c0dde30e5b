"""The API refuses what its OpenAPI schema forbids, with a 400 naming the parameter: empty typed
filters, an empty currency, page numbers and sizes that are not whole numbers from 1; and a
request body over the size limit is a JSON 413, not Django's HTML page.
"""

import json

import pytest
from rest_framework.test import APIClient

from portfolio.models import UseCase
from tests.factories import UseCaseFactory

pytestmark = pytest.mark.django_db

BLANK = ["This field may not be blank."]
NOT_A_NUMBER = ["A valid integer is required."]
TOO_SMALL = ["Ensure this value is greater than or equal to 1."]


@pytest.fixture
def client(manager):
    client = APIClient()
    client.force_authenticate(manager)
    return client


# --- Filters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["/api/v1/use-cases/", "/api/v1/deployments/", "/api/v1/prices/", "/api/v1/cost-snapshots/", "/api/v1/models/"],
)
def test_an_empty_updated_since_is_refused(client, url):
    answer = client.get(url, {"updated_since": ""})

    assert answer.status_code == 400
    assert answer.json() == {"updated_since": BLANK}


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/api/v1/use-cases/", "stage"),  # a choice
        ("/api/v1/use-cases/", "needs_recompute"),  # yes or no
        ("/api/v1/deployments/", "use_case"),  # an id
        ("/api/v1/cost-snapshots/", "priced_on"),  # a date
        ("/api/v1/snapshots/", "taken_on__gte"),
    ],
)
def test_an_empty_typed_filter_is_refused(client, url, name):
    answer = client.get(url, {name: ""})

    assert answer.status_code == 400
    assert answer.json() == {name: BLANK}


def test_an_empty_filter_is_reported_with_the_other_bad_ones(client):
    answer = client.get("/api/v1/use-cases/", {"updated_since": "", "stage": "nonsense"})

    assert answer.status_code == 400
    assert set(answer.json()) == {"updated_since", "stage"}


def test_an_empty_text_filter_still_means_any(client, team):
    UseCaseFactory(team=team)

    answer = client.get("/api/v1/use-cases/", {"team": "", "currency": ""})

    assert answer.status_code == 200
    assert answer.json()["count"] == 1


# --- The summary's currency ------------------------------------------------------------------


def test_an_empty_summary_currency_is_refused(client):
    answer = client.get("/api/v1/portfolio/summary/", {"currency": ""})

    assert answer.status_code == 400
    assert answer.json() == {"currency": BLANK}


def test_an_empty_what_if_currency_is_refused(client):
    swap = {"from_model": "openai/gpt-4o", "to_model": "meta/llama-3-70b"}
    answer = client.post("/api/v1/portfolio/what-if/?currency=", swap, format="json")

    assert answer.status_code == 400
    assert answer.json() == {"currency": BLANK}
    assert client.post("/api/v1/portfolio/what-if/?currency=JPY", swap, format="json").status_code == 200


def test_the_summary_without_a_currency_is_in_the_reporting_currency(client, settings):
    answer = client.get("/api/v1/portfolio/summary/")

    assert answer.status_code == 200
    assert answer.json()["currency"] == settings.REPORTING_CURRENCY


# --- Pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "errors"),
    [("abc", NOT_A_NUMBER), ("", NOT_A_NUMBER), ("1.5", NOT_A_NUMBER), ("0", TOO_SMALL), ("-3", TOO_SMALL)],
)
def test_a_page_size_that_is_not_a_whole_number_from_1_is_refused(client, value, errors):
    answer = client.get("/api/v1/use-cases/", {"page_size": value})

    assert answer.status_code == 400
    assert answer.json() == {"page_size": errors}


@pytest.mark.parametrize(
    ("value", "errors"),
    [("abc", NOT_A_NUMBER), ("", NOT_A_NUMBER), ("last", NOT_A_NUMBER), ("0", TOO_SMALL), ("-1", TOO_SMALL)],
)
def test_a_page_that_is_not_a_whole_number_from_1_is_refused(client, value, errors):
    answer = client.get("/api/v1/use-cases/", {"page": value})

    assert answer.status_code == 400
    assert answer.json() == {"page": errors}


def test_a_page_past_the_last_is_not_found(client):
    answer = client.get("/api/v1/use-cases/", {"page": 2})

    assert answer.status_code == 404


def test_good_page_numbers_and_sizes_still_page(client, team):
    UseCase.objects.bulk_create(UseCase(team=team, title=f"Use case {n}") for n in range(3))

    body = client.get("/api/v1/use-cases/", {"page_size": "2", "page": "2"}).json()

    assert (body["count"], len(body["results"])) == (3, 1)
    assert client.get("/api/v1/use-cases/", {"page_size": 10_000}).json()["count"] == 3


def test_the_schema_says_pages_and_sizes_start_at_1(client):
    schema = client.get("/api/v1/schema/", {"format": "json"}).json()
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/use-cases/"]["get"]["parameters"]}

    assert parameters["page"]["schema"] == {"type": "integer", "minimum": 1}
    assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1}


# --- Request bodies over the size limit ------------------------------------------------------


@pytest.fixture
def small_bodies(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    return "x" * 2_000


def test_an_oversize_json_body_is_a_json_413(client, team, small_bodies):
    body = json.dumps({"team": team.slug, "title": small_bodies})

    answer = client.post("/api/v1/use-cases/", body, content_type="application/json")

    assert answer.status_code == 413
    assert answer["Content-Type"] == "application/json"
    assert answer.json() == {"detail": "The request body is larger than the 1000 bytes allowed."}
    assert not UseCase.objects.exists()


def test_an_oversize_form_body_is_a_json_413(client, small_bodies):
    body = f"title={small_bodies}"

    answer = client.generic("POST", "/api/v1/use-cases/", body, content_type="application/x-www-form-urlencoded")

    assert answer.status_code == 413
    assert "larger than the 1000 bytes" in answer.json()["detail"]


def test_a_form_of_too_many_fields_is_a_json_400(client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"field{n}=x" for n in range(11))

    answer = client.generic("POST", "/api/v1/use-cases/", body, content_type="application/x-www-form-urlencoded")

    assert answer.status_code == 400
    assert answer.json() == {"detail": "The form has more than 10 fields."}


def test_an_oversize_multipart_body_is_a_json_413(client, team, small_bodies):
    answer = client.post("/api/v1/use-cases/", {"team": team.slug, "title": small_bodies}, format="multipart")

    assert answer.status_code == 413
    assert "larger than the 1000 bytes" in answer.json()["detail"]


def test_an_oversize_body_is_a_413_for_a_browser_on_the_api_too(client, team, small_bodies):
    body = json.dumps({"team": team.slug, "title": small_bodies})

    answer = client.post("/api/v1/use-cases/", body, content_type="application/json", HTTP_ACCEPT="text/html")

    assert answer.status_code == 413
