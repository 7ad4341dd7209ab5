"""From verified token claims to the principal the rest of the gateway works with."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import USE_ACCESS, IssuerConfig, ServiceClient
from store.identity import Principal

__all__ = [
    "ANONYMOUS",
    "Authenticated",
    "Principal",
    "UnknownServiceClient",
    "principal_from_claims",
    "token_client_id",
]

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
            subject=service.name, username=service.name, groups=service.groups, kind="service"
        )
    else:
        principal = Principal(
            subject=claims["sub"],
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
