"""The UI shows who is signed in, and its own Logout ends the browser's session.

MLflow's Logout clears the `mlflow_user` cookie, calls `users/current` once more and reloads the
UI's root. The gateway sets that cookie at sign-in; a session whose cookie is gone is over, and
the next page load goes through /logout (ending the identity provider's session too) instead of
signing straight back in.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
from sign_in import NAVIGATE, sign_in_on_dev_page

CURRENT = "/ajax-api/2.0/mlflow/users/current"


def sign_in(client: httpx.Client, user: str = "alice") -> httpx.Response:
    start = client.get("/", headers=NAVIGATE)
    to_idp = client.get(start.headers["location"])
    back = sign_in_on_dev_page(client, to_idp.headers["location"], user, "ds-team")
    landed = client.get(back.headers["location"])
    assert landed.status_code == 303, landed.text
    return landed


def test_the_signed_in_user_is_named_and_the_ui_cookie_is_readable(start_gateway, echo_upstream):
    gateway = start_gateway(echo_upstream[1])
    with gateway.client(follow_redirects=False) as client:
        landed = sign_in(client, "alice")
        current = client.get(CURRENT)
    [ui_cookie] = [c for c in landed.headers.get_list("set-cookie") if c.startswith("mlflow_user=")]
    assert ui_cookie.startswith("mlflow_user=alice;") and "HttpOnly" not in ui_cookie
    assert "Path=/" in ui_cookie and "SameSite=Lax" in ui_cookie
    assert current.status_code == 200
    assert current.json()["user"]["username"] == "alice"
    assert current.json()["is_basic_auth"] is True  # the UI offers its Logout


def test_the_uis_logout_ends_the_session_and_the_idps(start_gateway, echo_upstream):
    gateway = start_gateway(echo_upstream[1])
    with gateway.client(follow_redirects=False) as client:
        sign_in(client)
        assert client.get(CURRENT).status_code == 200
        client.cookies.delete("mlflow_user")  # what the UI's Logout does, then it calls:
        after = client.get(CURRENT)
        reload = client.get("/", headers=NAVIGATE)  # and then it loads its root
        out = client.get(reload.headers["location"])
        idp = client.get(out.headers["location"])
        page = client.get(idp.headers["location"])
        later = client.get(CURRENT)
    assert after.status_code == 401
    assert "WWW-Authenticate" in after.headers and "Basic" not in after.headers["WWW-Authenticate"]
    assert reload.status_code == 303 and reload.headers["location"] == "/logout"
    assert urlsplit(out.headers["location"]).path == "/devidp/logout"
    assert page.status_code == 200 and "signed out" in page.text
    assert later.status_code == 401


def test_a_browser_that_keeps_the_ui_cookie_stays_signed_in(start_gateway, echo_upstream):
    gateway = start_gateway(echo_upstream[1])
    with gateway.client(follow_redirects=False) as client:
        sign_in(client)
        answers = [client.get(CURRENT).status_code for _ in range(3)]
        page = client.get("/", headers=NAVIGATE)
    assert answers == [200, 200, 200]
    assert page.status_code == 200
