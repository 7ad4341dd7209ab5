"""The dev identity provider over HTTP: where it sends codes, and where it may run at all."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from gw_support import POLICIES, SECRET

from gateway.app import create_app
from gateway.config import GatewayConfig, IssuerConfig
from gateway.devidp.provider import DEV_CLIENT_ID

CHALLENGE = "x" * 43

# Each one names, or leads a browser to, a host other than this machine's loopback.
FOREIGN_REDIRECTS = [
    "http://127.0.0.1:80@evil.example/cb",
    "http://localhost@evil.example/cb",
    "http://[::1]@evil.example/cb",
    "http://user:pass@127.0.0.1/cb",
    "http://127.0.0.1.evil.example/cb",
    "http://localhost.evil.example:8000/cb",
    "http://127.0.0.1\\@evil.example/cb",
    "http://127.0.0.1\t@evil.example/cb",
    "http://127.0.0.1:99999/cb",
    "http://127.0.0.1:8000/cb#@evil.example",
    "https://evil.example/cb",
    "//evil.example/cb",
]
LOOPBACK_REDIRECTS = [
    "http://127.0.0.1:53682/callback",
    "http://localhost/cb",
    "http://[::1]:8000/cb?from=cli",
]


def _authorize(redirect_uri: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": DEV_CLIENT_ID,
        "redirect_uri": redirect_uri,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }


@pytest.mark.parametrize("redirect_uri", FOREIGN_REDIRECTS)
def test_codes_never_go_to_a_foreign_redirect(gateway, redirect_uri):
    with gateway.client(follow_redirects=False) as client:
        page = client.get("/devidp/oauth2/authorize", params=_authorize(redirect_uri))
        submit = client.post(
            "/devidp/oauth2/authorize",
            data={**_authorize(redirect_uri), "username": "alice", "groups": "admins"},
        )
    for answer in (page, submit):
        assert answer.status_code == 400
        assert "not registered" in answer.text
        assert "location" not in answer.headers


@pytest.mark.parametrize("redirect_uri", LOOPBACK_REDIRECTS)
def test_command_line_clients_on_loopback_still_get_their_code(gateway, redirect_uri):
    with gateway.client(follow_redirects=False) as client:
        page = client.get("/devidp/oauth2/authorize", params=_authorize(redirect_uri))
        submit = client.post(
            "/devidp/oauth2/authorize",
            data={**_authorize(redirect_uri), "username": "alice", "state": "s1"},
        )
    assert page.status_code == 200
    assert submit.status_code == 303
    location = submit.headers["location"]
    assert location.startswith(redirect_uri)
    assert urlsplit(location).netloc == urlsplit(redirect_uri).netloc
    assert parse_qs(urlsplit(location).query)["state"] == ["s1"]


def _config(tmp_path, **overrides) -> GatewayConfig:
    options = {
        "upstream_url": "http://127.0.0.1:9",
        "identity_secret": SECRET,
        "public_url": "http://127.0.0.1:8080",
        "dev_idp_dir": tmp_path / "devidp",
        "policies_dir": POLICIES,
        "store_uri": "dynamodb://127.0.0.1:9/unused",  # read on the first call only
    }
    return GatewayConfig(**(options | overrides))


def test_the_gateway_refuses_the_dev_provider_beside_an_outside_issuer(tmp_path):
    cognito = IssuerConfig.cognito("eu-west-1", "eu-west-1_AbC", ("web",))
    with pytest.raises(ValueError, match="outside issuer"):
        create_app(_config(tmp_path, issuers=(cognito,)))
    create_app(_config(tmp_path, issuers=(cognito,), dev_idp_dir=None))  # the issuer alone runs


@pytest.mark.parametrize(
    "public_url", ["http://0.0.0.0:8080", "https://mlflow.example.com", "http://10.1.2.3:8080"]
)
def test_the_gateway_refuses_the_dev_provider_off_loopback(tmp_path, public_url):
    with pytest.raises(ValueError, match="loopback only"):
        create_app(_config(tmp_path, public_url=public_url))


def test_unredeemed_sign_in_codes_are_bounded_oldest_first(gateway, monkeypatch):
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    from gateway.devidp import oauth

    monkeypatch.setattr(oauth, "MAX_CODES", 3, raising=False)
    verifier = "v" * 43
    redirect = LOOPBACK_REDIRECTS[0]
    form = {**_authorize(redirect), "code_challenge": create_s256_code_challenge(verifier)}
    with gateway.client(follow_redirects=False) as client:
        codes = []
        for _ in range(5):
            submit = client.post("/devidp/oauth2/authorize", data={**form, "username": "alice"})
            codes.append(parse_qs(urlsplit(submit.headers["location"]).query)["code"][0])
        redeemed = [
            client.post(
                "/devidp/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "client_id": DEV_CLIENT_ID,
                    "redirect_uri": redirect,
                    "code_verifier": verifier,
                },
            ).status_code  # fmt: skip
            for code in codes
        ]
    assert redeemed == [400, 400, 200, 200, 200]
