import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from portfolio import governance, services
from portfolio.models import ChecklistItem, UseCase
from tests.factories import UseCaseFactory

pytestmark = pytest.mark.django_db

SUPPORT_BOT = {"requests_per_month": 1_000_000, "avg_input_tokens": 1_000, "avg_output_tokens": 300}


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def evaluate(use_case: UseCase) -> None:
    """What the recompute that follows every change of inputs runs, and the nightly job."""
    governance.evaluate_checklists(use_case_ids=[use_case.pk])


def item_of(use_case: UseCase, code: str) -> ChecklistItem:
    return ChecklistItem.objects.get(use_case=use_case, template__code=code)


def url(item: ChecklistItem, suffix: str = "") -> str:
    return f"/api/v1/checklist-items/{item.pk}/{suffix}"


@pytest.fixture
def bot(team, gpt4o):
    """A minimal-risk FAQ bot on GPT-4o: only the EU AI Act's AI-literacy item is open."""
    use_case = services.create_use_case(team=team, title="FAQ bot", external_id="crm-1", risk_tier="minimal")
    services.create_deployment(use_case=use_case, model=gpt4o, status="active", **SUPPORT_BOT)
    evaluate(use_case)
    return use_case


@pytest.fixture
def literacy(bot):
    return item_of(bot, "eu-ai-literacy")


# --- Reading ----------------------------------------------------------------------------------


def test_checklist_items_are_scoped_to_the_members_teams_and_filtered(member, manager, outsider, bot, other_team):
    theirs = UseCaseFactory(team=other_team)
    evaluate(theirs)
    mine = api(member).get("/api/v1/checklist-items/").json()
    assert {row["use_case"] for row in mine["results"]} == {bot.pk}
    assert (
        api(manager).get("/api/v1/checklist-items/").json()["count"] == mine["count"] + theirs.checklist_items.count()
    )
    assert api(outsider).get(url(item_of(bot, "eu-ai-literacy"))).status_code == 404

    licensing = api(member).get("/api/v1/checklist-items/", {"use_case": bot.pk, "category": "licensing"}).json()
    assert {row["code"] for row in licensing["results"]} == {
        "core-licence-known",
        "core-licence-commercial-use",
        "core-licence-user-limit",
    }
    open_items = api(member).get("/api/v1/checklist-items/", {"status": "open", "framework": "eu_ai_act"}).json()
    assert [row["code"] for row in open_items["results"]] == ["eu-ai-literacy"]
    assert api(member).get("/api/v1/checklist-items/", {"use_case": "x"}).status_code == 400


def test_an_item_reads_with_its_template(member, literacy):
    body = api(member).get(url(literacy)).json()
    assert body | {"id": 0, "created_at": "", "updated_at": "", "use_case": 0, "title": "", "guidance": ""} == {
        "id": 0,
        "use_case": 0,
        "team": "support",
        "code": "eu-ai-literacy",
        "framework": "eu_ai_act",
        "category": "ethics",
        "kind": "manual",
        "title": "",
        "guidance": "",
        "reference": "EU AI Act (Regulation (EU) 2024/1689) Art. 4",
        "required": True,
        "status": "open",
        "detail": "",
        "evidence_text": "",
        "evidence_url": "",
        "evidence_file": None,
        "evidence_file_name": None,
        "recorded_by": None,
        "recorded_at": None,
        "waiver_reason": "",
        "waived_by": None,
        "waived_at": None,
        "waiver_expires_on": None,
        "created_at": "",
        "updated_at": "",
    }


def test_listing_items_runs_a_constant_number_of_queries(manager, team, django_assert_max_num_queries):
    for _ in range(20):
        evaluate(UseCaseFactory(team=team, risk_tier="high", data_classification="personal"))
    with django_assert_max_num_queries(5):
        response = api(manager).get("/api/v1/checklist-items/", {"page_size": 500})
    assert response.json()["count"] > 200


# --- Evidence and waivers -------------------------------------------------------------------


