"""The MLflow UI in headless Chromium: sign in on the dev provider's page, see the experiments.

Also the CSRF defence as a browser meets it: a page on another origin (same site: 127.0.0.1 on
another port, so SameSite=Lax still sends the cookie) posts to the gateway and is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from cdp import Chromium
from gw_support import ServerThread, gateway_stack
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from gateway.authn.oauth import random_token

CREATE = "/ajax-api/2.0/mlflow/experiments/create"
# Back on the UI's page (not the dev provider's, which the gateway serves on the same origin).
SIGNED_IN_UI = (
    "location.pathname === '/' && document.readyState === 'complete'"
    " && document.querySelector('#username') === null"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, dynalite_endpoint) -> Iterator[tuple[str, object]]:
    with gateway_stack(
        dynalite_endpoint, tmp_path_factory.mktemp("browser-stack"), "browser_tests"
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield chromium
    finally:
        chromium.close()


def api(
    url: str, idp, method: str, path: str, body: dict | None = None, user: str = "admin"
) -> httpx.Response:
    """A call with a bearer token: of an administrator, or of `user` (group ds-team)."""
    groups = ["admins"] if user == "admin" else ["ds-team"]
    headers = {"Authorization": f"Bearer {idp.mint(user, groups)}"}
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
        return client.request(method, path, json=body, headers=headers)


def experiment_names(url: str, idp) -> set[str]:
    found = api(url, idp, "GET", "/api/2.0/mlflow/experiments/search?max_results=1000")
    return {e["name"] for e in found.json().get("experiments", [])}


def test_signing_in_on_the_dev_page_shows_the_experiments(stack, browser):
    url, idp = stack
    name = f"visible-in-the-ui-{random_token(4)}"
    created = api(url, idp, "POST", "/api/2.0/mlflow/experiments/create", {"name": name}, "alice")
    assert created.is_success  # alice's: she manages it, so the UI shows it to her
    page = browser.page(f"{url}/")
    page.wait_for("document.querySelector('#username') !== null")
    assert "/devidp/oauth2/authorize" in page.evaluate("location.pathname")
    assert "no password" in page.evaluate("document.body.innerText")
    page.evaluate(
        "document.querySelector('#username').value = 'alice';"
        "document.querySelector('#groups').value = 'ds-team';"
        "document.querySelector('#sign-in').click(); true"
    )
    page.wait_for(SIGNED_IN_UI)
    page.navigate(f"{url}/#/experiments")
    page.wait_for(f"document.body && document.body.innerText.includes({json.dumps(name)})")
    assert page.evaluate("location.hash").startswith("#/experiments")
    # The session cookie is invisible to scripts (HttpOnly).
    assert "cedarflow_session" not in page.evaluate("document.cookie")
    # The UI's own state-changing calls ride on the cookie from its origin.
    created = f"made-from-the-ui-{random_token(4)}"
    status = page.evaluate(
        f"fetch({json.dumps(CREATE)}, {{method: 'POST', headers: {{'Content-Type': "
        f"'application/json'}}, body: JSON.stringify({{name: {json.dumps(created)}}})}})"
        ".then(r => r.status)"
    )
    assert status == 200
    assert created in experiment_names(url, idp)


@pytest.fixture(scope="module")
def other_origin() -> Iterator[str]:
    """A page on 127.0.0.1 at another port that posts to the gateway as soon as it loads."""

    async def attack(request):
        target = request.query_params["target"]
        name = request.query_params["name"]
        # A text/plain form body that reads as JSON: {"name": "...", "x": "="}.
        field = f'{{"name": "{name}", "x": "'
        document = (
            f'<form id="f" method="post" action="{target}" enctype="text/plain">'
            f"<input name='{field}' value='\"}}'></form>"
            "<script>document.getElementById('f').submit()</script>"
        )
        return HTMLResponse(document)

    with ServerThread(Starlette(routes=[Route("/attack", attack)])) as server:
        yield server.url


def test_a_cross_origin_post_riding_on_the_cookie_is_refused(stack, browser, other_origin):
    url, idp = stack
    page = browser.page(f"{url}/")
    page.wait_for(f"document.querySelector('#username') !== null || ({SIGNED_IN_UI})")
    if page.evaluate("document.querySelector('#username') !== null"):  # not signed in yet
        page.evaluate(
            "document.querySelector('#username').value = 'alice';"
            "document.querySelector('#sign-in').click(); true"
        )
    page.wait_for(SIGNED_IN_UI)
    name = f"forged-{random_token(4)}"
    page.navigate(f"{other_origin}/attack?target={url}{CREATE}&name={name}")
    text = page.wait_for(
        f"location.href.startsWith({json.dumps(url + CREATE)}) && document.body.innerText"
    )
    assert "PERMISSION_DENIED" in text
    assert name not in experiment_names(url, idp)
