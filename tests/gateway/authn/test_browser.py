"""Browser sign-in end to end over HTTP: gateway + dev provider + a real MLflow handler tier."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sign_in import NAVIGATE, sign_in_on_dev_page

from gateway.authn.browser import BrowserLogin, safe_return_path
from gateway.authn.oauth import random_token
from gateway.authn.principal import Authenticated, Principal
from gateway.authn.session import Session
from gateway.config import BrowserLoginConfig, GatewayConfig
from gateway.devidp.provider import DEV_CLIENT_ID

SEARCH = "/ajax-api/2.0/mlflow/experiments/search?max_results=10"
CREATE = "/ajax-api/2.0/mlflow/experiments/create"


def browser(gateway) -> httpx.Client:
    return gateway.client(follow_redirects=False)


def sign_in(client: httpx.Client, user: str = "alice", groups: str = "ds-team") -> httpx.Response:
    """Navigate to the UI, sign in on the dev page, follow back; the final answer."""
    start = client.get("/", headers=NAVIGATE)
    assert start.status_code == 302
    to_idp = client.get(start.headers["location"])
    assert to_idp.status_code == 302
    back = sign_in_on_dev_page(client, to_idp.headers["location"], user, groups)
    assert back.status_code == 303
    landed = client.get(back.headers["location"])
    assert landed.status_code == 303, landed.text
    return landed


def session_cookie_header(response: httpx.Response) -> str:
    [header] = [
        h for h in response.headers.get_list("set-cookie") if h.startswith("cedarflow_session=")
    ]
    return header


def test_signing_in_sends_the_browser_through_the_idp_with_pkce(start_gateway, handler_url):
    gateway = start_gateway(handler_url)
    with browser(gateway) as client:
        start = client.get("/#/experiments", headers=NAVIGATE)
        assert start.headers["location"] == "/oauth2/login?next=%2F"
        to_idp = client.get(start.headers["location"])
        login_cookie = to_idp.headers["set-cookie"]
        authorize = urlsplit(to_idp.headers["location"])
        params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
        page = client.get(to_idp.headers["location"])
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == (
        f"{gateway.url}/devidp/oauth2/authorize"
    )
    assert params["response_type"] == "code"
    assert params["client_id"] == DEV_CLIENT_ID
    assert params["redirect_uri"] == f"{gateway.url}/oauth2/callback"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["state"] != params["nonce"]
    assert "HttpOnly" in login_cookie and "SameSite=Lax" in login_cookie
    assert "no password" in page.text
    assert "code_verifier" not in params  # the verifier stays with the gateway


def test_a_signed_in_browser_uses_the_ui_and_its_ajax_calls(start_gateway, handler_url):
    gateway = start_gateway(handler_url)
    with browser(gateway) as client:
        landed = sign_in(client, "alice", "ds-team")
        cookie = session_cookie_header(landed)
        page = client.get("/", headers=NAVIGATE)
        created = client.post(
            CREATE, json={"name": f"exp-{random_token(4)}"}, headers={"Origin": gateway.url}
        )
        run = client.post(
            "/ajax-api/2.0/mlflow/runs/create",
            json={"experiment_id": created.json()["experiment_id"]},
            headers={"Origin": gateway.url},
        )
    assert landed.headers["location"] == "/"
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert created.status_code == 200, created.text
    assert run.json()["run"]["info"]["user_id"] == "alice"


def test_the_session_cookie_never_reaches_mlflow(start_gateway, echo_upstream):
    echo, upstream = echo_upstream
    gateway = start_gateway(upstream)
    with browser(gateway) as client:
        client.cookies.set("other", "kept")
        sign_in(client)
        client.get(SEARCH)
    cookies = [v for k, v in echo.received[-1]["headers"] if k == "cookie"]
    assert cookies == ["other=kept"]


def test_cross_origin_calls_riding_on_the_cookie_are_refused(start_gateway, handler_url):
    gateway = start_gateway(handler_url)
    body = {"name": f"evil-{random_token(4)}"}
    with browser(gateway) as client:
        sign_in(client)
        evil = client.post(CREATE, json=body, headers={"Origin": "http://evil.example"})
        null_origin = client.post(CREATE, json=body, headers={"Origin": "null"})
        no_origin = client.post(CREATE, json=body)
        other_port = client.post(CREATE, json=body, headers={"Origin": "http://127.0.0.1:1"})
        cross_site = client.post(
            CREATE, json=body, headers={"Origin": gateway.url, "Sec-Fetch-Site": "cross-site"}
        )
        bad_referer = client.post(CREATE, json=body, headers={"Referer": "http://evil.example/"})
        good_referer = client.post(CREATE, json=body, headers={"Referer": f"{gateway.url}/x"})
        reading = client.get(SEARCH, headers={"Origin": "http://evil.example"})
    for refused in (evil, null_origin, no_origin, other_port, cross_site, bad_referer):
        assert refused.status_code == 403
        assert refused.json()["error_code"] == "PERMISSION_DENIED"
    assert good_referer.status_code == 200
    assert reading.status_code == 200


def test_bearer_calls_are_not_subject_to_the_origin_check(start_gateway, handler_url):
    gateway = start_gateway(handler_url)
    token = gateway.idp.mint("bob")
    with gateway.client() as client:
        created = client.post(
            CREATE,
            json={"name": f"bearer-{random_token(4)}"},
            headers={"Authorization": f"Bearer {token}", "Origin": "http://evil.example"},
        )
    assert created.status_code == 200


def test_the_callback_refuses_a_foreign_state_a_replayed_code_and_a_wrong_nonce(
    start_gateway, handler_url
):
    gateway = start_gateway(handler_url)
    with browser(gateway) as client:
        to_idp = client.get("/oauth2/login")
        back = sign_in_on_dev_page(client, to_idp.headers["location"], "mallory")
        callback = back.headers["location"]
        query = parse_qs(urlsplit(callback).query)
        forged_state = client.get(
            f"/oauth2/callback?code={query['code'][0]}&state={random_token()}"
        )
        assert forged_state.status_code == 400
        assert "does not match" in forged_state.text
        genuine = client.get(callback)  # the forged attempt did not burn the real sign-in
        assert genuine.status_code == 303
        replay_cookie = client.cookies.get("cedarflow_session")
        client.cookies.clear()
        # A second sign-in whose code was minted for another nonce (an injected code).
        to_idp = client.get("/oauth2/login")
        idp_url = to_idp.headers["location"].replace("nonce=", "nonce=x")
        injected = sign_in_on_dev_page(client, idp_url, "mallory")
        wrong_nonce = client.get(injected.headers["location"])
        replayed = client.get(callback)  # an old callback URL is worth nothing later
    assert replay_cookie
    assert wrong_nonce.status_code == 401
    assert "not accepted" in wrong_nonce.text
    assert replayed.status_code in (400, 502)
    assert "cedarflow_session" not in client.cookies


def test_the_dev_token_endpoint_checks_pkce_and_single_use(start_gateway, handler_url):
    gateway = start_gateway(handler_url)
    with browser(gateway) as client:
        to_idp = client.get("/oauth2/login")
        back = sign_in_on_dev_page(client, to_idp.headers["location"], "alice")
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": DEV_CLIENT_ID,
            "redirect_uri": f"{gateway.url}/oauth2/callback",
            "code_verifier": random_token(48),
        }
        wrong_verifier = client.post("/devidp/oauth2/token", data=form)
        again = client.post("/devidp/oauth2/token", data=form)
    assert wrong_verifier.status_code == 400
    assert wrong_verifier.json()["error"] == "invalid_grant"
    assert again.json()["error"] == "invalid_grant"


def test_the_dev_page_refuses_unregistered_redirects(gateway):
    with gateway.client() as client:
        page = client.get(
            "/devidp/oauth2/authorize",
            params={
                "response_type": "code",
                "client_id": DEV_CLIENT_ID,
                "redirect_uri": "https://evil.example/cb",
                "code_challenge": "x" * 43,
                "code_challenge_method": "S256",
            },
        )
    assert page.status_code == 400
    assert "not registered" in page.text


def test_sessions_are_renewed_with_the_refresh_token_before_they_lapse(start_gateway, handler_url):
    gateway = start_gateway(handler_url, dev_token_ttl_seconds=4)
    with browser(gateway) as client:
        first = session_cookie_header(sign_in(client))
        renewed = None
        for _ in range(100):  # bounded: the ID token enters its last quarter within ~3 s
            answer = client.get(SEARCH)
            assert answer.status_code == 200
            if "set-cookie" in answer.headers:
                renewed = session_cookie_header(answer)
                break
            time.sleep(0.1)
        after = client.get(SEARCH)
    assert renewed is not None and renewed != first
    assert after.status_code == 200


def test_a_tampered_or_unknown_cookie_ends_the_session(start_gateway, handler_url):
    gateway = start_gateway(handler_url)
    with browser(gateway) as client:
        sign_in(client)
        value = client.cookies["cedarflow_session"]
        client.cookies.set("cedarflow_session", value[:-6] + "AAAAAA")
        api = client.get(SEARCH)
        page = client.get("/", headers=NAVIGATE)
    assert api.status_code == 401
    assert api.json()["error_code"] == "UNAUTHENTICATED"
    assert "Max-Age=0" in api.headers["set-cookie"]
    assert page.status_code == 302
    assert page.headers["location"].startswith("/oauth2/login")


def test_logout_clears_the_session_and_visits_the_idp_logout(start_gateway, handler_url):
    gateway = start_gateway(handler_url)
    with browser(gateway) as client:
        sign_in(client)
        out = client.get("/logout")
        idp = client.get(out.headers["location"])
        signed_out = client.get(idp.headers["location"])
        api = client.get(SEARCH)
    location = urlsplit(out.headers["location"])
    assert location.path == "/devidp/logout"
    assert parse_qs(location.query)["post_logout_redirect_uri"] == [
        f"{gateway.url}/oauth2/signed-out"
    ]
    assert "cedarflow_session=;" in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert signed_out.status_code == 200 and "signed out" in signed_out.text
    assert api.status_code == 401


def test_the_gateway_tells_clients_where_to_sign_in(gateway):
    with gateway.client() as client:
        document = client.get("/.well-known/cedarflow").json()
    assert document == {
        "gateway": gateway.url,
        "issuer": gateway.idp.issuer,
        "authorization_endpoint": f"{gateway.idp.issuer}/oauth2/authorize",
        "token_endpoint": f"{gateway.idp.issuer}/oauth2/token",
        "client_id": DEV_CLIENT_ID,
        "scopes": ["openid", "email", "profile"],
        "redirect_host": "127.0.0.1",
        "redirect_port": 0,
    }


def test_over_https_the_cookie_is_secure_and_host_locked(tmp_path):
    config = GatewayConfig(
        upstream_url="http://127.0.0.1:1",
        identity_secret=b"s" * 32,
        public_url="https://mlflow.example.com",
    )
    login = BrowserLogin(config, BrowserLoginConfig("https://idp", "web"), None, None)
    principal = Principal(subject="sub-1", username="alice")
    now = time.time()
    session = Session(
        caller=Authenticated(principal, "https://idp", "id", "web"),
        expires_at=now + 3600,
        issued_at=now,
        signed_in_at=now,
        refresh_token="r" * 1800,  # a Cognito refresh token's size
    )
    cookie = login._session_cookie(session)
    name, _, rest = cookie.partition("=")
    assert name == "__Host-cedarflow_session"
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "; Path=/;" in cookie
    assert len(rest.split(";")[0]) < 4000


def test_cognito_sign_in_endpoints_are_derived_from_region_pool_and_domain():
    config = BrowserLoginConfig.cognito(
        "eu-west-1", "eu-west-1_AbC", "acme-mlflow", "web-client", client_secret="s3"
    )
    assert config.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"
    base = "https://acme-mlflow.auth.eu-west-1.amazoncognito.com"
    assert config.authorization_endpoint == f"{base}/oauth2/authorize"
    assert config.token_endpoint == f"{base}/oauth2/token"
    assert config.end_session_endpoint == f"{base}/logout"
    assert config.public_client_id is None  # a confidential client is not handed to CLIs
    assert config.cli_loopback_host == "localhost"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/#/experiments", "/#/experiments"),
        ("/x?y=1", "/x?y=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        (None, "/"),
    ],
)
def test_only_local_paths_are_returned_to_after_sign_in(value, expected):
    assert safe_return_path(value) == expected
