"""A real MLflow handler tier (sqlite store, principal-attributing) for end-to-end sign-in tests."""

from __future__ import annotations

import contextlib
import html
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
from gw_support import SECRET, free_port
from test_handler_app import handler_env, wait_healthy

HERE = Path(__file__).parent
NAVIGATE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


@contextlib.contextmanager
def sqlite_handler_tier(data: Path) -> Iterator[str]:
    """MLflow's server app behind the identity check, on a free port, until the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, str(HERE / "principal_handler_tier.py"), str(port)],
        env=handler_env(data, SECRET),
        cwd=data,
    )
    try:
        wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def login_form_fields(page: str) -> dict[str, str]:
    """The hidden OAuth fields of the dev provider's sign-in page."""
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page)}


def sign_in_on_dev_page(
    client: httpx.Client, authorize_url: str, user: str, groups: str = ""
) -> httpx.Response:
    """Fill the dev provider's page as a person would; returns its redirect (not followed)."""
    page = client.get(authorize_url)
    assert page.status_code == 200, page.text
    form = login_form_fields(page.text) | {"username": user, "groups": groups}
    action = str(page.url).split("?", 1)[0]
    return client.post(action, data=form, follow_redirects=False)
