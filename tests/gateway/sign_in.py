"""Signing in on the dev identity provider's page, as a person in a browser does."""

from __future__ import annotations

import html
import re

import httpx

__all__ = ["NAVIGATE", "login_form_fields", "sign_in_on_dev_page"]

NAVIGATE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


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
