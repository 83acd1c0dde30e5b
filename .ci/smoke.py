"""Production smoke test: a gunicorn serving with DJANGO_DEBUG=0 answers the pages a user
opens first, with every static file they reference.

Usage: smoke.py BASE_URL PASSWORD. Logs in as the demo's member (alice) and manager (carol)
through the login form, as a browser behind a TLS-terminating proxy would
(X-Forwarded-Proto: https, so secure cookies and HSTS apply as in production).
"""

import re
import sys
import urllib.error
import urllib.parse
import urllib.request

BASE, PASSWORD = sys.argv[1].rstrip("/"), sys.argv[2]
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
failures: list[str] = []


class Browser:
    def __init__(self):
        self.cookies: dict[str, str] = {}

    def request(self, path: str, data: dict | None = None) -> tuple[int, str, str]:
        headers = dict(PROXY_HEADERS)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if data is not None:
            body = urllib.parse.urlencode(data).encode()
            host = urllib.parse.urlsplit(BASE).netloc
            headers.update({"Origin": f"https://{host}", "Referer": f"https://{host}{path}"})
        request = urllib.request.Request(BASE + path, data=body, headers=headers)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            response = opener.open(request, timeout=30)
        except urllib.error.HTTPError as error:
            response = error
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, response.headers.get("Location", ""), response.read().decode(errors="replace")

    def login(self, username: str) -> None:
        status, _, page = self.request("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        status, location, _ = self.request(
            "/accounts/login/", {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token}
        )
        check(status == 302, f"login as {username}: expected a redirect, got {status}")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def check(condition: bool, message: str) -> None:
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        failures.append(message)


def page_with_static(browser: Browser, path: str) -> str:
    status, location, page = browser.request(path)
    check(status == 200, f"GET {path}: {status}{' → ' + location if location else ''}")
    references = sorted(set(re.findall(r'(?:href|src)="(/static/[^"]+)"', page)))
    check(bool(references), f"{path} references static files")
    for reference in references:
        static_status, _, _ = browser.request(reference)
        check(static_status == 200, f"  {reference}: {static_status}")
    return page


anonymous = Browser()
page_with_static(anonymous, "/accounts/login/")

member = Browser()
member.login("alice")
listing = page_with_static(member, "/use-cases/")
use_case = re.search(r'href="(/use-cases/\d+/)"', listing)
check(use_case is not None, "the member's use case list links a use case")
if use_case:
    page_with_static(member, use_case.group(1))

manager = Browser()
manager.login("carol")
page_with_static(manager, "/dashboard/")
page_with_static(manager, "/api/v1/docs/")
status, _, schema = manager.request("/api/v1/schema/")
check(status == 200 and "openapi" in schema, f"GET /api/v1/schema/: {status}")

print(f"smoke test: {len(failures)} failed")
sys.exit(1 if failures else 0)
