"""The production static pipeline: ``collectstatic`` into a manifest, then pages served from it.

Tests otherwise use plain static storage (config/test_settings.py); here the manifest
storage of ``DJANGO_DEBUG=0`` collects every file the app ships, as a release does, and a
page's static references must all resolve from it.
"""

import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_STORAGE = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


@pytest.fixture
def collected(tmp_path):
    """Static files collected into a fresh STATIC_ROOT with the production storage."""
    vendor = ROOT / "static" / "vendor"
    if not (vendor / "chart.umd.min.js").exists():
        pytest.fail("static/vendor/ is empty: run `make assets` (make test does).")
    # override_settings resets the static storage on entry and exit (setting_changed).
    with override_settings(STATIC_ROOT=tmp_path / "staticfiles", STORAGES=MANIFEST_STORAGE):
        call_command("collectstatic", interactive=False, verbosity=0)
        yield tmp_path / "staticfiles"


def test_every_referenced_file_of_the_vendored_bundles_is_shipped():
    # A bundle naming a source map that `make assets` did not copy fails collectstatic.
    vendor = ROOT / "static" / "vendor"
    for bundle in vendor.glob("*.js"):
        for name in re.findall(r"sourceMappingURL=(\S+)", bundle.read_text(errors="replace")):
            assert (vendor / name).exists(), f"{bundle.name} names {name}, which static/vendor/ lacks"


def test_collectstatic_with_the_production_storage_succeeds(collected):
    manifest = (collected / "staticfiles.json").read_text()
    for name in ("vendor/chart.umd.min.js", "vendor/htmx.min.js", "css/app.css", "favicon.svg"):
        assert f'"{name}"' in manifest


def test_pages_render_with_hashed_static_names(collected, client):
    # Not the ``settings`` fixture: its restore would bring back the overridden STORAGES.
    with override_settings(DEBUG=False):
        response = client.get("/accounts/login/")
    assert response.status_code == 200
    references = re.findall(r'(?:href|src)="(/static/[^"]+)"', response.content.decode())
    assert references
    for reference in references:
        # Hashed names (app.3f2a….css) exist in STATIC_ROOT, so WhiteNoise can serve them.
        assert (collected / reference.removeprefix("/static/")).exists(), reference


def test_the_liveness_view_answers_without_login_database_or_https_redirect(
    client, settings, django_assert_num_queries
):
    settings.SECURE_SSL_REDIRECT = True  # As in production: load balancers still probe over HTTP.
    with django_assert_num_queries(0):
        answer = client.get("/healthz/")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert "no-cache" in answer["Cache-Control"]
    assert client.get("/use-cases/").status_code == 301  # Everything else is redirected to HTTPS.
