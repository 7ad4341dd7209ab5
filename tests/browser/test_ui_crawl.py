"""Every page of MLflow's UI through the gateway, as a reader, an editor and a manager.

The owner fills an experiment with MLflow's client (crawl_data.py) and grants one group per
role on it, its registered model and its prompt. Each role signs in on the dev provider's page
in a browser context of its own, then loads every page in a fresh document. A page passes when
no call it made failed (status >= 400 or a failed load), it shows no error banner, and the
sidebar names the signed-in user; the Overview also draws its charts.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import pytest
from cdp import Chromium, Page
from client_support import mlflow_client_of
from crawl_data import CrawlWorld, fill
from gw_support import gateway_stack

pytestmark = pytest.mark.slow

OWNER = ("olivia-owner", ["crawl-owners"])
ROLES = {  # role -> (user, group)
    "reader": ("rita-reader", "crawl-readers"),
    "editor": ("eddie-editor", "crawl-editors"),
    "manager": ("mona-manager", "crawl-managers"),
}
GRANT = "/api/3.0/cedarflow/permissions/grant"

# Banners and messages the UI shows when a call it needs failed or a page does not exist.
# ("error" alone is not one: traces list their error spans, and MLflow's assistant offers
# "Debug the error in this trace." on a plain server too.)
ERROR_TEXT = re.compile(
    r"Failed to|Unable to|Permission denied|PERMISSION_DENIED|NOT_IMPLEMENTED|No route"
    r"|Page Not Found|Something went wrong|INTERNAL_ERROR|Error loading|Error fetching"
    r"|An error occurred|Request failed",
    re.IGNORECASE,
)

# No call is let off: every call these pages make is answered below 400 by a plain
# `mlflow server` too, so any failure here is one of the gateway's or the stores'.
API_PATHS = ("/ajax-api/", "/api/", "/graphql")


def pages(world: CrawlWorld) -> dict[str, str]:
    """Page name -> hash route."""
    exp = f"/experiments/{world.experiment_id}"
    model = quote(world.model_name)
    return {
        "experiments": "/experiments",
        "runs": f"{exp}/runs",
        "run": f"{exp}/runs/{world.run_id}",
        "run artifacts": f"{exp}/runs/{world.run_id}/artifacts",
        "traces": f"{exp}/traces",
        "trace": f"{exp}/traces/{world.trace_id}",
        "overview": f"{exp}/overview/usage",
        "overview quality": f"{exp}/overview/quality",
        "overview tool calls": f"{exp}/overview/tool-calls",
        "sessions": f"{exp}/chat-sessions",
        "session": f"{exp}/chat-sessions/crawl-session-1",
        "judges": f"{exp}/judges",
        "datasets": f"{exp}/datasets",
        "dataset": f"{exp}/datasets/{world.dataset_id}",
        "evaluation runs": f"{exp}/evaluation-runs",
        "review": f"{exp}/review-queue",
        "models": "/models",
        "model": f"/models/{model}",
        "model version": f"/models/{model}/versions/{world.model_version}",
        "prompts": "/prompts",
        "prompt": f"/prompts/{quote(world.prompt_name)}",
    }


PAGE_NAMES = [
    "experiments", "runs", "run", "run artifacts", "traces", "trace", "overview",
    "overview quality", "overview tool calls", "sessions", "session", "judges", "datasets",
    "dataset", "evaluation runs", "review", "models", "model", "model version", "prompts",
    "prompt",
]  # fmt: skip


@dataclass
class Call:
    method: str
    url: str
    status: int | None = None
    failed: str = ""
    answer: str = ""
    done: bool = False

    def is_api(self, origin: str) -> bool:
        return self.url.startswith(origin) and self.url[len(origin) :].startswith(API_PATHS)


@dataclass
class Visit:
    calls: dict[str, Call] = field(default_factory=dict)
    text: str = ""
    user_shown: bool = False
    charts: int = 0

    def failures(self, origin: str) -> list[str]:
        found = []
        for call in self.calls.values():
            if not call.url.startswith(origin):
                continue
            target = call.url[len(origin) :][:160]
            if call.failed or (call.status or 0) >= 400:
                outcome = call.status or call.failed
                found.append(f"{call.method} {target} -> {outcome}: {call.answer[:200]}")
            elif call.is_api(origin) and not call.done:
                found.append(f"{call.method} {target} -> no answer in time")
        return found


@pytest.fixture(scope="module")
def stack(tmp_path_factory, dynalite_endpoint) -> Iterator[tuple[str, object]]:
    with gateway_stack(
        dynalite_endpoint, tmp_path_factory.mktemp("crawl-stack"), "browser_crawl"
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def world(stack) -> CrawlWorld:
    url, idp = stack
    with mlflow_client_of(url, idp.mint(*OWNER)):
        made = fill(model_name="crawl-agent-model", prompt_name="crawl-answer-prompt")
    owner = {"Authorization": f"Bearer {idp.mint(*OWNER)}"}
    targets = [
        ("experiment", made.experiment_id),
        ("registered_model", made.model_name),
        ("prompt", made.prompt_name),
    ]
    with httpx.Client(base_url=url, headers=owner, trust_env=False, timeout=60) as http:
        for role, (_, group) in ROLES.items():
            for kind, resource in targets:
                body = {"resource_type": kind, "resource_id": resource, "group": group}
                granted = http.post(GRANT, json=body | {"role": role})
                assert granted.status_code == 200, granted.text
    return made


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path_factory.mktemp("chromium-crawl"))
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def signed_in(stack, browser) -> Iterator[Callable[[str], Page]]:
    """role -> a tab signed in as that role's user, each in a browser context of its own."""
    url, _ = stack
    tabs: dict[str, Page] = {}

    def tab(role: str) -> Page:
        if role not in tabs:
            user, group = ROLES[role]
            page = browser.page(f"{url}/", browser.new_context())
            page.wait_for("document.querySelector('#username') !== null")
            page.evaluate(
                f"document.querySelector('#username').value = {json.dumps(user)};"
                f"document.querySelector('#groups').value = {json.dumps(group)};"
                "document.querySelector('#sign-in').click(); true"
            )
            page.wait_for(
                "location.pathname === '/' && document.readyState === 'complete'"
                " && document.querySelector('#username') === null"
            )
            browser.record_events(page.session)
            page.browser.send("Network.enable", session=page.session)
            tabs[role] = page
        return tabs[role]

    yield tab