def test_a_member_records_evidence_and_passes_a_manual_item(member, bot, literacy):
    response = api(member).patch(
        url(literacy),
        {
            "status": "passed",
            "evidence_text": "All operators trained.",
            "evidence_url": "https://intranet.example.com/ai-course",
        },
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["recorded_by"], body["evidence_text"]) == ("passed", "alice", "All operators trained.")
    bot.refresh_from_db()
    assert bot.governance_status == "compliant"


def test_passing_without_evidence_is_a_400(member, literacy):
    response = api(member).patch(url(literacy), {"status": "passed"}, format="json")
    assert response.status_code == 400 and "evidence_text" in response.json()


def test_a_member_trying_to_waive_is_refused_with_403(member, literacy):
    response = api(member).patch(
        url(literacy), {"status": "waived", "waiver_reason": "We know what we do."}, format="json"
    )
    assert response.status_code == 403
    literacy.refresh_from_db()
    assert (literacy.status, literacy.waiver_reason) == ("open", "")


def test_a_manager_waives_with_a_reason(manager, bot, literacy):
    expires = timezone.localdate() + datetime.timedelta(days=90)
    response = api(manager).patch(
        url(literacy),
        {
            "status": "waived",
            "waiver_reason": "Covered by the group-wide AI course.",
            "waiver_expires_on": expires.isoformat(),
        },
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["waived_by"], body["waiver_reason"], body["waiver_expires_on"]) == (
        "waived",
        "carol",
        "Covered by the group-wide AI course.",
        expires.isoformat(),
    )
    assert body["waived_at"] is not None
    bot.refresh_from_db()
    assert bot.governance_status == "compliant"


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_waiving_without_a_reason_is_a_400(manager, literacy, reason):
    payload = {"status": "waived"} if reason is None else {"status": "waived", "waiver_reason": reason}
    response = api(manager).patch(url(literacy), payload, format="json")
    assert response.status_code == 400 and "waiver_reason" in response.json()
    literacy.refresh_from_db()
    assert literacy.status == "open"


def test_a_reason_without_the_waived_status_is_a_400(manager, literacy):
    response = api(manager).patch(url(literacy), {"waiver_reason": "Why not."}, format="json")
    assert response.status_code == 400


def test_an_automatic_items_status_cannot_be_set_by_hand(member, manager, bot):
    risk = item_of(bot, "core-risk-tier")
    for user in (member, manager):
        response = api(user).patch(url(risk), {"status": "failed"}, format="json")
        assert response.status_code == 400 and "status" in response.json()


def test_an_outsider_cannot_touch_another_teams_item(outsider, literacy):
    assert api(outsider).patch(url(literacy), {"evidence_text": "x"}, format="json").status_code == 404


def test_an_expired_waiver_reopens_the_item(manager, bot, literacy):
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)
    api(manager).patch(
        url(literacy),
        {
            "status": "waived",
            "waiver_reason": "Until the course on the 1st.",
            "waiver_expires_on": tomorrow.isoformat(),
        },
        format="json",
    )

    governance.expire_waivers(today=tomorrow)  # The nightly job.

    body = api(manager).get(url(literacy)).json()
    assert (body["status"], body["waiver_reason"], body["waived_by"]) == ("open", "", None)
    assert body["detail"] == f"The waiver expired on {tomorrow.isoformat()}."
    bot.refresh_from_db()
    assert bot.governance_status == "open"


# --- Evidence files -------------------------------------------------------------------------


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.EVIDENCE_MAX_UPLOAD_BYTES = 1_000
    return tmp_path


def test_a_small_evidence_file_is_stored_and_downloaded_by_the_team_only(member, outsider, literacy, media):
    upload = SimpleUploadedFile("training-record.pdf", b"%PDF-1.4 trained", content_type="application/pdf")
    response = api(member).patch(url(literacy), {"evidence_file": upload, "status": "passed"}, format="multipart")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "passed" and body["evidence_file_name"] == "training-record.pdf"
    assert body["evidence_file"].endswith(url(literacy, "evidence-file/"))
    download = api(member).get(url(literacy, "evidence-file/"))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"%PDF-1.4 trained"
    assert "attachment" in download["Content-Disposition"]
    assert api(outsider).get(url(literacy, "evidence-file/")).status_code == 404


