import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import CheckConstraint, Q

from portfolio import services
from portfolio.models import CostSnapshot, Deployment, Membership, UseCase
from pricing.models import ExchangeRate, Price
from pricing.selectors import price_book
from tests.factories import (
    DeploymentFactory,
    ExchangeRateFactory,
    GpuRateFactory,
    MembershipFactory,
    PriceFactory,
    UseCaseFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SUPPORT_BOT = {"requests_per_month": 1_000_000, "avg_input_tokens": 1_000, "avg_output_tokens": 300}


def recompute(use_case):
    services.recompute_use_case(use_case_id=use_case.pk)
    use_case.refresh_from_db()
    return use_case


def test_article_support_bot_on_gpt4o_costs_5500(team, gpt4o):
    use_case = UseCaseFactory(team=team)
    deployment = DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)

    recompute(use_case)
    deployment.refresh_from_db()

    assert deployment.monthly_cost == Decimal("5500.00")
    assert use_case.monthly_cost == Decimal("5500.00")
    assert use_case.needs_recompute is False
    assert use_case.computed_at is not None


def test_swapping_gpt4o_for_llama_saves_4775(team, gpt4o, llama70b):
    on_gpt4o = UseCaseFactory(team=team)
    DeploymentFactory(use_case=on_gpt4o, model=gpt4o, **SUPPORT_BOT)
    on_llama = UseCaseFactory(team=team)
    DeploymentFactory(use_case=on_llama, model=llama70b, **SUPPORT_BOT)

    assert recompute(on_gpt4o).monthly_cost - recompute(on_llama).monthly_cost == Decimal("4775.00")


def test_use_case_figures_follow_the_second_worked_example(team, settings):
    settings.ANNUAL_DISCOUNT_RATE = Decimal("0.10")
    use_case = UseCaseFactory(
        team=team,
        one_time_cost=Decimal("120000"),
        monthly_fixed_cost=Decimal("8000"),
        other_monthly_benefit=Decimal("20000"),
        horizon_months=24,
    )

    recompute(use_case)

    assert use_case.monthly_benefit == Decimal("20000.00")
    assert use_case.roi_pct == Decimal("53.85")
    assert use_case.payback_months == 10
    assert use_case.npv == Decimal("141174.81")


def test_benefit_is_hours_saved_times_rate_plus_other(team):
    use_case = UseCaseFactory(
        team=team,
        hours_saved_per_month=Decimal("120.5"),
        hourly_rate=Decimal("40"),
        other_monthly_benefit=Decimal("100"),
    )
    assert recompute(use_case).monthly_benefit == Decimal("4920.00")


def test_only_active_deployments_count_towards_the_use_case(team, gpt4o):
    use_case = UseCaseFactory(team=team, monthly_fixed_cost=Decimal("100"))
    DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)
    planned = DeploymentFactory(use_case=use_case, model=gpt4o, status=Deployment.Status.PLANNED, **SUPPORT_BOT)
    DeploymentFactory(use_case=use_case, model=gpt4o, status=Deployment.Status.STOPPED, **SUPPORT_BOT)

    recompute(use_case)
    planned.refresh_from_db()

    assert use_case.monthly_cost == Decimal("5600.00")
    assert planned.monthly_cost == Decimal("5500.00"), "planned deployments still show their forecast"


def test_cached_input_is_priced_at_the_cached_rate(team, gpt4o):
    use_case = UseCaseFactory(team=team)
    DeploymentFactory(use_case=use_case, model=gpt4o, cached_input_ratio=Decimal("0.5"), **SUPPORT_BOT)
    # 500 uncached × 2.50 + 500 cached × 1.25 + 300 × 10.00 per 1M, a million times.
    assert recompute(use_case).monthly_cost == Decimal("4875.00")


def test_jpy_use_case_converts_usd_prices_at_the_rate_in_force(team, gpt4o):
    ExchangeRate.objects.create(base="USD", quote="JPY", rate=Decimal("155.5"), as_of=datetime.date(2025, 6, 1))
    use_case = UseCaseFactory(team=team, currency="JPY", monthly_fixed_cost=Decimal("1000"))
    DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)

    recompute(use_case)

    assert use_case.monthly_cost == Decimal("856250")  # 5,500 × 155.5 + 1,000, in whole yen
    snapshot = CostSnapshot.objects.get(use_case=use_case)
    rate = ExchangeRate.objects.get(rate=Decimal("155.5"))
    assert snapshot.breakdown[0]["exchange_rate_id"] == rate.pk


