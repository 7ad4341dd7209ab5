"""Token verification through a running gateway: the dev provider's JWKS is fetched over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gw_support import MACHINE, POLICIES, SECRET

from gateway.app import create_app
from gateway.authn.bearer import EXPIRED_MESSAGE, INVALID_MESSAGE, MALFORMED_MESSAGE
from gateway.config import GatewayConfig
from gateway.devidp.provider import DEV_CLIENT_ID, subject_for
from store.handler.identity import IDENTITY_HEADER, verify_identity_claims

API = "/api/2.0/mlflow/experiments/search"


def user_claims(idp, **changes) -> dict:
    now = int(time.time())
    claims = {
        "iss": idp.issuer,
        "sub": subject_for("alice"),
        "username": "alice",
        "cognito:groups": ["ds-team"],
        "client_id": DEV_CLIENT_ID,
        "token_use": "access",
        "scope": "openid",
        "iat": now,
        "exp": now + 600,
        "auth_time": now,
        "jti": str(uuid.uuid4()),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def principal_seen_upstream(echo) -> dict:
    request = echo.received[-1]
    value = dict(request["headers"])[IDENTITY_HEADER.lower()]
    principal = verify_identity_claims(
        value, request["method"], request["path"], SECRET, query=request["query"].decode()
    ).principal
    return principal


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict, claims: dict, key: bytes) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def assert_invalid_token(response, message: str = INVALID_MESSAGE) -> None:
    assert response.status_code == 401
    assert response.json() == {"error_code": "UNAUTHENTICATED", "message": message}
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.headers["www-authenticate"].startswith("Bearer ")


def call(gateway, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with gateway.client() as client:
        return client.get(API, headers=headers)


def test_dev_token_is_accepted_and_forwarded_as_principal(gateway, echo_upstream):
    echo, _ = echo_upstream
    response = call(gateway, gateway.idp.mint("alice", ["ds-team", "admins"]))
    assert response.status_code == 200
    principal = principal_seen_upstream(echo)
    assert principal.subject == f"dev:{subject_for('alice')}"  # issuer tag, then `sub`
    assert principal.username == "alice"
    assert principal.groups == ("ds-team", "admins")
    assert principal.kind == "user"


def test_id_token_with_cognito_username_and_email(gateway, echo_upstream):
    echo, _ = echo_upstream
    claims = user_claims(
        gateway.idp,
        token_use="id",
        client_id=None,
        username=None,
        scope=None,
        aud=DEV_CLIENT_ID,
        email="bob@example.com",
        **{"cognito:username": "bob"},
    )
    response = call(gateway, gateway.idp.encode(claims))
    assert response.status_code == 200
    principal = principal_seen_upstream(echo)
    assert (principal.username, principal.email) == ("bob", "bob@example.com")


def test_machine_token_becomes_the_configured_service(gateway, echo_upstream):
    echo, _ = echo_upstream
    response = call(gateway, gateway.idp.mint("", machine_client_id=MACHINE.client_id))
    assert response.status_code == 200
    principal = principal_seen_upstream(echo)
    assert principal.kind == "service"
    assert (principal.subject, principal.username) == (f"service:{MACHINE.name}", MACHINE.name)
    assert principal.groups == MACHINE.groups


def test_machine_token_from_an_unknown_client_is_refused(gateway, echo_upstream):
    echo, _ = echo_upstream
    for client_id in ("someone-else", DEV_CLIENT_ID):
        assert_invalid_token(call(gateway, gateway.idp.mint("", machine_client_id=client_id)))
    assert echo.received == []


def test_no_token_gets_a_bearer_challenge_without_error(gateway, echo_upstream):
    echo, _ = echo_upstream
    for headers in ({}, {"Authorization": "Basic YWxpY2U6cHc="}):
        with gateway.client() as client:
            response = client.post(API, headers=headers, json={})
        assert response.status_code == 401
        assert response.json()["error_code"] == "UNAUTHENTICATED"
        assert "MLFLOW_TRACKING_TOKEN" in response.json()["message"]
        assert response.headers["www-authenticate"] == 'Bearer realm="cedarflow"'
    assert echo.received == []


@pytest.mark.parametrize("token", ["abc", "a.b", "a.b.c", "a.b.c.d", "!!.##.$$"])
def test_malformed_tokens(gateway, token):
    response = call(gateway, token)
    assert_invalid_token(response, MALFORMED_MESSAGE)


def test_alg_none_is_refused(gateway):
    header = {"alg": "none", "typ": "JWT", "kid": gateway.idp.kid}
    claims = user_claims(gateway.idp)
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."
    assert_invalid_token(call(gateway, token))


def test_hs256_signed_with_the_public_key_is_refused(gateway):
    idp = gateway.idp
    public_pem = idp._private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_text = json.dumps(idp.jwks()["keys"][0]).encode()
    for key in (public_pem, jwk_text):
        token = hand_signed({"alg": "HS256", "kid": idp.kid}, user_claims(idp), key)
        assert_invalid_token(call(gateway, token))


def test_unknown_kid_and_foreign_key_are_refused(gateway):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = user_claims(gateway.idp)
    for kid in ("not-published", gateway.idp.kid):
        token = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": kid})
        assert_invalid_token(call(gateway, token))
    no_kid = jwt.encode(claims, gateway.idp._private_key, algorithm="RS256")
    assert_invalid_token(call(gateway, no_kid))


def test_expired_token_says_so(gateway):
    now = int(time.time())
    token = gateway.idp.encode(user_claims(gateway.idp, iat=now - 7200, exp=now - 3600))
    assert_invalid_token(call(gateway, token), EXPIRED_MESSAGE)


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200},
        {"nbf": int(time.time()) + 3600},
    ],
    ids=["iat-in-future", "nbf-in-future"],
)
def test_not_yet_valid_token_is_refused(gateway, changes):
    assert_invalid_token(call(gateway, gateway.idp.encode(user_claims(gateway.idp, **changes))))


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "https://evil.example/devidp"},
        {"iss": "ISSUER/"},
        {"iss": None},
        {"client_id": "some-other-app"},
        {"token_use": "refresh"},
        {"token_use": None},
        {"sub": None},
        {"sub": ""},
        {"exp": None},
        {"iat": None},
        {"token_use": "id", "client_id": None},
        {"token_use": "id", "aud": "some-other-app"},
        {"token_use": "id", "aud": [DEV_CLIENT_ID, "some-other-app"]},
    ],
    ids=[
        "wrong-issuer",
        "issuer-with-trailing-slash",
        "no-issuer",
        "wrong-client-id",
        "wrong-token-use",
        "no-token-use",
        "no-sub",
        "empty-sub",
        "no-exp",
        "no-iat",
        "id-token-without-aud",
        "id-token-wrong-aud",
        "id-token-two-audiences",
    ],
)
def test_bad_claims_are_refused(gateway, echo_upstream, changes):
    echo, _ = echo_upstream
    if changes.get("iss") == "ISSUER/":
        changes = {"iss": gateway.idp.issuer + "/"}
    token = gateway.idp.encode(user_claims(gateway.idp, **changes))
    assert_invalid_token(call(gateway, token))
    assert echo.received == []


def test_every_api_prefix_needs_a_token(gateway, echo_upstream):
    echo, _ = echo_upstream
    paths = [
        "/ajax-api/2.0/mlflow/runs/search",
        "/api/2.0/mlflow-artifacts/artifacts/x",
        "/graphql",
        "/v1/traces",
        "/get-artifact",
        "/health",
        "/static-files/../api/2.0/mlflow/experiments/search",
    ]
    with gateway.client() as client:
        for path in paths:
            assert client.post(path, json={}).status_code == 401, path
            assert client.get(path).status_code == 401, path
    assert echo.received == []


def test_ui_static_files_load_without_a_token(gateway, echo_upstream):
    echo, _ = echo_upstream
    with gateway.client() as client:
        for path in ("/static-files/static/js/main.js", "/favicon.ico"):
            assert client.get(path).status_code == 200, path
        assert client.post("/static-files/x", json={}).status_code == 401
    principal = principal_seen_upstream(echo)
    assert principal.kind == "anonymous"


def test_the_ui_page_sends_a_browser_to_sign_in(gateway, echo_upstream):
    echo, _ = echo_upstream
    with gateway.client() as client:
        page = client.get("/", headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"})
        script = client.get("/", headers={"Accept": "application/json"})
    assert page.status_code == 302
    assert page.headers["location"] == "/oauth2/login?next=%2F"
    assert script.status_code == 401
    assert echo.received == []


def test_probes_need_no_token(gateway):
    with gateway.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        discovery = client.get("/devidp/.well-known/openid-configuration").json()
        jwks = client.get("/devidp/.well-known/jwks.json").json()
    assert ready.status_code == 200
    assert ready.json()["issuers"] == {gateway.idp.issuer: True}
    assert discovery["issuer"] == gateway.idp.issuer
    assert discovery["jwks_uri"] == gateway.idp.jwks_url
    assert [k["kid"] for k in jwks["keys"]] == [gateway.idp.kid]


def test_the_decision_sits_between_authentication_and_forwarding(
    start_gateway, echo_upstream, tmp_path
):
    echo, url = echo_upstream
    policies = tmp_path / "nobody"
    policies.mkdir()
    shutil.copy(POLICIES / "schema.cedarschema", policies)
    (policies / "nobody.cedar").write_text('@id("nobody")\nforbid (principal, action, resource);\n')
    gateway = start_gateway(url, policies_dir=policies)
    response = call(gateway, gateway.idp.mint("alice", ["admins"]))
    assert response.status_code == 403
    assert response.json() == {
        "error_code": "PERMISSION_DENIED",
        "message": "Permission denied: SearchExperiments on workspace 'default'.",
    }
    assert_invalid_token(call(gateway, "a.b.c"), MALFORMED_MESSAGE)
    assert echo.received == []


def test_a_gateway_without_policies_does_not_start(tmp_path):
    config = GatewayConfig(
        upstream_url="http://127.0.0.1:9",
        identity_secret=SECRET,
        public_url="http://127.0.0.1:9",
        dev_idp_dir=tmp_path / "devidp",
    )
    with pytest.raises(ValueError, match="policies"):
        create_app(config)
