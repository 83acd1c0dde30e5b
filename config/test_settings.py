"""Test settings: the real settings, made fast and self-contained.

Beyond a fast password hasher and in-memory mail, tests run over plain HTTP, with a
connection per request, and without the collected static manifest that production builds
with ``collectstatic``;
on SQLite the test database is a file, so concurrent connections queue for the lock.
"""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-a-secret")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# A connection per request, as the quick start: live-server and worker threads then hold
# none open when the test database is dropped.
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file rather than shared-cache memory, whose table locks fail at once: the threads
    # of the concurrency tests wait for each other as connections do in production.
    # One file per test run, so runs side by side never share (or delete) each other's.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"portfolio-tests-{os.getpid()}.sqlite3")
    }