def test_contract_price_beats_the_public_price_for_its_team_only(team, other_team, gpt4o):
    PriceFactory(
        model=gpt4o,
        team=team,
        input_per_million=Decimal("2.00"),
        output_per_million=Decimal("8.00"),
        source=Price.Source.CONTRACT,
    )
    ours = UseCaseFactory(team=team)
    DeploymentFactory(use_case=ours, model=gpt4o, **SUPPORT_BOT)
    theirs = UseCaseFactory(team=other_team)
    DeploymentFactory(use_case=theirs, model=gpt4o, **SUPPORT_BOT)

    assert recompute(ours).monthly_cost == Decimal("4400.00")
    assert recompute(theirs).monthly_cost == Decimal("5500.00")


def test_self_hosted_on_rented_gpus(team, llama70b):
    GpuRateFactory(gpu_type="T4", hourly_cost=Decimal("0.50"))
    use_case = UseCaseFactory(team=team)
    DeploymentFactory(
        use_case=use_case,
        model=llama70b,
        hosting=Deployment.Hosting.SELF_HOSTED,
        gpu_type="T4",
        gpu_count=2,
        monthly_fixed_cost=Decimal("40"),
    )
    with_own_price = UseCaseFactory(team=team)
    DeploymentFactory(
        use_case=with_own_price,
        model=llama70b,
        hosting=Deployment.Hosting.SELF_HOSTED,
        gpu_count=4,
        gpu_hourly_cost=Decimal("2.50"),
        hours_per_month=Decimal("100"),
    )

    assert recompute(use_case).monthly_cost == Decimal("770.00")  # 2 × 0.50 × 730 + 40
    assert recompute(with_own_price).monthly_cost == Decimal("1000.00")


def test_self_hosted_on_owned_hardware_profile(team, llama70b):
    from pricing.models import SelfHostingProfile

    profile = SelfHostingProfile.objects.get(name="On-prem 8×H100 server")
    use_case = UseCaseFactory(team=team)
    DeploymentFactory(
        use_case=use_case, model=llama70b, hosting=Deployment.Hosting.SELF_HOSTED, self_hosting_profile=profile
    )
    # 320,000 × 0.9 / 36 + 2,200 power + 3,500 operations
    assert recompute(use_case).monthly_cost == Decimal("13700.00")


def test_a_deployment_without_a_price_is_reported_not_guessed(team):
    use_case = UseCaseFactory(team=team, monthly_fixed_cost=Decimal("10"))
    deployment = DeploymentFactory(use_case=use_case, **SUPPORT_BOT)  # a model with no price at all

    recompute(use_case)
    deployment.refresh_from_db()

    assert deployment.monthly_cost is None
    assert use_case.monthly_cost == Decimal("10.00")
    line = CostSnapshot.objects.get(use_case=use_case).breakdown[0]
    assert "No price" in line["error"]


def test_missing_exchange_rate_is_reported(team, gpt4o):
    ExchangeRate.objects.all().delete()
    use_case = UseCaseFactory(team=team, currency="JPY")
    DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)

    recompute(use_case)

    assert "No exchange rate" in CostSnapshot.objects.get(use_case=use_case).breakdown[0]["error"]


def test_snapshot_records_prices_used_and_rerun_changes_nothing(team, gpt4o):
    use_case = UseCaseFactory(team=team)
    DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)

    recompute(use_case)
    first_computed_at = use_case.computed_at
    recompute(use_case)

    snapshot = CostSnapshot.objects.get(use_case=use_case)
    assert snapshot.breakdown[0]["price_id"] == price_book().price(gpt4o.pk).id
    assert snapshot.monthly_cost == Decimal("5500.00")
    assert snapshot.previous_monthly_cost is None
    assert use_case.computed_at >= first_computed_at


def test_new_price_gives_a_snapshot_with_before_and_after(team, gpt4o):
    use_case = UseCaseFactory(team=team)
    DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)
    recompute(use_case)

    new_price = PriceFactory(
        model=gpt4o,
        input_per_million=Decimal("2.00"),
        output_per_million=Decimal("8.00"),
        effective_from=datetime.date(2025, 1, 1),
    )
    recompute(use_case)

    latest = CostSnapshot.objects.filter(use_case=use_case).latest()
    assert (latest.previous_monthly_cost, latest.monthly_cost) == (Decimal("5500.00"), Decimal("4400.00"))
    assert latest.breakdown[0]["price_id"] == new_price.pk


