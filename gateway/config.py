"""Gateway configuration: where MLflow runs, which token issuers to trust, which services exist."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

USE_ACCESS = "access"
USE_ID = "id"


@dataclass(frozen=True)
class IssuerConfig:
    """A trusted token issuer: a Cognito user pool or any OIDC provider with a JWKS."""

    issuer: str
    jwks_url: str
    client_ids: tuple[str, ...]
    token_uses: tuple[str, ...] = (USE_ID, USE_ACCESS)
    groups_claim: str = "cognito:groups"

    @classmethod
    def cognito(
        cls, region: str, user_pool_id: str, client_ids: tuple[str, ...], **options
    ) -> IssuerConfig:
        """The issuer and JWKS URL of a Cognito user pool, derived from its region and id."""
        issuer = f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
        return cls(
            issuer=issuer,
            jwks_url=f"{issuer}/.well-known/jwks.json",
            client_ids=tuple(client_ids),
            **options,
        )


@dataclass(frozen=True)
class ServiceClient:
    """A machine client (client-credentials grant) and the service principal it becomes."""

    client_id: str
    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class JwksSettings:
    """How long signing keys are trusted and how often the JWKS endpoint may be asked."""

    cache_seconds: float = 3600.0  # a key removed from the JWKS is dropped after this
    refresh_cooldown_seconds: float = 5.0  # at most one fetch per issuer in this window
    max_stale_seconds: float = 86400.0  # how long a stale copy serves while the endpoint is down
    fetch_timeout_seconds: float = 3.0


@dataclass(frozen=True)
class GatewayConfig:
    upstream_url: str  # handler tier base URL
    identity_secret: bytes
    public_url: str  # e.g. http://127.0.0.1:8080
    issuers: tuple[IssuerConfig, ...] = ()
    dev_idp_dir: Path | None = None  # set = dev identity provider on (key kept there)
    service_clients: tuple[ServiceClient, ...] = ()
    admin_groups: tuple[str, ...] = ("admins",)
    leeway_seconds: int = 30  # clock skew tolerated on exp / iat / nbf
    jwks: JwksSettings = field(default_factory=JwksSettings)
    upstream_timeout_seconds: float = 300.0  # long uploads and downloads stream through

    @property
    def dev_issuer(self) -> str:
        """The dev identity provider's issuer URL (served by this gateway under /devidp)."""
        return f"{self.public_url.rstrip('/')}/devidp"
