"""``manage.py bench`` runs end to end at a small size, so it cannot rot.

The command creates, migrates and drops a database of its own beside the test database,
through a connection of its own. Below 10,000 use cases the speed targets are reported
for information only; the correctness checks still apply.
"""

import json

import pytest
from django.core.management import call_command
from django.db import connection

from portfolio.models import UseCase
from tests.factories import UseCaseFactory

pytestmark = pytest.mark.django_db


def test_the_benchmark_runs_at_200_use_cases(tmp_path, capsys):
    output = tmp_path / "bench.json"
    vendor = connection.vendor

    call_command("bench", "--use-cases", "200", "--json", str(output))

    report = json.loads(output.read_text())
    figures = {figure["name"].split(":")[0].split(" vs ")[0]: figure for figure in report["figures"]}
    assert (report["use_cases"], report["deployments"], report["database"]) == (200, 400, vendor)
    assert report["passed"] and not report["speed_targets_apply"]
    assert figures["recompute figures differing from the floor's"]["ours"] == 0 or vendor != "postgresql"
    assert figures["list queries at page sizes 1, 100, 500"]["result"] == "pass"
    for name in (
        "full recompute (job, every figure changes)",
        "portfolio summary (API, manager)",
        "price change",
        "peak RSS growth of the full recompute",
        "list serialization per row (marginal, page 1 → 500)",
        "token authentication and manager check of a request",
        "throttle checks of a request (a client's first 200 in a minute)",
        "serializer fields derived once per class (a use case shown)",
        "list page of 50 from value tuples (API)",
    ):
        assert figures[name]["ours"] > 0 and figures[name]["floor"] > 0, name
    table = capsys.readouterr().out
    assert "| ratio" in table and "full recompute" in table


def test_the_benchmark_leaves_the_configured_database_alone(tmp_path):
    mine = UseCaseFactory(title="Not the bench's")

    call_command("bench", "--use-cases", "10", "--deployments-per-use-case", "1", "--json", str(tmp_path / "b.json"))

    assert list(UseCase.objects.values_list("pk", "title")) == [(mine.pk, "Not the bench's")]