def test_future_price_is_not_used_before_its_date(team, gpt4o):
    use_case = UseCaseFactory(team=team)
    DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)
    PriceFactory(
        model=gpt4o,
        input_per_million=Decimal("0"),
        output_per_million=Decimal("0"),
        effective_from=datetime.date.today() + datetime.timedelta(days=30),
    )

    assert recompute(use_case).monthly_cost == Decimal("5500.00")


def test_recomputing_many_use_cases_runs_a_constant_number_of_queries(team, gpt4o, django_assert_max_num_queries):
    def make(count):
        ids = []
        for _ in range(count):
            use_case = UseCaseFactory(team=team)
            DeploymentFactory(use_case=use_case, model=gpt4o, **SUPPORT_BOT)
            ids.append(use_case.pk)
        return ids

    few, many = make(3), make(60)
    # catalogue (3) + savepoint + use cases + deployments + 2 bulk updates + snapshots + release
    with django_assert_max_num_queries(10):
        services.recompute_use_cases(use_case_ids=few)
    with django_assert_max_num_queries(10):
        services.recompute_use_cases(use_case_ids=many)


def test_recompute_of_a_deleted_use_case_is_a_no_op():
    assert services.recompute_use_case(use_case_id=987654) is False


def test_recompute_stale_only_touches_flagged_use_cases(team):
    stale = UseCaseFactory(team=team, needs_recompute=True)
    fresh = UseCaseFactory(team=team, needs_recompute=False)

    result = services.recompute_stale()

    assert result.use_cases == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.computed_at is not None and fresh.computed_at is None


def test_create_use_case_validates_and_saves_nothing_on_error(team):
    with pytest.raises(ValidationError) as error:
        services.create_use_case(team=team, title="", horizon_months=0, hourly_rate=Decimal("-1"))
    assert {"title", "horizon_months", "hourly_rate"} <= set(error.value.message_dict)
    assert not UseCase.objects.exists()


def test_external_id_is_unique_within_a_team(team, other_team):
    services.create_use_case(team=team, title="A", external_id="crm-1")
    services.create_use_case(team=other_team, title="B", external_id="crm-1")
    with pytest.raises(ValidationError):
        services.create_use_case(team=team, title="C", external_id="crm-1")


def _violations(condition):
    """(field, value) pairs that break a check constraint's condition, one per bound it sets."""
    for child in condition.children:
        if isinstance(child, Q):
            yield from _violations(child)
            continue
        lookup, bound = child
        name, _, operator = lookup.rpartition("__")
        yield name, {"gte": bound - 1, "gt": bound, "lte": bound + 1, "lt": bound}[operator]


CHECKS = [
    (constraint.name, *violation)
    for constraint in UseCase._meta.constraints
    if isinstance(constraint, CheckConstraint)
    for violation in _violations(constraint.condition)
]


@pytest.mark.parametrize(("constraint", "field", "value"), CHECKS)
def test_field_validation_enforces_every_check_constraint(team, constraint, field, value):
    # The services validate fields without asking the database to evaluate the check
    # constraints: the field validators must refuse whatever a constraint refuses, on
    # creation and on update, or the database would answer an IntegrityError (a 500).
    with pytest.raises(ValidationError) as error:
        services.create_use_case(team=team, title="Bot", **{field: value})
    assert field in error.value.message_dict
    use_case = services.create_use_case(team=team, title="Bot")
    with pytest.raises(ValidationError) as error:
        services.update_use_case(use_case=use_case, **{field: value})
    assert field in error.value.message_dict


def test_check_constraints_are_all_found():
    assert {name for name, _field, _value in CHECKS} == {"use_case_horizon_1_to_600", "use_case_inputs_non_negative"}
    assert len(CHECKS) == 7


def test_an_update_to_a_taken_external_id_is_refused(team):
    services.create_use_case(team=team, title="A", external_id="crm-1")
    use_case = services.create_use_case(team=team, title="B", external_id="crm-2")
    with pytest.raises(ValidationError) as error:
        services.update_use_case(use_case=use_case, external_id="crm-1")
    assert error.value.message_dict == {"__all__": ["Use case with this Team and External id already exists."]}
    use_case.refresh_from_db()
    assert use_case.external_id == "crm-2"


def test_update_use_case_bumps_version_flags_and_enqueues(team, django_capture_on_commit_callbacks):
    use_case = services.create_use_case(team=team, title="Bot")
    UseCase.objects.filter(pk=use_case.pk).update(needs_recompute=False)

    with django_capture_on_commit_callbacks() as callbacks:
        services.update_use_case(use_case=use_case, title="Better bot")

    use_case.refresh_from_db()
    assert (use_case.title, use_case.version, use_case.needs_recompute) == ("Better bot", 2, True)
    assert len(callbacks) == 1