@pytest.mark.parametrize(
    "upload",
    [
        SimpleUploadedFile("huge.pdf", b"x" * 1_001, content_type="application/pdf"),
        SimpleUploadedFile("payload.exe", b"MZ", content_type="application/octet-stream"),
        SimpleUploadedFile("no-extension", b"text", content_type="text/plain"),
        SimpleUploadedFile("empty.pdf", b"", content_type="application/pdf"),
    ],
    ids=["too-large", "odd-extension", "no-extension", "empty"],
)
def test_a_huge_or_odd_evidence_file_is_a_400_and_stores_nothing(member, literacy, media, upload):
    response = api(member).patch(url(literacy), {"evidence_file": upload}, format="multipart")
    assert response.status_code == 400 and "evidence_file" in response.json()
    literacy.refresh_from_db()
    assert not literacy.evidence_file
    assert not any(media.rglob("*.*"))


def test_an_item_without_a_file_has_nothing_to_download(member, literacy):
    assert api(member).get(url(literacy, "evidence-file/")).status_code == 404


# --- The stage gate ---------------------------------------------------------------------------


def test_a_refused_stage_change_answers_409_with_the_blocking_items_then_passes(member, manager, bot, literacy):
    UseCase.objects.filter(pk=bot.pk).update(risk_tier="unassessed")
    evaluate(bot)
    client = api(member)

    refused = client.patch(f"/api/v1/use-cases/{bot.pk}/", {"stage": "production"}, format="json")

    assert refused.status_code == 409
    body = refused.json()
    risk = item_of(bot, "core-risk-tier")
    assert [(row["id"], row["code"], row["category"], row["status"]) for row in body["blocking_items"]] == [
        (risk.pk, "core-risk-tier", "ethics", "open"),
        (literacy.pk, "eu-ai-literacy", "ethics", "open"),
    ]
    assert body["blocking_items"][0]["title"] == "Risk tier assessed, and not unacceptable"
    assert "core-risk-tier" in body["detail"]
    assert UseCase.objects.get(pk=bot.pk).stage == "idea"

    # A manager waives one, the team passes the other: the gate opens.
    assert (
        api(manager)
        .patch(url(risk), {"status": "waived", "waiver_reason": "Assessed by legal, tier pending."}, format="json")
        .status_code
        == 200
    )
    assert (
        client.patch(url(literacy), {"status": "passed", "evidence_text": "Course done."}, format="json").status_code
        == 200
    )
    allowed = client.patch(f"/api/v1/use-cases/{bot.pk}/", {"stage": "production"}, format="json")
    assert allowed.status_code == 200
    assert (allowed.json()["stage"], allowed.json()["governance_status"]) == ("production", "compliant")


def test_a_change_of_inputs_in_the_same_request_is_evaluated_before_the_gate(member, bot, literacy):
    api(member).patch(url(literacy), {"status": "passed", "evidence_text": "Course done."}, format="json")
    response = api(member).patch(
        f"/api/v1/use-cases/{bot.pk}/", {"stage": "production", "risk_tier": "high"}, format="json"
    )
    assert response.status_code == 409
    codes = {row["code"]: row["id"] for row in response.json()["blocking_items"]}
    assert {"core-human-oversight", "core-bias-evaluation"} <= set(codes)
    assert codes["core-human-oversight"] is None  # Would be created by this refused change.
    assert UseCase.objects.get(pk=bot.pk).risk_tier == "minimal"


def test_a_sync_moving_into_production_is_refused_with_409(member, bot):
    response = api(member).put(
        "/api/v1/use-cases/by-external-id/support/crm-1/", {"title": "FAQ bot", "stage": "production"}, format="json"
    )
    assert response.status_code == 409
    assert [row["code"] for row in response.json()["blocking_items"]] == ["eu-ai-literacy"]