def visit(page: Page, origin: str, route: str, user: str) -> Visit:
    """Load `route` in a fresh document and watch it until its calls have settled."""
    page.navigate("about:blank")
    page.wait_for("location.href === 'about:blank'")
    page.browser.take_events(page.session)
    page.navigate(f"{origin}/#{route}")
    seen = Visit()
    started = quiet_since = time.monotonic()
    # Settled: every API call answered and nothing sent or answered for 3 s (after 6 s at
    # least); other requests (static files, streams) may still be open.
    while time.monotonic() - started < 40:
        time.sleep(0.5)
        for event in page.browser.take_events(page.session):
            if record(seen, event):
                quiet_since = time.monotonic()
        waiting = any(c.is_api(origin) and not c.done for c in seen.calls.values())
        now = time.monotonic()
        if not waiting and now - quiet_since >= 3 and now - started >= 6:
            break
    for request_id, call in seen.calls.items():
        if call.status and call.status >= 400 and call.url.startswith(origin):
            call.answer = response_body(page, request_id)
    seen.text = page.evaluate_quietly("document.body ? document.body.innerText : ''") or ""
    seen.user_shown = bool(
        page.evaluate_quietly(
            "[...document.querySelectorAll('[aria-label]')].some(e =>"
            f" e.getAttribute('aria-label').includes({json.dumps(user)}))"
            f" || document.body.innerText.includes({json.dumps(user)})"
        )
        is True
    )
    seen.charts = page.evaluate_quietly(
        "document.querySelectorAll('.recharts-surface, .recharts-wrapper').length"
    )
    return seen


def record(seen: Visit, event: dict) -> bool:
    method, params = event.get("method", ""), event.get("params", {})
    request_id = params.get("requestId", "")
    if method == "Network.requestWillBeSent":
        request = params["request"]
        seen.calls[request_id] = Call(request["method"], request["url"])
    elif method == "Network.responseReceived" and request_id in seen.calls:
        seen.calls[request_id].status = params["response"]["status"]
    elif method == "Network.loadingFinished" and request_id in seen.calls:
        seen.calls[request_id].done = True
    elif method == "Network.loadingFailed" and request_id in seen.calls:
        seen.calls[request_id].done = True
        if not params.get("canceled"):
            seen.calls[request_id].failed = params.get("errorText", "failed")
    else:
        return False
    return True


def response_body(page: Page, request_id: str) -> str:
    try:
        answer = page.browser.send(
            "Network.getResponseBody", {"requestId": request_id}, session=page.session
        )
    except Exception as exc:  # the body may be gone already; the status still counts
        return f"(no body: {exc})"
    return answer.get("body", "")


@pytest.mark.parametrize("page_name", PAGE_NAMES)
@pytest.mark.parametrize("role", list(ROLES))
def test_page_loads(stack, world, signed_in, role, page_name):
    url, _ = stack
    user, _ = ROLES[role]
    seen = visit(signed_in(role), url, pages(world)[page_name], user)
    problems = seen.failures(url)
    api_calls = [c for c in seen.calls.values() if "/ajax-api/" in c.url or "/graphql" in c.url]
    print(f"{role} {page_name}: {len(api_calls)} API calls, charts={seen.charts}")
    banners = sorted({m.group(0) for m in ERROR_TEXT.finditer(seen.text)})
    if banners:
        lines = [ln for ln in seen.text.splitlines() if ERROR_TEXT.search(ln)]
        problems.append(f"error text on the page: {banners}: {lines[:5]}")
    if not seen.user_shown:
        problems.append(f"the signed-in user {user!r} is not shown")
    if page_name == "overview" and not seen.charts:
        problems.append("no chart drawn on the Overview")
    if not any(c.url.startswith(url + "/ajax-api/") for c in seen.calls.values()):
        problems.append("the page made no API call (did it load?)")
    assert not problems, f"{role} on {page_name}:\n  " + "\n  ".join(problems)
