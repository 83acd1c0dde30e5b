import pytest
from django.urls import reverse

from portfolio import governance, services, webhooks
from portfolio.models import (
    ChecklistTemplate,
    CostSnapshot,
    Deployment,
    Membership,
    ProofOfConcept,
    Team,
    UseCase,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from tests.factories import (
    DeploymentFactory,
    MembershipFactory,
    ProofOfConceptFactory,
    UseCaseFactory,
    UserFactory,
    WebhookDeliveryFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def records(team, gpt4o):
    deployment = DeploymentFactory(use_case__team=team, model=gpt4o, requests_per_month=1000)
    services.recompute_use_case(use_case_id=deployment.use_case_id)
    return {
        Team: team,
        Membership: MembershipFactory(team=team),
        UseCase: deployment.use_case,
        Deployment: deployment,
        ProofOfConcept: ProofOfConceptFactory(use_case=deployment.use_case),
        CostSnapshot: CostSnapshot.objects.get(use_case=deployment.use_case),
    }


@pytest.mark.parametrize("model", [Team, Membership, UseCase, Deployment, ProofOfConcept, CostSnapshot])
def test_every_portfolio_admin_page_renders(admin_client, records, model):
    name = f"admin:portfolio_{model._meta.model_name}"
    assert admin_client.get(reverse(f"{name}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"{name}_change", args=[records[model].pk])).status_code == 200
    expected_add = 403 if model is CostSnapshot else 200
    assert admin_client.get(reverse(f"{name}_add")).status_code == expected_add


def test_admin_edit_of_a_use_case_flags_a_recompute(admin_client, records, django_capture_on_commit_callbacks):
    use_case = records[UseCase]
    UseCase.objects.filter(pk=use_case.pk).update(needs_recompute=False)
    url = reverse("admin:portfolio_usecase_change", args=[use_case.pk])
    form = {
        "team": use_case.team_id,
        "title": "Renamed",
        "description": "",
        "category": "other",
        "stage": "idea",
        "risk_tier": "unassessed",
        "data_classification": "internal",
        "currency": "USD",
        "hours_saved_per_month": "10",
        "hourly_rate": "50",
        "other_monthly_benefit": "0",
        "one_time_cost": "0",
        "monthly_fixed_cost": "0",
        "horizon_months": "36",
        "expected_monthly_active_users": "0",
        "ai_role": "business_user",
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
        "pocs-TOTAL_FORMS": "0",
        "pocs-INITIAL_FORMS": "0",
    }
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(url, form)

    assert response.status_code == 302, response.content.decode()[:2000]
    assert callbacks, "a recompute is queued after commit"
    use_case.refresh_from_db()
    assert (use_case.title, use_case.needs_recompute) == ("Renamed", True)
    services.recompute_stale()
    use_case.refresh_from_db()
    assert use_case.monthly_benefit == 500


# --- Governance -------------------------------------------------------------------------------


def use_case_form(use_case, **changes):
    return {
        "team": use_case.team_id,
        "title": use_case.title,
        "description": "",
        "category": "other",
        "stage": use_case.stage,
        "risk_tier": use_case.risk_tier,
        "data_classification": "internal",
        "currency": "USD",
        "hours_saved_per_month": "0",
        "hourly_rate": "0",
        "other_monthly_benefit": "0",
        "one_time_cost": "0",
        "monthly_fixed_cost": "0",
        "horizon_months": "36",
        "expected_monthly_active_users": "0",
        "ai_role": "business_user",
        "frameworks": ["eu_ai_act"],
        "deployments-TOTAL_FORMS": "0",
        "deployments-INITIAL_FORMS": "0",
        "pocs-TOTAL_FORMS": "0",
        "pocs-INITIAL_FORMS": "0",
        **changes,
    }


def test_governance_admin_pages_render(admin_client, team):
    use_case = UseCaseFactory(team=team)
    governance.evaluate_checklists(use_case_ids=[use_case.pk])
    item = use_case.checklist_items.select_related("template").first()
    for name, pk in (("checklisttemplate", item.template_id), ("checklistitem", item.pk)):
        assert admin_client.get(reverse(f"admin:portfolio_{name}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:portfolio_{name}_change", args=[pk])).status_code == 200
        assert admin_client.get(reverse(f"admin:portfolio_{name}_history", args=[pk])).status_code == 200
    assert admin_client.get(reverse("admin:portfolio_checklistitem_add")).status_code == 403


def test_a_template_is_added_with_its_conditions_as_checkboxes(admin_client):
    response = admin_client.post(
        reverse("admin:portfolio_checklisttemplate_add"),
        {
            "code": "red-team",
            "framework": "core",
            "category": "security",
            "title": "Red-teamed before launch",
            "guidance": "",
            "reference": "",
            "position": "0",
            "kind": "manual",
            "rule": "",
            "required": "on",
            "active": "on",
            "applies_to_risk_tiers": ["limited", "high"],
            "applies_to_hosting": ["api"],
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    template = ChecklistTemplate.objects.get(code="red-team")
    assert (set(template.applies_to_risk_tiers), template.applies_to_hosting, template.applies_to_ai_roles) == (
        {"limited", "high"},
        ["api"],
        [],
    )


def test_the_admin_holds_a_use_case_at_the_gate_too(admin_client, team, django_capture_on_commit_callbacks):
    use_case = UseCaseFactory(team=team, risk_tier="minimal")
    url = reverse("admin:portfolio_usecase_change", args=[use_case.pk])
    not_evaluated = admin_client.post(url, use_case_form(use_case, stage="production"))
    assert not_evaluated.status_code == 200 and "not been evaluated" in not_evaluated.content.decode()

    governance.evaluate_checklists(use_case_ids=[use_case.pk])
    use_case.refresh_from_db()
    refused = admin_client.post(url, use_case_form(use_case, stage="production"))
    assert refused.status_code == 200 and "eu-ai-literacy" in refused.content.decode()

    item = use_case.checklist_items.get(template__code="eu-ai-literacy")
    governance.waive_item(item=item, by=UserFactory(username="root"), reason="Group course covers it.")
    with django_capture_on_commit_callbacks():
        moved = admin_client.post(url, use_case_form(use_case, stage="production"))
    assert moved.status_code == 302
    assert UseCase.objects.get(pk=use_case.pk).stage == "production"


# --- Webhooks ----------------------------------------------------------------------------


def test_webhook_admin_pages_render(admin_client, team):
    delivery = WebhookDeliveryFactory(subscription__team=team)
    for name, pk in (("webhooksubscription", delivery.subscription_id), ("webhookdelivery", delivery.pk)):
        assert admin_client.get(reverse(f"admin:portfolio_{name}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:portfolio_{name}_change", args=[pk])).status_code == 200
    assert admin_client.get(reverse("admin:portfolio_webhooksubscription_add")).status_code == 200
    # The delivery log is read-only.
    assert admin_client.get(reverse("admin:portfolio_webhookdelivery_add")).status_code == 403
    filtered = admin_client.get(reverse("admin:portfolio_webhookdelivery_changelist"), {"status__exact": "failed"})
    assert filtered.status_code == 200 and not filtered.context["cl"].result_list


def test_adding_a_webhook_in_the_admin_shows_its_secret_once(admin_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    data = {
        "description": "CMDB",
        "target_url": "https://93.184.215.14/hooks",
        "events": ["use_case.created"],
        "active": "on",
    }
    response = admin_client.post(reverse("admin:portfolio_webhooksubscription_add"), data, follow=True)
    subscription = WebhookSubscription.objects.get()
    assert (subscription.owner.username, len(subscription.secret)) == ("root", 64)
    assert subscription.secret in "".join(str(message) for message in response.context["messages"])
    assert (
        subscription.secret
        not in admin_client.get(
            reverse("admin:portfolio_webhooksubscription_change", args=[subscription.pk])
        ).content.decode()
    )

    refused = admin_client.post(
        reverse("admin:portfolio_webhooksubscription_add"), {**data, "target_url": "http://169.254.169.254/latest/"}
    )
    assert refused.status_code == 200 and "public addresses only" in refused.content.decode()
    assert WebhookSubscription.objects.count() == 1


def test_the_admin_redelivers_an_abandoned_event(admin_client, django_capture_on_commit_callbacks):
    abandoned = WebhookDeliveryFactory(status=WebhookDelivery.Status.ABANDONED, delivered_at=None)
    with django_capture_on_commit_callbacks() as callbacks:
        admin_client.post(
            reverse("admin:portfolio_webhookdelivery_changelist"),
            {"action": "redeliver", "_selected_action": [abandoned.pk]},
        )
    copy = WebhookDelivery.objects.exclude(pk=abandoned.pk).get()
    assert (copy.status, copy.event_id) == (WebhookDelivery.Status.PENDING, abandoned.event_id)
    assert len(callbacks) == 1


# --- Webhook events from admin edits ---------------------------------------------------------


@pytest.fixture
def hook(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    return webhooks.create_subscription(
        owner=UserFactory(username="integrator"),
        target_url="https://127.0.0.1:9/hook",
        events=[event.value for event in WebhookEvent],
    )


def events(*types):
    return [
        (delivery.event_type, delivery.payload)
        for delivery in WebhookDelivery.objects.filter(event_type__in=types).order_by("pk")
    ]


def test_admin_edits_of_a_use_case_send_the_events_the_api_would(admin_client, hook, team):
    answer = admin_client.post(
        reverse("admin:portfolio_usecase_add"),
        use_case_form(UseCase(team=team, title="FAQ bot", stage="idea", risk_tier="minimal")),
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    use_case = UseCase.objects.get(title="FAQ bot")
    [(kind, payload)] = events("use_case.created")
    assert payload["data"]["id"] == use_case.pk and payload["data"]["team"] == team.slug

    changed = admin_client.post(
        reverse("admin:portfolio_usecase_change", args=[use_case.pk]),
        use_case_form(use_case, title="FAQ assistant", stage="poc"),
    )
    assert changed.status_code == 302
    [(_, updated)] = events("use_case.updated")
    assert updated["data"]["title"] == "FAQ assistant"
    [(_, moved)] = events("use_case.stage_changed")
    assert (moved["previous_stage"], moved["data"]["stage"]) == ("idea", "poc")


def test_a_refused_admin_save_sends_nothing(admin_client, hook, team):
    use_case = UseCaseFactory(team=team, risk_tier="minimal")
    refused = admin_client.post(
        reverse("admin:portfolio_usecase_change", args=[use_case.pk]), use_case_form(use_case, stage="production")
    )
    assert refused.status_code == 200
    assert not WebhookDelivery.objects.exists()


def test_admin_deployment_changes_send_events_and_flag_the_use_case(admin_client, hook, records):
    deployment = records[Deployment]
    url = reverse("admin:portfolio_deployment_change", args=[deployment.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(use_case=deployment.use_case_id, model=deployment.model_id, requests_per_month=2000)
    for name in ("self_hosting_profile", "gpu_type"):
        data.setdefault(name, "")
    assert admin_client.post(url, data).status_code == 302
    [(_, updated)] = events("deployment.changed")
    assert (updated["action"], updated["data"]["requests_per_month"]) == ("updated", 2000)

    UseCase.objects.filter(pk=deployment.use_case_id).update(needs_recompute=False)
    deleted = admin_client.post(
        reverse("admin:portfolio_deployment_changelist"),
        {"action": "delete_selected", "_selected_action": [deployment.pk], "post": "yes"},
    )
    assert deleted.status_code == 302 and not Deployment.objects.filter(pk=deployment.pk).exists()
    (_, gone) = events("deployment.changed")[-1]
    assert (gone["action"], gone["data"]["id"]) == ("deleted", deployment.pk)
    assert UseCase.objects.get(pk=deployment.use_case_id).needs_recompute