def test_a_bulk_row_refused_by_the_gate_is_a_row_error(member, bot):
    rows = [
        {"team": "support", "external_id": "crm-1", "title": "FAQ bot", "stage": "scaled"},
        {"team": "support", "external_id": "crm-2", "title": "New", "stage": "poc"},
    ]
    response = api(member).post("/api/v1/use-cases/bulk/", {"rows": rows}, format="json")
    assert response.status_code == 400
    assert list(response.json()["rows"]) == ["0"]
    assert UseCase.objects.count() == 1


# --- Scenarios from the specification -----------------------------------------------------


def test_swapping_to_llama_3_with_800_million_users_turns_the_licensing_check_red(member, team, gpt4o):
    product = services.create_use_case(
        team=team, title="Consumer assistant", risk_tier="limited", expected_monthly_active_users=800_000_000
    )
    deployment = services.create_deployment(use_case=product, model=gpt4o, status="active", **SUPPORT_BOT)
    evaluate(product)
    assert item_of(product, "core-licence-user-limit").status == "passed"

    swapped = api(member).patch(f"/api/v1/deployments/{deployment.pk}/", {"model": "meta/llama-3-70b"}, format="json")
    assert swapped.status_code == 200
    evaluate(product)

    failed = (
        api(member)
        .get("/api/v1/checklist-items/", {"use_case": product.pk, "category": "licensing", "status": "failed"})
        .json()
    )
    assert [row["code"] for row in failed["results"]] == ["core-licence-user-limit"]
    assert "700,000,000" in failed["results"][0]["detail"]
    assert api(member).get(f"/api/v1/use-cases/{product.pk}/").json()["governance_status"] == "failed"


def test_confidential_data_needs_an_agreement_on_api_deployments_but_not_self_hosted(member, team):
    def checked(**deployment):
        use_case = services.create_use_case(
            team=team, title=str(deployment), data_classification="confidential", risk_tier="minimal"
        )
        created = api(member).post(
            "/api/v1/deployments/", {"use_case": use_case.pk, "status": "active", **deployment}, format="json"
        )
        assert created.status_code == 201, created.json()
        evaluate(use_case)
        return item_of(use_case, "core-data-processing-agreement")

    by_api = checked(model="openai/gpt-4o")
    assert by_api.status == "failed" and "openai/gpt-4o" in by_api.detail
    assert checked(model="openai/gpt-4o", data_processing_agreement=True).status == "passed"
    assert (
        checked(
            model="meta/llama-3-70b", hosting="self_hosted", gpu_count=4, gpu_hourly_cost="2.50", environment="on_prem"
        ).status
        == "passed"
    )


def test_the_use_case_records_the_companys_ai_role_and_frameworks(member, team):
    response = api(member).post(
        "/api/v1/use-cases/",
        {
            "team": "support",
            "title": "Contract reader",
            "ai_role": "provider",
            "frameworks": ["eu_ai_act", "japan_ai_guidelines"],
        },
        format="json",
    )
    assert response.status_code == 201
    assert (response.json()["ai_role"], response.json()["frameworks"]) == (
        "provider",
        ["eu_ai_act", "japan_ai_guidelines"],
    )
    assert (
        api(member)
        .post("/api/v1/use-cases/", {"team": "support", "title": "x", "frameworks": ["core"]}, format="json")
        .status_code
        == 400
    )
    assert (
        api(member)
        .post(
            "/api/v1/use-cases/",
            {"team": "support", "title": "x", "frameworks": ["eu_ai_act", "eu_ai_act"]},
            format="json",
        )
        .status_code
        == 400
    )


# --- Audit trail and summary -----------------------------------------------------------------


