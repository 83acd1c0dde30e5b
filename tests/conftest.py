import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache
from django.utils import translation

from config.drf_speed import TokenAuthentication
from pricing.models import LanguageModel
from tests.factories import MembershipFactory, TeamFactory, UserFactory, make_manager

# Figures the fault, load and fuzzing tests measured, printed at the end of the run
# (docs/operations.md quotes them).
MEASURED: list[str] = []


@pytest.fixture
def measured():
    return MEASURED.append


# Tests that need services the SQLite default does not have, left out (and counted) there.
LEFT_OUT: list[str] = []


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    with_broker = on_postgres and bool(settings.CELERY_BROKER_URL)
    kept, left_out = [], []
    for item in items:
        needs_postgres = item.get_closest_marker("postgres") is not None
        needs_worker = item.get_closest_marker("worker") is not None
        (left_out if (needs_postgres and not on_postgres) or (needs_worker and not with_broker) else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
        LEFT_OUT.append(
            f"{len(left_out)} tests need PostgreSQL (and, for a real Celery worker, Redis): run them with "
            "DATABASE_URL=postgres://… CELERY_BROKER_URL=redis://… make test"
        )


def pytest_terminal_summary(terminalreporter):
    for line in LEFT_OUT:
        terminalreporter.write_line(line)
    if MEASURED:
        terminalreporter.section("measured figures")
        for line in MEASURED:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def fresh_throttles():
    # API throttles count in the cache: each test starts with a full allowance.
    cache.clear()
    TokenAuthentication.refused_addresses.clear()


@pytest.fixture(autouse=True)
def default_language(settings):
    # A request in another language leaves it active in the thread (LocaleMiddleware
    # activates a language per request and leaves it): each test starts in the default.
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def team():
    return TeamFactory(slug="support", name="Support")


@pytest.fixture
def other_team():
    return TeamFactory(slug="research", name="Research")


@pytest.fixture
def member(team):
    return MembershipFactory(team=team, user=UserFactory(username="alice")).user


@pytest.fixture
def outsider(other_team):
    return MembershipFactory(team=other_team, user=UserFactory(username="bob")).user


@pytest.fixture
def manager():
    return make_manager(username="carol")


@pytest.fixture
def gpt4o():
    """The shipped GPT-4o: $2.50 / $10.00 per 1M tokens, $1.25 cached."""
    return LanguageModel.objects.get(key="openai/gpt-4o")


@pytest.fixture
def llama70b():
    return LanguageModel.objects.get(key="meta/llama-3-70b")


# --- A webhook receiver on loopback ---------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: Message
    body: bytes


@dataclass
class Receiver:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # Answers in order; 200 once used up.
    delay: float = 0.0


@pytest.fixture
def receiver():
    """A webhook receiver: ``http.server`` in a thread on loopback, recording every request."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(Received(self.path, self.headers, body))
            time.sleep(state.delay)
            status = state.statuses.pop(0) if state.statuses else 200
            answer = b"ok" if status < 400 else b"receiver says no"
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks?source=portfolio"
    yield state
    server.shutdown()
    server.server_close()
