"""Settings for the AI portfolio manager.

Every value comes from the environment (django-environ); see the README for the full
list. The defaults give the quick start: SQLite in the project folder and Celery tasks
run eagerly in-process, with no broker.
"""

import datetime
from decimal import Decimal
from pathlib import Path

import environ
from celery.schedules import crontab
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Production secrets have no default: without DEBUG the key must be given.
SECRET_KEY = (
    env.str("DJANGO_SECRET_KEY")
    if not DEBUG
    else env.str("DJANGO_SECRET_KEY", default="django-insecure-development-only-key")
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "csp",
    "pricing",
    "portfolio",
    "performance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
    "config.middleware.refuse_nul_characters",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, so it sees the lockout flag the login view's authenticate() left on the request.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portfolio.context_processors.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Reuse connections between requests (60 s unless DEBUG: opening one per request roughly
# halves throughput) but check them first, so a restarted database costs one failed health
# check instead of a 500. The quick start (DEBUG) opens one per request.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=0 if DEBUG else 60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that does not answer fails the request in seconds (a 503), not a hang.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers take the lock when their transaction begins and wait up to 20 s for it,
    # rather than failing with "database is locked" halfway through.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portfolio:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ja", _("Japanese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

# --- Security (production) ---------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe liveness over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True

# Login lockout (django-axes), for the login page, the admin's and the API token endpoint:
# AXES_FAILURE_LIMIT failures for one username from one address lock that pair out for
# AXES_COOLOFF_MINUTES (429 with Retry-After); a successful login resets the count.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "config.middleware.lockout_response"
# Password spraying (one password tried on many usernames): LOGIN_FAILURES_PER_ADDRESS
# failures from one address within AXES_COOLOFF_MINUTES, whatever the usernames, lock the
# whole address out the same way.
AXES_HANDLER = "config.middleware.LockoutHandler"
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=20)
# Proxies in front of gunicorn that append to X-Forwarded-For: the client's address is the
# entry that many places from the end. 0 (direct) takes REMOTE_ADDR and ignores the header,
# which a client could forge. Lockouts and anonymous throttles both key on it.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "config.middleware.client_address"

# Content-Security-Policy (django-csp): scripts, styles, images and fonts from our own
# static files only; no inline script or style, no eval, no framing. The API docs page
# widens it for itself (config/api_urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
    },
}

# Throttles: counted in the cache, so per process unless CACHE_URL names a shared cache.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# --- Domain settings ---------------------------------------------------------------
REPORTING_CURRENCY = env.str("REPORTING_CURRENCY", default="USD")
ANNUAL_DISCOUNT_RATE = Decimal(env.str("ANNUAL_DISCOUNT_RATE", default="0.08"))
# Use cases per recompute chunk: one transaction and one task each.
RECOMPUTE_CHUNK_SIZE = env.int("RECOMPUTE_CHUNK_SIZE", default=500)
# Stage gate: also require a forecast payback within the horizon to enter production.
GATE_REQUIRES_PAYBACK = env.bool("GATE_REQUIRES_PAYBACK", default=False)
# Largest evidence file accepted on a checklist item, in bytes.
EVIDENCE_MAX_UPLOAD_BYTES = env.int("EVIDENCE_MAX_UPLOAD_BYTES", default=10 * 1024 * 1024)
# Seconds an import preview can be confirmed; its uploaded file in MEDIA_ROOT/imports/ is
# deleted by the beat sweep (every five minutes) once older than this.
IMPORT_PREVIEW_MAX_AGE_SECONDS = env.int("IMPORT_PREVIEW_MAX_AGE_SECONDS", default=60 * 60)
# Webhooks: a failed delivery is retried after base × 2^(attempt − 1) seconds, up to the
# maximum attempts, then abandoned; a subscription with this many abandoned deliveries in
# a row is disabled. Targets on loopback, private, link-local and other non-public
# addresses are refused (server-side request forgery) unless explicitly allowed.
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=30.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
WEBHOOK_DISABLE_AFTER = env.int("WEBHOOK_DISABLE_AFTER", default=5)
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)
# Untrusted input is read within bounds. A JSON request body nested deeper than this many
# arrays and objects is refused with a 400 before it is parsed.
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=64)
# Spreadsheet import: an .xlsx whose members unpack to more bytes than this is refused
# unread (a 1000-row export unpacks to about 2 MB); a cell longer than this many
# characters makes its row an error.
IMPORT_MAX_UNPACKED_BYTES = env.int("IMPORT_MAX_UNPACKED_BYTES", default=20 * 1024 * 1024)
IMPORT_MAX_CELL_CHARS = env.int("IMPORT_MAX_CELL_CHARS", default=10_000)

