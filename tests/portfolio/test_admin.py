from typing import Any

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.urls import reverse
from rest_framework.test import APIClient

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
    # Never evaluated: the gate evaluates the checklist, and the refusal takes that back too.
    not_evaluated = admin_client.post(url, use_case_form(use_case, stage="production"))
    assert not_evaluated.status_code == 200 and "eu-ai-literacy" in not_evaluated.content.decode()
    assert not use_case.checklist_items.exists()

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
    version = UseCase.objects.get(pk=deployment.use_case_id).version
    deleted = admin_client.post(
        reverse("admin:portfolio_deployment_changelist"),
        {"action": "delete_selected", "_selected_action": [deployment.pk], "post": "yes"},
    )
    assert deleted.status_code == 302 and not Deployment.objects.filter(pk=deployment.pk).exists()
    (_, gone) = events("deployment.changed")[-1]
    assert (gone["action"], gone["data"]["id"]) == ("deleted", deployment.pk)
    flagged = UseCase.objects.get(pk=deployment.use_case_id)
    assert (flagged.needs_recompute, flagged.version) == (True, version + 1)


# --- Writes through the services -------------------------------------------------------------


def unchanged(page) -> dict[str, Any]:
    """What an admin change page posts when it is saved as it is, its inline rows included."""
    data = {}
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data |= {management[name].html_name: value for name, value in management.initial.items()}
        forms += inline.formset.forms
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is not None and value is not False:
                data[form[name].html_name] = "on" if value is True else value
    return data


def row_prefixes(page, prefix: str) -> dict[int, str]:
    """The form prefix of each stored row of an inline, by primary key."""
    [formset] = [inline.formset for inline in page.context["inline_admin_formsets"] if inline.formset.prefix == prefix]
    return {form.instance.pk: form.prefix for form in formset.forms}


def shapes() -> list[tuple[str, str | None, str | None]]:
    """The deliveries' event types, deployment actions and previous stages, sorted."""
    sent = events(*WebhookEvent.values)
    return sorted((kind, payload.get("action"), payload.get("previous_stage")) for kind, payload in sent)


def test_an_admin_edit_bumps_the_version_so_a_stale_if_match_is_refused(admin_client, member, team):
    use_case = services.create_use_case(team=team, title="FAQ bot")
    api = APIClient()
    api.force_authenticate(member)
    url = f"/api/v1/use-cases/{use_case.pk}/"
    etag = api.get(url)["ETag"]

    edited = admin_client.post(
        reverse("admin:portfolio_usecase_change", args=[use_case.pk]), use_case_form(use_case, title="FAQ assistant")
    )

    assert edited.status_code == 302, edited.content.decode()[:2000]
    assert UseCase.objects.get(pk=use_case.pk).version == use_case.version + 1
    assert api.patch(url, {"title": "Stale"}, format="json", HTTP_IF_MATCH=etag).status_code == 412
    assert UseCase.objects.get(pk=use_case.pk).title == "FAQ assistant"


def test_the_admin_history_cannot_revert_a_use_case_past_the_services(admin_client, team):
    use_case = services.create_use_case(team=team, title="FAQ bot")
    services.update_use_case(use_case=use_case, title="FAQ assistant")
    first = use_case.history.earliest("history_date")
    url = reverse("admin:portfolio_usecase_simple_history", args=(use_case.pk, first.history_id))

    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, use_case_form(use_case, title="FAQ bot")).status_code == 403
    assert UseCase.objects.get(pk=use_case.pk).title == "FAQ assistant"


def test_an_admin_move_past_an_open_required_item_shows_the_gate_and_saves_nothing(admin_client, hook, team):
    use_case = UseCaseFactory(team=team, risk_tier="minimal")
    governance.evaluate_checklists(use_case_ids=[use_case.pk])
    use_case.refresh_from_db()
    WebhookDelivery.objects.all().delete()

    refused = admin_client.post(
        reverse("admin:portfolio_usecase_change", args=[use_case.pk]),
        use_case_form(use_case, title="Renamed", stage="production"),
    )

    assert refused.status_code == 200
    [message] = refused.context["adminform"].form.errors["stage"]
    assert "eu-ai-literacy" in message
    stored = UseCase.objects.get(pk=use_case.pk)
    assert (stored.title, stored.stage, stored.version) == (use_case.title, use_case.stage, use_case.version)
    assert not WebhookDelivery.objects.exists()


