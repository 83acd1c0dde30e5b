"""Uploaded files: replaced evidence and stale import previews are deleted, and evidence is
downloaded only through views that check who may see the item, in every mode."""

import importlib
import io
import os
import time

import pytest
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import clear_url_caches, reverse

import config.urls
from portfolio import governance, services, tasks
from portfolio.models import ChecklistItem
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def item(team):
    use_case = services.create_use_case(team=team, title="FAQ bot", risk_tier="minimal")
    governance.evaluate_checklists(use_case_ids=[use_case.pk])
    return ChecklistItem.objects.filter(use_case=use_case, template__kind="manual").order_by("template__code").first()


def record_file(item, member, name: str, content: bytes = b"evidence") -> ChecklistItem:
    return governance.record_evidence(item=item, by=member, file=SimpleUploadedFile(name, content))


def stored(media, item: ChecklistItem) -> bool:
    return (media / item.evidence_file.name).exists()


# --- Replaced evidence ----------------------------------------------------------------------


def test_a_replaced_evidence_file_is_deleted_once_the_change_commits(
    item, member, media, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = record_file(item, member, "plan.txt")
    old_name = first.evidence_file.name

    with django_capture_on_commit_callbacks() as callbacks:
        second = record_file(item, member, "plan.txt", b"new plan")
        assert (media / old_name).exists()  # Not before the commit.
    for callback in callbacks:
        callback()

    assert not (media / old_name).exists()
    assert second.evidence_file.name != old_name and stored(media, second)
    assert ChecklistItem.objects.get(pk=item.pk).evidence_file.read() == b"new plan"


def test_a_removed_evidence_file_is_deleted_once_the_change_commits(
    item, member, media, django_capture_on_commit_callbacks
):
    first = record_file(item, member, "plan.txt")
    with django_capture_on_commit_callbacks(execute=True):
        governance.record_evidence(item=item, by=member, file=None, text="Moved to the wiki.")
    assert not (media / first.evidence_file.name).exists()


def test_a_rolled_back_replacement_keeps_the_old_file(item, member, media, django_capture_on_commit_callbacks):
    first = record_file(item, member, "plan.txt")
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        record_file(item, member, "plan.txt", b"new plan")
        raise RuntimeError("The caller's transaction fails after the evidence was recorded.")
    assert callbacks == []
    assert stored(media, first)
    assert ChecklistItem.objects.get(pk=item.pk).evidence_file.name == first.evidence_file.name


def test_evidence_without_a_new_file_keeps_the_file(item, member, media, django_capture_on_commit_callbacks):
    first = record_file(item, member, "plan.txt")
    with django_capture_on_commit_callbacks(execute=True):
        governance.record_evidence(item=item, by=member, text="See the attached plan.")
    assert stored(media, first)


# --- Stale import previews -----------------------------------------------------------------------


def preview_file(media, name: str, *, age_seconds: float):
    path = media / "imports" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"team,external_id\n")
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def test_the_sweep_deletes_previews_older_than_the_age_and_keeps_newer_ones(media, settings):
    settings.IMPORT_PREVIEW_MAX_AGE_SECONDS = 600
    stale = preview_file(media, "stale.csv", age_seconds=601)
    fresh = preview_file(media, "fresh.xlsx", age_seconds=590)

    assert tasks.sweep_import_previews() == 1
    assert (stale.exists(), fresh.exists()) == (False, True)
    assert tasks.sweep_import_previews() == 0


def test_the_sweep_follows_the_default_age_of_an_hour(media):
    stale = preview_file(media, "stale.csv", age_seconds=3_601)
    fresh = preview_file(media, "fresh.csv", age_seconds=3_500)
    assert tasks.sweep_import_previews() == 1
    assert (stale.exists(), fresh.exists()) == (False, True)


def test_the_sweep_has_nothing_to_do_before_the_first_import(media):
    assert tasks.sweep_import_previews() == 0


def test_beat_runs_the_sweep(settings):
    schedule = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["portfolio.tasks.sweep_import_previews"] == 300


def test_a_preview_older_than_the_age_cannot_be_confirmed(member, team, media, settings, monkeypatch):
    settings.IMPORT_PREVIEW_MAX_AGE_SECONDS = 60
    # The preview's token is signed two minutes ago.
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(int(time.time()) - 120))
    upload = io.BytesIO(b"team,external_id,title\nsupport,x-1,Late\n")
    upload.name = "late.csv"
    client = logged_in(member)
    token = client.post(reverse("portfolio:usecase-import"), {"file": upload}).context["confirm_form"].initial["token"]

    late = client.post(reverse("portfolio:usecase-import-confirm"), {"token": token}, follow=True)
    assert "expired or was already imported" in late.content.decode()
    settings.IMPORT_PREVIEW_MAX_AGE_SECONDS = 3_600
    assert client.post(reverse("portfolio:usecase-import-confirm"), {"token": token}).status_code == 302


# --- Serving evidence ----------------------------------------------------------------------------


@pytest.fixture
def debug_urls(settings, media):
    """``config.urls`` as ``DJANGO_DEBUG=1`` builds it, with this test's MEDIA_ROOT; restored afterwards."""
    settings.DEBUG = True
    clear_url_caches()
    importlib.reload(config.urls)
    yield
    settings.DEBUG = False
    importlib.reload(config.urls)
    clear_url_caches()


def test_no_url_serves_media_even_with_debug_on(debug_urls, item, member, media, settings):
    evidence = record_file(item, member, "plan.txt")
    assert stored(media, evidence)
    url = f"{settings.MEDIA_URL}{evidence.evidence_file.name}"
    assert url.startswith("/media/evidence/")
    assert Client().get(url).status_code == 404
    assert logged_in(member).get(url).status_code == 404


def test_the_evidence_file_view_answers_the_team_only(item, member, outsider, manager, media):
    record_file(item, member, "plan.txt", b"the plan")
    url = reverse("portfolio:checklistitem-evidence-file", args=[item.pk])

    for user in (member, manager):
        response = logged_in(user).get(url)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == b"the plan"
        assert response["Content-Disposition"] == 'attachment; filename="plan.txt"'
    assert logged_in(outsider).get(url).status_code == 404
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login") + "?next=")


def test_an_item_without_a_file_or_with_a_lost_file_is_a_404(item, member, media):
    url = reverse("portfolio:checklistitem-evidence-file", args=[item.pk])
    assert logged_in(member).get(url).status_code == 404
    evidence = record_file(item, member, "plan.txt")
    (media / evidence.evidence_file.name).unlink()
    assert logged_in(member).get(url).status_code == 404


def test_the_use_case_page_and_the_admin_link_the_file_through_the_view(item, member, media, settings):
    evidence = record_file(item, member, "plan.txt")
    url = reverse("portfolio:checklistitem-evidence-file", args=[item.pk])

    page = logged_in(member).get(reverse("portfolio:usecase-detail", args=[item.use_case_id])).content.decode()
    assert f'href="{url}"' in page and settings.MEDIA_URL + "evidence" not in page

    admin = logged_in(UserFactory(username="root", is_staff=True, is_superuser=True))
    change = admin.get(reverse("admin:portfolio_checklistitem_change", args=[item.pk])).content.decode()
    assert f'href="{url}"' in change and evidence.evidence_file.name not in change
