"""Hostile input in the browser: script payloads typed into every text field never run.

Each payload would set ``window.__xss`` (or open a dialog) if a page rendered it as
markup. Two layers stop it: Django's escaping, and the Content-Security-Policy that
refuses inline script. A ``securitypolicyviolation`` means escaping failed and only the
policy saved the page, so the test counts those too: there must be none.
"""

import pytest
from playwright.sync_api import expect

from portfolio.models import UseCase
from tests.browser.conftest import log_in

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

PAYLOADS = [
    "<script>window.__xss=1</script>",
    '"><img src=x onerror="window.__xss=1;alert(1)">',
    "'><svg onload=window.__xss=1>",
    "</textarea><script>window.__xss=1</script>",
    "javascript:window.__xss=1//",
]
TEXT_FIELDS = "main form input[type=text], main form input:not([type]), main form textarea"
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
    window.__violations.push(`${event.violatedDirective} ${event.blockedURI} ${event.sample}`);
});
"""


@pytest.fixture
def watched(page):
    """The page, recording dialogs and CSP violations on every document it loads."""
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(WATCH)
    page.dialogs = dialogs
    return page


def assert_nothing_ran(page, where: str) -> None:
    page.wait_for_load_state("load")
    state = page.evaluate("() => ({xss: typeof window.__xss, violations: window.__violations || []})")
    assert state == {"xss": "undefined", "violations": []}, where
    assert page.dialogs == [], where


def fill_text_fields(page, *, keep: dict[str, str] | None = None) -> list[str]:
    """Type a payload into every text field of the page's form; ``keep`` gives some fields a valid value."""
    keep = keep or {}
    filled = []
    for number, field in enumerate(page.locator(TEXT_FIELDS).all()):
        name = field.get_attribute("name")
        if not field.is_visible() or name in keep:
            continue
        payload = PAYLOADS[number % len(PAYLOADS)]
        field.fill(payload)
        filled.append(name)
    for name, value in keep.items():
        page.locator(f'main form [name="{name}"]').fill(value)
    return filled


def submit(page, button: str) -> None:
    page.get_by_role("button", name=button).click()
    page.wait_for_load_state("load")
    errors = page.locator(".errorlist").all_inner_texts()
    assert not errors, f"the form refused the payloads: {errors}"


def test_script_payloads_in_every_text_field_never_run(team, member, manager, watched):
    page = watched
    log_in(page, member.username)

    page.goto("/use-cases/new/")
    # The external id accepts letters, digits and . _ : - only: the refused form below tries it.
    filled = fill_text_fields(page, keep={"currency": "USD", "external_id": "crm-1"})
    assert {"title", "description"} <= set(filled)
    page.get_by_label("Hours saved per month").fill("100")
    page.get_by_label("Hourly rate").fill("50")
    page.get_by_label("One-time cost").fill("1000")
    submit(page, "Create use case")
    use_case = UseCase.objects.get()
    assert use_case.title == PAYLOADS[0]  # Stored as typed: escaping happens on output.
    assert_nothing_ran(page, "use case page after create")

    page.get_by_role("link", name="Add deployment").click()
    filled = fill_text_fields(page)
    assert {"name", "gpu_type"} <= set(filled)
    page.locator("#id_model").select_option(label="GPT-4o")
    page.get_by_label("Requests per month").fill("1000")
    page.get_by_label("Average input tokens").fill("100")
    page.get_by_label("Average output tokens").fill("10")
    submit(page, "Add deployment")
    assert_nothing_ran(page, "use case page after the deployment")

    page.get_by_role("link", name="Add PoC").click()
    filled = fill_text_fields(page)
    assert {"hypothesis", "success_criteria", "kpi_name"} <= set(filled)
    submit(page, "Add proof of concept")
    assert_nothing_ran(page, "use case page after the PoC")

    deployment, poc = use_case.deployments.get(), use_case.pocs.get()
    for path in (
        "/use-cases/",
        f"/use-cases/{use_case.pk}/",
        f"/use-cases/{use_case.pk}/edit/",
        f"/deployments/{deployment.pk}/edit/",
        f"/pocs/{poc.pk}/edit/",
        "/use-cases/?q=%3Cscript%3Ewindow.__xss%3D1%3C%2Fscript%3E",
        '/use-cases/?q="><img src=x onerror="window.__xss=1">',
    ):
        page.goto(path)
        assert_nothing_ran(page, path)

    # A refused form shows the payloads again, in its inputs.
    page.goto("/use-cases/new/")
    fill_text_fields(page, keep={"currency": "USD"})
    page.get_by_label("Hourly rate").fill("-5")
    page.get_by_role("button", name="Create use case").click()
    expect(page.locator(".errorlist").first).to_be_visible()
    assert_nothing_ran(page, "the refused form")

    page.get_by_role("button", name="Log out").click()
    log_in(page, manager.username)
    for path in ("/dashboard/", "/use-cases/", f"/use-cases/{use_case.pk}/"):
        page.goto(path)
        assert_nothing_ran(page, path)
    expect(page.get_by_role("heading", level=1)).to_have_text(PAYLOADS[0])


def test_the_api_docs_render_under_their_policy(manager, watched):
    page = watched
    console_errors = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    log_in(page, manager.username)

    page.goto("/api/v1/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("AI portfolio manager API")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    assert page.locator(".swagger-ui .opblock").count() > 50
    assert_nothing_ran(page, "the API docs")
    assert console_errors == []
