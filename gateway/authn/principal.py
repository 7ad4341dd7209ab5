"""From verified token claims to the principal the rest of the gateway works with.

A principal id names one caller for good, across every trusted issuer:

    <issuer tag>:<claim>    a user: the issuer's tag, then the value of its principal claim
                            (`sub` by default; `username` or `email` keep bindings across a
                            user pool rebuilt elsewhere, together with a fixed tag)
    service:<name>          a machine client configured as `--service-client ID=NAME`

It is the Cedar entity `User::"<principal id>"`, the key of role bindings, the subject of the
identity header the handler tier trusts, and what the audit records. Two issuers never share
a tag (checked at start), and no issuer is tagged `service`, so a user of one issuer never
holds another's bindings and a machine client never holds a user's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.config import USE_ACCESS, IssuerConfig, ServiceClient
from store.handler.identity import Principal

__all__ = [
    "ANONYMOUS",
    "DEV_TAG",
    "SERVICE_TAG",
    "Authenticated",
    "MissingPrincipalClaim",
    "Principal",
    "UnknownServiceClient",
    "check_issuer_tags",
    "issuer_tag",
    "principal_from_claims",
    "principal_id",
    "token_client_id",
]

SERVICE_TAG = "service"  # principal ids of machine clients
DEV_TAG = "dev"  # the local identity provider of `cedarflow up`
PRINCIPAL_CLAIMS = ("sub", "username", "email")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_COGNITO_ISSUER = re.compile(r"https://cognito-idp\.[a-z0-9-]+\.amazonaws\.com/([\w-]+_\w+)")

# Signed for the UI's public static files, which the browser loads before it has a token.
ANONYMOUS = Principal(subject="anonymous", username="anonymous", kind="anonymous")


@dataclass(frozen=True)
class Authenticated:
    """The outcome of authentication: who is calling, and facts about the token for the audit."""

    principal: Principal
    issuer: str
    token_use: str
    client_id: str
    token_id: str | None = None  # jti
    identity_provider: str | None = None  # federated provider from the `identities` claim


class UnknownServiceClient(Exception):
    """A client-credentials token from a client the gateway has no service principal for."""


def principal_from_claims(
    claims: dict, issuer: IssuerConfig, service_clients: tuple[ServiceClient, ...]
) -> Authenticated:
    """Map verified claims to a user or service principal."""
    token_use = claims["token_use"]
    client_id = token_client_id(claims, token_use)
    if is_machine_token(claims):
        service = _service_for(client_id, service_clients)
        principal = Principal(
            subject=principal_id(SERVICE_TAG, service.name),
            username=service.name,
            groups=service.groups,
            kind="service",
        )
    else:
        principal = Principal(
            subject=principal_id(issuer_tag(issuer), _principal_claim(claims, issuer)),
            username=_username(claims),
            email=_optional_text(claims.get("email")),
            groups=_groups(claims.get(issuer.groups_claim)),
            kind="user",
        )
    return Authenticated(
        principal=principal,
        issuer=issuer.issuer,
        token_use=token_use,
        client_id=client_id,
        token_id=_optional_text(claims.get("jti")),
        identity_provider=_identity_provider(claims.get("identities")),
    )


def principal_id(tag: str, value: str) -> str:
    return f"{tag}:{value}"


def issuer_tag(issuer: IssuerConfig) -> str:
    """The issuer's part of its users' principal ids: the configured tag, else the user pool
    id of a Cognito issuer, else a digest of the issuer URL (stable while the URL is)."""
    if issuer.principal_tag:
        return issuer.principal_tag
    cognito = _COGNITO_ISSUER.fullmatch(issuer.issuer)
    if cognito:
        return cognito.group(1)
    return "iss-" + hashlib.sha256(issuer.issuer.encode()).hexdigest()[:10]


def check_issuer_tags(issuers: Iterable[IssuerConfig]) -> None:
    """Refuse configurations where two issuers' users could share principal ids."""
    seen: dict[str, str] = {}
    for issuer in issuers:
        tag = issuer_tag(issuer)
        if not _TAG.fullmatch(tag) or tag == SERVICE_TAG:
            raise ValueError(
                f"issuer {issuer.issuer}: principal tag {tag!r} is not allowed (letters, digits, "
                f"'.', '_', '-'; not {SERVICE_TAG!r})"
            )
        if issuer.principal_claim not in PRINCIPAL_CLAIMS:
            raise ValueError(
                f"issuer {issuer.issuer}: principal claim {issuer.principal_claim!r} is not one "
                f"of {', '.join(PRINCIPAL_CLAIMS)}"
            )
        if seen.get(tag, issuer.issuer) != issuer.issuer:
            raise ValueError(f"issuers {seen[tag]} and {issuer.issuer} share the tag {tag!r}")
        seen[tag] = issuer.issuer


def is_machine_token(claims: dict) -> bool:
    """A client-credentials access token: no user name, a client id and scopes."""
    return (
        claims.get("token_use") == USE_ACCESS
        and "username" not in claims
        and "cognito:username" not in claims
        and isinstance(claims.get("client_id"), str)
        and "scope" in claims
    )


def token_client_id(claims: dict, token_use: str) -> str:
    """The app client a token was issued to: `client_id` (access token) or `aud` (ID token)."""
    value = claims.get("client_id") if token_use == USE_ACCESS else claims.get("aud")
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    return value if isinstance(value, str) else ""


def _service_for(client_id: str, service_clients: tuple[ServiceClient, ...]) -> ServiceClient:
    for service in service_clients:
        if service.client_id == client_id:
            return service
    raise UnknownServiceClient(client_id)


class MissingPrincipalClaim(Exception):
    """A user token without the claim its issuer's principal ids are made of."""


def _principal_claim(claims: dict, issuer: IssuerConfig) -> str:
    if issuer.principal_claim == "username":  # access tokens: username; ID tokens: cognito:
        value = claims.get("username") or claims.get("cognito:username")
    else:
        value = claims.get(issuer.principal_claim)
    if not isinstance(value, str) or not value:
        raise MissingPrincipalClaim(issuer.principal_claim)
    return value


def _username(claims: dict) -> str:
    for name in ("username", "cognito:username"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return claims["sub"]


def _groups(value: object) -> tuple[str, ...]:
    # Cognito sends a list; a mapped IdP attribute may arrive as one comma-separated string.
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return ()
    return tuple(g.strip() for g in value if isinstance(g, str) and g.strip())


def _identity_provider(identities: object) -> str | None:
    if isinstance(identities, list):
        for entry in identities:
            if isinstance(entry, dict) and isinstance(entry.get("providerName"), str):
                return entry["providerName"]
    return None


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
