"""The API against its own OpenAPI schema, with generated requests (schemathesis).

The schema is loaded from the app in-process (WSGI), and every operation receives
a bounded number of generated requests from a portfolio manager, valid and invalid.
Each answer must not be a 5xx and must match the schema for its status code.
"""

import collections
import datetime
import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, response_schema_conformance

from config.wsgi import application
from portfolio import governance, services
from portfolio.models import PortfolioSnapshot, RecomputeJob
from tests.factories import (
    ExchangeRateFactory,
    MembershipFactory,
    PriceFactory,
    UserFactory,
    WebhookDeliveryFactory,
    make_manager,
)

pytestmark = pytest.mark.django_db

# Loaded when the module is collected (the schema view reads no database), so each
# operation is a test of its own. (``schemathesis.pytest.from_fixture`` would defer
# it, but relies on a pytest internal that pytest 9 renamed.)
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)
# Bounded: the coverage phase ignores max_examples and sends thousands of requests.
schema.config.phases.update(phases=["examples", "fuzzing"])


@pytest.fixture
def manager_token(team, gpt4o):
    # A little of everything, so lists and details answer with real rows too.
    MembershipFactory(team=team, user=UserFactory(username="alice"))
    use_case = services.create_use_case(team=team, title="FAQ bot", external_id="crm-1")
    services.create_deployment(
        use_case=use_case,
        model=gpt4o,
        status="active",
        requests_per_month=1000,
        avg_input_tokens=100,
        avg_output_tokens=10,
    )
    services.create_poc(use_case=use_case, hypothesis="Deflects a third of tickets.")
    services.recompute_use_case(use_case_id=use_case.pk)
    governance.evaluate_checklists(use_case_ids=[use_case.pk])
    PriceFactory(model=gpt4o, team=team)
    ExchangeRateFactory(base="USD", quote="CHF", rate="0.9")
    PortfolioSnapshot.objects.create(taken_on=datetime.date(2024, 1, 1))
    RecomputeJob.objects.create(reason="nightly")
    WebhookDeliveryFactory(subscription__team=team)
    return Token.objects.create(user=make_manager(username="carol")).key


@pytest.fixture
def connection_kept_open():
    # The WSGI app closes the database connection after each request (CONN_MAX_AGE=0),
    # which would end the test's transaction; Django's test client skips it the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def invalid_input_rejected(ctx, response, case):
    """schemathesis' ``negative_data_rejection`` for invalid bodies and path parameters.

    The query string is lenient by design, as DRF and django-filter make it: an empty
    filter means "any", an unknown ``ordering`` field or a bad ``page_size`` falls back to
    the default. Such requests read nothing they may not, and answer as documented (the
    schema check), so only bodies and paths must be refused when invalid. Form-encoded
    bodies are left out too: they carry text only, so a value of the wrong type arrives
    as valid text, and names the schema does not know are ignored.
    """
    if case.meta is None or not any(
        case.meta.is_negative_at(location) for location in (ParameterLocation.BODY, ParameterLocation.PATH)
    ):
        return None
    if case.meta.is_negative_at(ParameterLocation.BODY) and "json" not in (case.media_type or ""):
        return None
    return negative_data_rejection(ctx, response, case)


# Examples per operation: a quick 10 by default; CI's PostgreSQL pass asks for enough to
# send over 10,000 requests in all (SCHEMATHESIS_MIN_CASES makes the last test check it).
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10"))
SENT: collections.Counter[str] = collections.Counter()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_answers_match_the_schema(case, manager_token, connection_kept_open):
    SENT[case.operation.label] += 1
    case.call_and_validate(
        headers={"Authorization": f"Token {manager_token}"},
        # No 5xx; answers as documented; invalid bodies and paths (negative cases) refused;
        # and an operation that needs a token refuses the request without it or with a wrong one.
        checks=[not_a_server_error, response_schema_conformance, invalid_input_rejected, ignored_auth],
    )


def test_enough_generated_requests_were_sent(measured):
    # Last in the module, after every generated case: run the module in one process (.ci/run).
    minimum = int(os.environ.get("SCHEMATHESIS_MIN_CASES", "0"))
    measured(f"schemathesis: {sum(SENT.values())} generated requests over {len(SENT)} operations")
    assert sum(SENT.values()) >= minimum