def test_update_use_case_does_not_overwrite_newer_computed_figures(team):
    use_case = services.create_use_case(team=team, title="Bot")
    UseCase.objects.filter(pk=use_case.pk).update(monthly_cost=Decimal("42.00"))

    services.update_use_case(use_case=use_case, title="Renamed")

    use_case.refresh_from_db()
    assert use_case.monthly_cost == Decimal("42.00")


def test_enqueue_failure_never_fails_the_write(team, monkeypatch, django_capture_on_commit_callbacks):
    from portfolio import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.recompute_use_case, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        use_case = services.create_use_case(team=team, title="Still saved")

    use_case.refresh_from_db()
    assert use_case.needs_recompute is True


def test_deployment_changes_flag_their_use_case(team, gpt4o):
    use_case = services.create_use_case(team=team, title="Bot")
    UseCase.objects.filter(pk=use_case.pk).update(needs_recompute=False)

    deployment = services.create_deployment(use_case=use_case, model=gpt4o, **SUPPORT_BOT)
    use_case.refresh_from_db()
    assert use_case.needs_recompute is True

    UseCase.objects.filter(pk=use_case.pk).update(needs_recompute=False)
    services.update_deployment(deployment=deployment, requests_per_month=10)
    use_case.refresh_from_db()
    assert use_case.needs_recompute is True

    UseCase.objects.filter(pk=use_case.pk).update(needs_recompute=False)
    services.delete_deployment(deployment=deployment)
    use_case.refresh_from_db()
    assert use_case.needs_recompute is True


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"cached_input_ratio": Decimal("1.5")}, "cached_input_ratio"),
        ({"cached_input_ratio": Decimal("-0.1")}, "cached_input_ratio"),
        ({"hours_per_month": Decimal("800")}, "hours_per_month"),
        ({"requests_per_month": 10**11}, "requests_per_month"),
        ({"monthly_fixed_cost": Decimal("-5")}, "monthly_fixed_cost"),
    ],
)
def test_deployment_rejects_bad_numbers(team, gpt4o, fields, error_field):
    use_case = UseCaseFactory(team=team)
    with pytest.raises(ValidationError) as error:
        services.create_deployment(use_case=use_case, model=gpt4o, **fields)
    assert error_field in error.value.message_dict
    assert not Deployment.objects.exists()


def test_only_open_weight_models_can_be_self_hosted(team, gpt4o):
    with pytest.raises(ValidationError) as error:
        services.create_deployment(
            use_case=UseCaseFactory(team=team),
            model=gpt4o,
            hosting=Deployment.Hosting.SELF_HOSTED,
            gpu_count=1,
            gpu_type="H100 80GB",
        )
    assert "model" in error.value.message_dict


def test_self_hosted_needs_gpus_or_a_profile(team, llama70b):
    with pytest.raises(ValidationError) as error:
        services.create_deployment(
            use_case=UseCaseFactory(team=team), model=llama70b, hosting=Deployment.Hosting.SELF_HOSTED
        )
    assert {"gpu_count", "gpu_type"} <= set(error.value.message_dict)


def test_poc_end_date_must_follow_start(team):
    with pytest.raises(ValidationError) as error:
        services.create_poc(
            use_case=UseCaseFactory(team=team),
            hypothesis="x",
            start_date=datetime.date(2025, 5, 1),
            end_date=datetime.date(2025, 4, 1),
        )
    assert "end_date" in error.value.message_dict


def test_exchange_rate_factory_is_usable_for_other_pairs():
    rate = ExchangeRateFactory(base="EUR", quote="USD", rate=Decimal("1.08"))
    assert price_book().rate("USD", "EUR").rate == Decimal(1) / Decimal("1.08")
    assert rate.pk


def test_add_member_refuses_a_second_membership_in_the_same_team(team, member):
    with pytest.raises(ValidationError):
        services.add_member(team=team, user=member, role=Membership.Role.LEAD)
    assert Membership.objects.get(user=member).role == Membership.Role.MEMBER


def test_the_last_lead_can_be_neither_demoted_nor_removed(team):
    lead = MembershipFactory(team=team, role=Membership.Role.LEAD)

    with pytest.raises(ValidationError) as demoted:
        services.change_role(membership=lead, role=Membership.Role.MEMBER)
    with pytest.raises(ValidationError):
        services.remove_member(membership=lead)

    assert "role" in demoted.value.message_dict
    assert Membership.objects.get(pk=lead.pk).role == Membership.Role.LEAD