def test_an_admin_edit_sends_the_events_the_api_sends(admin_client, hook, member, team, gpt4o):
    def use_case_with_deployments(title):
        use_case = services.create_use_case(team=team, title=title, risk_tier="minimal")
        kept = services.create_deployment(use_case=use_case, model=gpt4o, name="kept", requests_per_month=1000)
        gone = services.create_deployment(use_case=use_case, model=gpt4o, name="gone")
        return use_case, kept, gone

    by_api, by_admin = use_case_with_deployments("By API"), use_case_with_deployments("By admin")
    WebhookDelivery.objects.all().delete()

    api = APIClient()
    api.force_authenticate(member)
    use_case, kept, gone = by_api
    assert (
        api.patch(f"/api/v1/use-cases/{use_case.pk}/", {"title": "Renamed", "stage": "poc"}, format="json").status_code
        == 200
    )
    added = {"use_case": use_case.pk, "model": gpt4o.key, "name": "added", "requests_per_month": 10}
    assert api.post("/api/v1/deployments/", added, format="json").status_code == 201
    assert api.patch(f"/api/v1/deployments/{kept.pk}/", {"requests_per_month": 2000}, format="json").status_code == 200
    assert api.delete(f"/api/v1/deployments/{gone.pk}/").status_code == 204
    sent_by_api = shapes()
    WebhookDelivery.objects.all().delete()

    use_case, kept, gone = by_admin
    url = reverse("admin:portfolio_usecase_change", args=[use_case.pk])
    page = admin_client.get(url)
    data = unchanged(page) | {"title": "Renamed", "stage": "poc"}
    rows = row_prefixes(page, "deployments")
    data |= {f"{rows[kept.pk]}-requests_per_month": 2000, f"{rows[gone.pk]}-DELETE": "on"}
    new_row = {
        key.replace(rows[kept.pk], "deployments-2"): value
        for key, value in data.items()
        if key.startswith(f"{rows[kept.pk]}-") and not key.endswith(("-id", "-DELETE"))
    }
    data |= new_row | {"deployments-2-name": "added", "deployments-TOTAL_FORMS": 3}
    saved = admin_client.post(url, data)

    assert saved.status_code == 302, saved.content.decode()[:3000]
    assert (
        shapes()
        == sent_by_api
        == [
            ("deployment.changed", "created", None),
            ("deployment.changed", "deleted", None),
            ("deployment.changed", "updated", None),
            ("use_case.stage_changed", None, "idea"),
            ("use_case.updated", None, None),
        ]
    )
    assert sorted(use_case.deployments.values_list("name", "requests_per_month")) == [("added", 2000), ("kept", 2000)]
    stored = UseCase.objects.get(pk=use_case.pk)
    assert (stored.title, stored.stage, stored.needs_recompute) == ("Renamed", "poc", True)


def test_a_use_case_added_with_a_deployment_in_the_admin_sends_both_events(admin_client, hook, team, gpt4o):
    data = use_case_form(UseCase(team=team, title="FAQ bot", stage="idea", risk_tier="minimal"))
    template = admin_client.get(reverse("admin:portfolio_deployment_add")).context["adminform"].form
    data |= {
        f"deployments-0-{name}": value
        for name in template.fields
        if (value := template[name].value()) is not None and value is not False and name != "use_case"
    }
    data |= {"deployments-TOTAL_FORMS": "1", "deployments-0-model": gpt4o.pk, "deployments-0-name": "chat"}

    added = admin_client.post(reverse("admin:portfolio_usecase_add"), data)

    assert added.status_code == 302, added.content.decode()[:3000]
    use_case = UseCase.objects.get(title="FAQ bot")
    assert list(use_case.deployments.values_list("name", flat=True)) == ["chat"]
    assert shapes() == [("deployment.changed", "created", None), ("use_case.created", None, None)]


