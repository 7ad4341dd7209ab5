"""The dev identity provider: its key file, its tokens, and their shape."""

from __future__ import annotations

import stat

import jwt

from gateway.config import IssuerConfig
from gateway.devidp.provider import DEV_CLIENT_ID, KEY_FILE, DevIdentityProvider, subject_for

ISSUER = "http://127.0.0.1:8080/devidp"


def decode(idp: DevIdentityProvider, token: str) -> dict:
    key = jwt.PyJWK(idp.jwks()["keys"][0])
    return jwt.decode(token, key, algorithms=["RS256"], issuer=idp.issuer)


def test_the_key_is_created_once_and_only_the_owner_can_read_it(tmp_path):
    first = DevIdentityProvider(tmp_path / "devidp", ISSUER)
    mode = stat.S_IMODE((tmp_path / "devidp" / KEY_FILE).stat().st_mode)
    assert mode == 0o600
    again = DevIdentityProvider(tmp_path / "devidp", ISSUER)
    assert again.kid == first.kid
    assert decode(again, first.mint("alice"))["username"] == "alice"
    assert list((tmp_path / "devidp").iterdir()) == [tmp_path / "devidp" / KEY_FILE]


def test_user_tokens_look_like_cognito_access_tokens(tmp_path):
    idp = DevIdentityProvider(tmp_path, ISSUER)
    token = idp.mint("alice", ["ds-team", "admins"], ttl=120)
    assert jwt.get_unverified_header(token)["kid"] == idp.kid
    claims = decode(idp, token)
    assert claims["iss"] == ISSUER
    assert claims["sub"] == subject_for("alice") != subject_for("bob")
    assert claims["username"] == "alice"
    assert claims["cognito:groups"] == ["ds-team", "admins"]
    assert claims["client_id"] == DEV_CLIENT_ID
    assert claims["token_use"] == "access"
    assert claims["exp"] - claims["iat"] == 120
    assert {"scope", "auth_time", "jti"} <= claims.keys()


def test_machine_tokens_have_no_user(tmp_path):
    idp = DevIdentityProvider(tmp_path, ISSUER)
    claims = decode(idp, idp.mint("ignored", machine_client_id="job-client"))
    assert claims["sub"] == claims["client_id"] == "job-client"
    assert "username" not in claims and "cognito:groups" not in claims
    assert claims["scope"]


def test_the_subject_does_not_depend_on_the_issuer(tmp_path):
    one = DevIdentityProvider(tmp_path, ISSUER)
    other = DevIdentityProvider(tmp_path, "http://127.0.0.1:9999/devidp")
    assert decode(one, one.mint("alice"))["sub"] == decode(other, other.mint("alice"))["sub"]


def test_cognito_issuer_configuration_is_derived_from_region_and_pool():
    issuer = IssuerConfig.cognito("eu-west-1", "eu-west-1_AbC", ("client-a",))
    assert issuer.issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC"
    assert issuer.jwks_url == issuer.issuer + "/.well-known/jwks.json"
    assert issuer.client_ids == ("client-a",)