def test_the_items_audit_trail_shows_who_changed_what(member, manager, literacy):
    api(member).patch(url(literacy), {"evidence_text": "Course booked for May."}, format="json")
    api(manager).patch(url(literacy), {"status": "waived", "waiver_reason": "Until the May course."}, format="json")

    trail = api(member).get(url(literacy, "history/")).json()

    assert [(entry["history_type"], entry["history_user"], entry["history_change_reason"]) for entry in trail] == [
        ("changed", "carol", "waived"),
        ("changed", "alice", "evidence recorded"),
        ("created", None, "checklist evaluation"),
    ]
    waived = {change["field"]: (change["old"], change["new"]) for change in trail[0]["changes"]}
    assert waived["status"] == ("open", "waived")
    assert waived["waiver_reason"] == ("", "Until the May course.")
    assert waived["waived_by"] == (None, manager.pk)
    evidence = {change["field"]: change["new"] for change in trail[1]["changes"]}
    assert evidence["evidence_text"] == "Course booked for May."


def test_the_use_case_audit_trail_shows_who_changed_what(member, outsider, bot):
    api(member).patch(f"/api/v1/use-cases/{bot.pk}/", {"title": "FAQ bot v2", "hourly_rate": "45.50"}, format="json")

    trail = api(member).get(f"/api/v1/use-cases/{bot.pk}/history/").json()

    latest = trail[0]
    assert (latest["history_type"], latest["history_user"]) == ("changed", "alice")
    changes = {change["field"]: (change["old"], change["new"]) for change in latest["changes"]}
    assert changes["title"] == ("FAQ bot", "FAQ bot v2")
    assert changes["hourly_rate"] == ("0.00", "45.50")
    assert trail[-1]["history_type"] == "created"
    assert api(outsider).get(f"/api/v1/use-cases/{bot.pk}/history/").status_code == 404


def test_the_deployment_audit_trail(member, bot, llama70b):
    deployment = bot.deployments.get()
    api(member).patch(f"/api/v1/deployments/{deployment.pk}/", {"model": "meta/llama-3-70b"}, format="json")
    trail = api(member).get(f"/api/v1/deployments/{deployment.pk}/history/").json()
    assert {"field": "model", "old": deployment.model_id, "new": llama70b.pk} in trail[0]["changes"]


def test_the_summary_reports_compliance(manager, member, team, bot, literacy):
    failing = UseCaseFactory(team=team, risk_tier="unacceptable")
    evaluate(failing)
    api(member).patch(url(literacy), {"status": "passed", "evidence_text": "Course done."}, format="json")

    compliance = api(manager).get("/api/v1/portfolio/summary/").json()["compliance"]

    assert compliance["use_cases"] == {"not_evaluated": 0, "open": 0, "compliant": 1, "failed": 1}
    assert compliance["compliant_pct"] == "50.00"
    assert compliance["failed_items_by_category"] == {"licensing": 0, "security": 0, "ethics": 1}
    assert compliance["open_items_by_category"] == {"licensing": 0, "security": 0, "ethics": 1}


def test_the_price_audit_trail_shows_who_added_it(manager, member, gpt4o):
    created = api(manager).post(
        "/api/v1/prices/",
        {
            "model": "openai/gpt-4o",
            "input_per_million": "2.00",
            "output_per_million": "8.00",
            "effective_from": "2030-01-01",
        },
        format="json",
    )
    trail = api(member).get(f"/api/v1/prices/{created.json()['id']}/history/").json()
    assert [(entry["history_type"], entry["history_user"]) for entry in trail] == [("created", "carol")]
    added = {change["field"]: change["new"] for change in trail[0]["changes"]}
    assert added["input_per_million"].startswith("2.00") and added["effective_from"] == "2030-01-01"


def test_an_evidence_file_is_removed_with_null_and_the_trail_keeps_its_name(member, literacy, media):
    client = api(member)
    client.patch(url(literacy), {"evidence_file": SimpleUploadedFile("plan.txt", b"plan")}, format="multipart")
    response = client.patch(
        url(literacy), {"evidence_file": None, "evidence_text": "Plan moved to the wiki."}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["evidence_file"], response.json()["evidence_file_name"]) == (None, None)
    removed = {change["field"]: change for change in client.get(url(literacy, "history/")).json()[0]["changes"]}
    assert removed["evidence_file"]["old"].endswith("/plan.txt") and removed["evidence_file"]["new"] == ""
