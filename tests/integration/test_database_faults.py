"""PostgreSQL restarted under load: gunicorn answers a quick 503 while it is down, recovers on
its own once it is back, and the worker's tasks retry to the right figures."""

import http.client
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from portfolio import services, tasks
from portfolio.models import UseCase
from tests.integration.conftest import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.faults, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

OUTAGE_SECONDS = 4
AFTER_RECOVERY_SECONDS = 12


@dataclass(frozen=True)
class Answer:
    sent_at: float
    seconds: float
    kind: str
    status: int  # 0: no answer at all
    body: str
    retry_after: str | None


class Load(threading.Thread):
    """One client sending API reads, API writes and page views in turn until stopped."""

    def __init__(
        self,
        number: int,
        *,
        server: str,
        headers: dict[str, dict[str, str]],
        team: str,
        answers: list[Answer],
        stop: threading.Event,
    ):
        super().__init__(name=f"load-{number}", daemon=True)
        self.number, self.server, self.headers, self.team = number, server, headers, team
        self.answers, self.stop = answers, stop

    def requests(self):
        sent = 0
        while True:
            sent += 1
            yield "read", "GET", "/api/v1/use-cases/?page_size=5", None
            yield (
                "write",
                "POST",
                "/api/v1/use-cases/",
                (f'{{"team": "{self.team}", "title": "Load {self.number}-{sent}", "other_monthly_benefit": "1"}}'),
            )
            yield "page", "GET", "/use-cases/", None

    def run(self) -> None:
        host, port = self.server.split(":")
        for kind, method, path, body in self.requests():
            if self.stop.is_set():
                return
            sent_at = time.monotonic()
            connection = http.client.HTTPConnection(host, int(port), timeout=15)
            try:
                connection.request(method, path, body=body, headers=self.headers[kind])
                response = connection.getresponse()
                status, text, retry_after = response.status, response.read().decode(), response.getheader("Retry-After")
            except (OSError, http.client.HTTPException) as error:
                status, text, retry_after = 0, repr(error), None
            finally:
                connection.close()
            self.answers.append(Answer(sent_at, time.monotonic() - sent_at, kind, status, text[:300], retry_after))
            time.sleep(0.05)


def test_postgres_restarted_under_load(postgres_control, gunicorn_server, start_worker, team, member, gpt4o, measured):
    worker = start_worker()
    token = Token.objects.create(user=member).key
    browser = Client()
    browser.force_login(member)
    api = {"Authorization": f"Token {token}", "Content-Type": "application/json", "Accept": "application/json"}
    headers = {
        "read": api,
        "write": api,
        "page": {"Cookie": f"sessionid={browser.cookies['sessionid'].value}", "Accept": "text/html"},
    }
    # Use cases whose inputs change while the database is down: their recompute must retry.
    stale = [services.create_use_case(team=team, title=f"Retried {n}") for n in range(3)]
    assert wait_until(lambda: not UseCase.objects.filter(needs_recompute=True).exists(), timeout=30)
    UseCase.objects.filter(pk__in=[u.pk for u in stale]).update(
        other_monthly_benefit=Decimal("123"), needs_recompute=True
    )

    answers: list[Answer] = []
    stop = threading.Event()
    clients = [
        Load(n, server=gunicorn_server, headers=headers, team=team.slug, answers=answers, stop=stop) for n in range(3)
    ]
    for client in clients:
        client.start()
    time.sleep(2)

    down_at = time.monotonic()
    postgres_control.stop()
    for use_case in stale:
        tasks.recompute_use_case.delay(use_case.pk)
    time.sleep(OUTAGE_SECONDS)
    postgres_control.start()
    up_at = time.monotonic()
    time.sleep(AFTER_RECOVERY_SECONDS)
    stop.set()
    for client in clients:
        client.join(timeout=30)

    slowest = max(answer.seconds for answer in answers)
    statuses = {answer.status for answer in answers}
    refused = [answer for answer in answers if answer.status == 503]
    first_success = min(a.sent_at for a in answers if a.sent_at >= up_at and 200 <= a.status < 300)
    after_recovery = [answer for answer in answers if answer.sent_at >= up_at + 10]
    measured(
        f"{len(answers)} requests; {len(refused)} answered 503 while PostgreSQL was down "
        f"({up_at - down_at:.1f}s); slowest {slowest:.2f}s; first success {first_success - up_at:.1f}s "
        "after it was back"
    )

    assert slowest <= 5, f"a request took {slowest:.1f}s"
    assert statuses <= {200, 201, 503}, [a for a in answers if a.status not in (200, 201, 503)][:3]
    assert {answer.kind for answer in refused} == {"read", "write", "page"}
    for answer in refused:
        assert answer.retry_after == "5"
        assert (
            "Temporarily unavailable" if answer.kind == "page" else '"detail":"The database is unavailable'
        ) in answer.body.replace(": ", ":"), answer
    assert first_success - up_at <= 10
    assert after_recovery and all(200 <= answer.status < 300 for answer in after_recovery)

    # The tasks that met the outage retried, and computed the new figures once it was over.
    assert wait_until(lambda: not UseCase.objects.filter(needs_recompute=True).exists(), timeout=60)
    assert set(UseCase.objects.filter(pk__in=[u.pk for u in stale]).values_list("monthly_benefit", flat=True)) == {
        Decimal("123.00")
    }
    assert "Retry in" in worker.output