# --- PoCs and memberships through the services ---------------------------------------------------


def spy_on(monkeypatch, *names) -> list[str]:
    """Record the calls of these services (a validating dry run calls one too)."""
    calls = []

    def spy(name, service):
        def call(**kwargs):
            calls.append(name)
            return service(**kwargs)

        return call

    for name in names:
        monkeypatch.setattr(services, name, spy(name, getattr(services, name)))
    return calls


def test_admin_writes_of_pocs_go_through_the_services(admin_client, records, monkeypatch):
    poc, use_case = records[ProofOfConcept], records[UseCase]
    calls = spy_on(monkeypatch, "create_poc", "update_poc", "delete_poc")

    url = reverse("admin:portfolio_proofofconcept_change", args=[poc.pk])
    data = unchanged(admin_client.get(url)) | {"hypothesis": "Deflects a third of tickets"}
    assert admin_client.post(url, data).status_code == 302
    assert "update_poc" in calls
    assert ProofOfConcept.objects.get(pk=poc.pk).hypothesis == "Deflects a third of tickets"

    use_case_url = reverse("admin:portfolio_usecase_change", args=[use_case.pk])
    page = admin_client.get(use_case_url)
    row = row_prefixes(page, "pocs")[poc.pk]
    data = unchanged(page) | {f"{row}-DELETE": "on"}
    data |= {
        "pocs-TOTAL_FORMS": 2,
        "pocs-1-hypothesis": "Summaries save time",
        "pocs-1-status": "planned",
        "pocs-1-cost": "0",
    }
    saved = admin_client.post(use_case_url, data)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    assert {"create_poc", "delete_poc"} <= set(calls)
    assert list(use_case.pocs.values_list("hypothesis", flat=True)) == ["Summaries save time"]


@pytest.fixture
def lead(team):
    return MembershipFactory(team=team, role=Membership.Role.LEAD)


def message_texts(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


def test_the_admin_keeps_a_teams_last_lead_as_the_service_does(admin_client, team, lead):
    member = MembershipFactory(team=team)
    keeps = "A team keeps at least one lead"

    deleted = admin_client.post(
        reverse("admin:portfolio_membership_delete", args=[lead.pk]), {"post": "yes"}, follow=True
    )
    assert keeps in message_texts(deleted)
    bulk = admin_client.post(
        reverse("admin:portfolio_membership_changelist"),
        {"action": "delete_selected", "_selected_action": [lead.pk], "post": "yes"},
        follow=True,
    )
    assert keeps in message_texts(bulk)
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()

    demoted = admin_client.post(reverse("admin:portfolio_membership_change", args=[lead.pk]), {"role": "member"})
    assert demoted.status_code == 200 and keeps in demoted.context["adminform"].form.errors["role"][0]

    team_url = reverse("admin:portfolio_team_change", args=[team.pk])
    page = admin_client.get(team_url)
    rows = row_prefixes(page, "memberships")
    removed = admin_client.post(team_url, unchanged(page) | {f"{rows[lead.pk]}-DELETE": "on"})
    assert removed.status_code == 200 and keeps in " ".join(map(str, removed.context["errors"]))
    assert Membership.objects.get(pk=lead.pk).role == Membership.Role.LEAD

    # Handing the role over in one save passes: the new lead is made before the old one goes.
    handed_over = admin_client.post(
        team_url, unchanged(page) | {f"{rows[member.pk]}-role": "lead", f"{rows[lead.pk]}-DELETE": "on"}
    )
    assert handed_over.status_code == 302, handed_over.content.decode()[:3000]
    assert list(team.memberships.values_list("pk", "role")) == [(member.pk, Membership.Role.LEAD)]


def test_a_member_added_in_the_admin_goes_through_the_service(admin_client, team, lead, monkeypatch):
    calls = spy_on(monkeypatch, "add_member")
    newcomer = UserFactory(username="carol")
    added = admin_client.post(
        reverse("admin:portfolio_membership_add"), {"team": team.pk, "user": newcomer.pk, "role": "member"}
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    assert "add_member" in calls
    assert Membership.objects.get(user=newcomer).team == team
