"""Principal ids: one per caller across every trusted issuer, never shared with a machine."""

from __future__ import annotations

import pytest

from gateway.authn.principal import (
    DEV_TAG,
    MissingPrincipalClaim,
    check_issuer_tags,
    issuer_tag,
    principal_from_claims,
)
from gateway.config import IssuerConfig, ServiceClient

POOL = IssuerConfig(
    "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf",
    "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf/.well-known/jwks.json",
    ("app",),
)
OTHER = IssuerConfig("https://login.example.com/realms/x", "https://login.example.com/k", ("app",))
SERVICES = (ServiceClient("machine", "alice", ("jobs",)),)


def user(sub: str = "1234", **extra) -> dict:
    return {"sub": sub, "username": "alice", "token_use": "access", "client_id": "app", **extra}


def test_a_users_principal_id_is_the_issuer_tag_and_the_claim():
    assert issuer_tag(POOL) == "eu-west-1_AbCdEf"
    assert issuer_tag(OTHER).startswith("iss-") and issuer_tag(OTHER) == issuer_tag(OTHER)
    assert (
        issuer_tag(IssuerConfig("https://x", "https://x/k", ("a",), principal_tag=DEV_TAG)) == "dev"
    )
    caller = principal_from_claims(user(), POOL, SERVICES).principal
    assert (caller.subject, caller.username, caller.kind) == (
        "eu-west-1_AbCdEf:1234",
        "alice",
        "user",
    )
    other = principal_from_claims(user(), OTHER, SERVICES).principal
    assert other.subject != caller.subject  # the same sub from another issuer


def test_a_machine_client_is_a_service_principal_never_a_user():
    claims = {"sub": "machine", "client_id": "machine", "token_use": "access", "scope": "api"}
    caller = principal_from_claims(claims, POOL, SERVICES).principal
    assert (caller.subject, caller.username, caller.kind) == ("service:alice", "alice", "service")
    assert caller.groups == ("jobs",)


def test_the_principal_claim_is_configurable_per_issuer():
    by_name = IssuerConfig(POOL.issuer, POOL.jwks_url, ("app",), principal_claim="username")
    assert principal_from_claims(user(), by_name, ()).principal.subject == "eu-west-1_AbCdEf:alice"
    id_token = {"sub": "1", "cognito:username": "bob", "token_use": "id", "aud": "app"}
    assert principal_from_claims(id_token, by_name, ()).principal.subject.endswith(":bob")
    by_email = IssuerConfig(OTHER.issuer, OTHER.jwks_url, ("app",), principal_claim="email")
    with pytest.raises(MissingPrincipalClaim):
        principal_from_claims(user(), by_email, ())


def test_issuers_that_would_share_principal_ids_are_refused():
    check_issuer_tags([POOL, OTHER])
    same_tag = IssuerConfig("https://b.example", "https://b.example/k", ("a",), principal_tag="t")
    with pytest.raises(ValueError, match="share the tag"):
        check_issuer_tags(
            [IssuerConfig("https://a.example", "k", ("a",), principal_tag="t"), same_tag]
        )
    for bad in ("service", "has:colon", "a@b"):
        with pytest.raises(ValueError, match="not allowed"):
            check_issuer_tags([IssuerConfig("https://a.example", "k", ("a",), principal_tag=bad)])
    with pytest.raises(ValueError, match="principal claim"):
        check_issuer_tags([IssuerConfig(POOL.issuer, "k", ("a",), principal_claim="phone")])
