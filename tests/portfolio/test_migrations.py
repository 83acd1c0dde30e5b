"""Migrations keep existing data: each is run from the schema before it, with rows in it."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)


def migrate(*targets):
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets))
    executor.loader.build_graph()
    return executor.loader.project_state(list(targets)).apps


def test_teams_and_memberships_get_updated_at_from_created_at():
    before = migrate(("portfolio", "0008_iso_4217_currencies"))
    team = before.get_model("portfolio", "Team").objects.create(name="Legal", slug="legal")
    user = before.get_model("auth", "User").objects.create(username="erin")
    before.get_model("portfolio", "Membership").objects.create(team=team, user=user, role="lead")
    try:
        after = migrate(("portfolio", "0009_team_membership_updated_at"))
        migrated = after.get_model("portfolio", "Team").objects.get(slug="legal")
        membership = after.get_model("portfolio", "Membership").objects.get(team=migrated)
        assert migrated.updated_at == migrated.created_at
        assert membership.updated_at == membership.created_at
        assert membership.role == "lead"
    finally:
        migrate(*[key for key in MigrationExecutor(connection).loader.graph.leaf_nodes()])
