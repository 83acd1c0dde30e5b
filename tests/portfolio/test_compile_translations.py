import polib
import pytest
from django.core.management import call_command
from django.utils import translation
from rest_framework.test import APIClient

from portfolio.models import WebhookEvent


def test_japanese_catalogue_is_complete_and_compiles_without_gettext(tmp_path, settings):
    po_path = settings.BASE_DIR / "locale" / "ja" / "LC_MESSAGES" / "django.po"
    catalogue = polib.pofile(str(po_path))
    assert not catalogue.untranslated_entries()
    assert not [entry for entry in catalogue.fuzzy_entries() if not entry.obsolete]

    copy = tmp_path / "ja" / "LC_MESSAGES"
    copy.mkdir(parents=True)
    (copy / "django.po").write_bytes(po_path.read_bytes())
    settings.LOCALE_PATHS = [tmp_path]
    call_command("compile_translations", verbosity=0)
    compiled = polib.mofile(str(copy / "django.mo"))
    assert compiled.find("Log out").msgstr == "ログアウト"


@pytest.mark.django_db
def test_webhook_and_outage_messages_read_in_japanese(manager):
    with translation.override("ja"):
        assert str(WebhookEvent.USE_CASE_CREATED.label) == "ユースケース作成"
    client = APIClient(HTTP_ACCEPT_LANGUAGE="ja")
    client.force_authenticate(manager)
    answer = client.post(
        "/api/v1/webhooks/", {"target_url": "ftp://example.com/hook", "events": ["use_case.created"]}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json()["target_url"] == ["送信先は http と https のみ使えます。"]