def test_a_lead_steps_down_once_another_member_leads(team, member):
    lead = MembershipFactory(team=team, role=Membership.Role.LEAD)
    services.change_role(membership=Membership.objects.get(user=member), role=Membership.Role.LEAD)

    services.remove_member(membership=lead)

    assert list(team.memberships.values_list("user__username", "role")) == [("alice", "lead")]


def test_change_role_refuses_an_unknown_role(team):
    membership = services.add_member(team=team, user=UserFactory())
    with pytest.raises(ValidationError) as error:
        services.change_role(membership=membership, role="owner")
    assert "role" in error.value.message_dict


def test_bulk_upsert_writes_every_kind_of_field_with_versions_and_history(team, other_team):
    owner = MembershipFactory(team=team, user=UserFactory(username="owner")).user
    existing = UseCaseFactory(team=team, external_id="a", title="Old", frameworks=["eu_ai_act"])
    UseCase.objects.filter(pk=existing.pk).update(needs_recompute=False)
    rows = [
        services.BulkRow(
            team=team,
            external_id="a",
            fields={
                "title": "New",
                "hourly_rate": Decimal("40.50"),
                "frameworks": [],
                "owner": owner,
                "stage": "poc",
            },
        ),
        services.BulkRow(
            team=other_team,
            external_id="b",
            fields={
                "title": "Created",
                "currency": "JPY",
                "one_time_cost": Decimal("1200000"),
                "horizon_months": 24,
                "frameworks": ["japan_ai_guidelines"],
            },
        ),
    ]

    result = services.bulk_upsert_use_cases(rows=rows)

    updated, created = UseCase.objects.get(pk=existing.pk), UseCase.objects.get(external_id="b")
    assert (result.updated[0].pk, result.created[0].pk) == (updated.pk, created.pk)
    assert (updated.title, updated.hourly_rate, updated.frameworks, updated.owner, updated.stage) == (
        "New",
        Decimal("40.50"),
        [],
        owner,
        "poc",
    )
    assert (updated.version, updated.needs_recompute) == (2, True) and updated.updated_at > existing.updated_at
    assert (created.team, created.currency, created.one_time_cost, created.horizon_months, created.frameworks) == (
        other_team,
        "JPY",
        Decimal("1200000.00"),
        24,
        ["japan_ai_guidelines"],
    )
    assert created.created_at and created.version == 1 and created.description == ""
    change = updated.history.latest()
    assert (change.history_type, change.title, change.version, change.history_change_reason) == ("~", "New", 2, None)
    assert (created.history.get().history_type, created.history.get().title) == ("+", "Created")


def test_bulk_upsert_validates_what_an_update_sets_and_every_field_of_a_new_row(team):
    UseCaseFactory(team=team, external_id="a")
    with pytest.raises(ValidationError) as error:
        services.bulk_upsert_use_cases(
            rows=[
                services.BulkRow(team=team, external_id="a", fields={"hourly_rate": Decimal("-1")}),
                services.BulkRow(team=team, external_id="b", fields={"hourly_rate": Decimal("1")}),  # no title
            ]
        )
    assert "hourly_rate" in error.value.message_dict["0"][0]
    assert "title" in error.value.message_dict["1"][0]


def test_bulk_upsert_runs_the_same_queries_for_2_or_200_rows(team, django_assert_max_num_queries):
    # SQLite's parameter limit splits an insert into batches of a few dozen rows: it gets 40.
    size = 200 if connection.vendor == "postgresql" else 40

    def rows(count, prefix):
        existing = [UseCaseFactory(team=team, external_id=f"{prefix}-old-{n}") for n in range(count // 2)]
        return [
            services.BulkRow(team=team, external_id=use_case.external_id, fields={"title": "Updated"})
            for use_case in existing
        ] + [
            services.BulkRow(team=team, external_id=f"{prefix}-new-{n}", fields={"title": "New"})
            for n in range(count - count // 2)
        ]

    few, many = rows(2, "few"), rows(size, "many")
    with django_assert_max_num_queries(14) as few_queries:
        services.bulk_upsert_use_cases(rows=few)
    with django_assert_max_num_queries(len(few_queries)):
        services.bulk_upsert_use_cases(rows=many)
    assert UseCase.objects.filter(title="Updated").count() == 1 + size // 2