# History is an audit trail: the admin shows it but never reverts through it, since a
# revert would bypass the services (prices are added, never edited).
SIMPLE_HISTORY_REVERT_DISABLED = True

# --- REST framework ----------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first, so an unauthenticated call answers 401 with WWW-Authenticate.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.drf_speed.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": [
        "config.api.FilterBackend",
        "rest_framework.filters.SearchFilter",
        "config.api.OrderingFilter",
    ],
    # DRF's parsers, refusing NUL characters (which PostgreSQL cannot store) with a 400.
    "DEFAULT_PARSER_CLASSES": [
        "config.api.JSONParser",
        "config.api.FormParser",
        "config.api.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "DEFAULT_PAGINATION_CLASS": "config.api.Pagination",
    # Per signed-in user, per API token and per anonymous address; 429 with Retry-After.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_THROTTLE_CLASSES": [
        "config.drf_speed.AnonRateThrottle",
        "config.drf_speed.UserRateThrottle",
        "config.drf_speed.TokenRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="300/min"),
        "user": env.str("API_THROTTLE_USER", default="20000/min"),
        "token": env.str("API_THROTTLE_TOKEN", default="20000/min"),
        # Failed token authentications (a wrong or malformed "Authorization: Token") per address.
        "token_failures": env.str("TOKEN_FAILURES_PER_ADDRESS", default="30/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AI portfolio manager API",
    "DESCRIPTION": "Use cases, PoCs, deployments, prices and governance across teams.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Choice sets that share a field name with another model's get their own enum names.
    "ENUM_NAME_OVERRIDES": {
        "CategoryEnum": "portfolio.models.UseCase.Category",
        "ChecklistCategoryEnum": "portfolio.models.ChecklistTemplate.Category",
        "ChecklistItemStatusEnum": "portfolio.models.ChecklistItem.Status",
        "WebhookEventEnum": "portfolio.models.WebhookEvent",
        "LicenceFindingEnum": "portfolio.api.serializers.LICENCE_FINDINGS",
        "DeploymentStatusEnum": "portfolio.models.Deployment.Status",
        "ProofOfConceptStatusEnum": "portfolio.models.ProofOfConcept.Status",
    },
}

# --- Celery --------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
# Without a broker (the quick start) tasks run in-process, right after commit.
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A pool process that dies mid-task has its task requeued after this many seconds (10 by
# default), the time allowed for a result already on its way from the dead process.
CELERY_WORKER_LOST_WAIT = 2.0
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=25 * 60)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing gives up fast: the write that enqueues has already committed its
# needs_recompute flag, so a broker outage costs a delay (the sweep), never the request.
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A task whose worker died unacknowledged goes back to the queue this many seconds
    # after it was delivered; workers look for such tasks every 5 s. Short, so a killed
    # worker's task reruns within half a minute; the price is that a task still running
    # after this long is delivered again. Every task is idempotent, so that costs work,
    # not correctness, and no countdown is longer than half of it: longer webhook
    # retries are queued by the sweep when due (see docs/operations.md).
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=20),
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
    "socket_connect_timeout": 1,
    "socket_timeout": 1,
    "max_retries": 1,
}
CELERY_BEAT_SCHEDULE = {
    "nightly-portfolio-recompute": {
        "task": "portfolio.tasks.nightly_portfolio",
        "schedule": crontab(hour=2, minute=0),
    },
    "recompute-stale-sweep": {
        "task": "portfolio.tasks.recompute_stale",
        "schedule": env.float("RECOMPUTE_SWEEP_SECONDS", default=60.0),
    },
    "webhook-delivery-sweep": {
        "task": "portfolio.tasks.sweep_webhook_deliveries",
        "schedule": env.float("WEBHOOK_SWEEP_SECONDS", default=30.0),
    },
    "import-preview-sweep": {
        "task": "portfolio.tasks.sweep_import_previews",
        "schedule": 5 * 60.0,
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Eager tasks run inside web requests and commands: one line per task is noise there.
    "loggers": {"celery.app.trace": {"level": "WARNING" if CELERY_TASK_ALWAYS_EAGER else "INFO"}},
}
