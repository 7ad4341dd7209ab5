"""Gateway configuration: where MLflow runs, which token issuers to trust, which services exist."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

USE_ACCESS = "access"
USE_ID = "id"
MIB = 1024 * 1024


@dataclass(frozen=True)
class IssuerConfig:
    """A trusted token issuer: a Cognito user pool or any OIDC provider with a JWKS."""

    issuer: str
    jwks_url: str
    client_ids: tuple[str, ...]
    token_uses: tuple[str, ...] = (USE_ID, USE_ACCESS)
    groups_claim: str = "cognito:groups"
    # Principal ids are "<tag>:<value of principal_claim>" (gateway/authn/principal.py); the tag
    # defaults to the pool id of a Cognito issuer, else a digest of the issuer URL.
    principal_claim: str = "sub"  # sub | username | email
    principal_tag: str | None = None

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
class BrowserLoginConfig:
    """The OIDC app client the gateway signs browsers in with (authorization code + PKCE).

    Endpoints left empty are read from the issuer's discovery document. `cli_client_id` is the
    public client that `cedarflow login` uses (default: `client_id`, when that has no secret).
    """

    issuer: str
    client_id: str
    client_secret: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    end_session_endpoint: str | None = None  # IdP logout; empty = sign out of the gateway only
    logout_style: str = "oidc"  # "oidc" (post_logout_redirect_uri) or "cognito" (logout_uri)
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    cli_client_id: str | None = None
    cli_loopback_host: str = "127.0.0.1"  # Cognito accepts plain-http callbacks on localhost only
    cli_loopback_port: int = 0  # 0 = any free port (RFC 8252); set when the IdP needs one fixed

    @classmethod
    def cognito(
        cls,
        region: str,
        user_pool_id: str,
        domain: str,
        client_id: str,
        client_secret: str | None = None,
        **options,
    ) -> BrowserLoginConfig:
        """A Cognito app client; `domain` is the hosted UI prefix or a full https:// URL."""
        issuer = f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
        base = domain.rstrip("/")
        if not base.startswith("https://"):
            base = f"https://{base}.auth.{region}.amazoncognito.com"
        options.setdefault("cli_loopback_host", "localhost")
        return cls(
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            authorization_endpoint=f"{base}/oauth2/authorize",
            token_endpoint=f"{base}/oauth2/token",
            end_session_endpoint=f"{base}/logout",
            logout_style="cognito",
            **options,
        )

    @property
    def public_client_id(self) -> str | None:
        """The client id handed to command-line clients, or None when there is none."""
        if self.cli_client_id:
            return self.cli_client_id
        return None if self.client_secret else self.client_id


@dataclass(frozen=True)
class SessionSettings:
    """Browser sessions: the cookie, its lifetime, and when the tokens behind it are renewed."""

    secret: bytes | None = None  # None = derived from the identity secret
    max_age_seconds: int = 12 * 3600  # absolute: sign in again after this, refresh or not
    refresh_margin_seconds: int = 60  # renew when the ID token has less than this left


@dataclass(frozen=True)
class BodyLimits:
    """Largest request body accepted, in bytes, per kind of call (gateway/body_limit.py)."""

    json: int = 4 * MIB  # MLflow's JSON API and the permissions API
    large: int = 32 * MIB  # LogBatch, LogInputs, traces and OTLP spans, GraphQL, dataset records
    form: int = 64 * 1024  # sign-in and dev identity provider forms


@dataclass(frozen=True)
class GatewayConfig:
    upstream_url: str  # handler tier base URL
    identity_secret: bytes
    public_url: str  # e.g. http://127.0.0.1:8080
    issuers: tuple[IssuerConfig, ...] = ()
    # set = dev identity provider on (key kept there); refused with `issuers` or off loopback
    dev_idp_dir: Path | None = None
    service_clients: tuple[ServiceClient, ...] = ()
    admin_groups: tuple[str, ...] = ("admins",)
    leeway_seconds: int = 30  # clock skew tolerated on exp / iat / nbf
    jwks: JwksSettings = field(default_factory=JwksSettings)
    upstream_timeout_seconds: float = 300.0  # long uploads and downloads stream through
    browser_login: BrowserLoginConfig | None = None  # None = the dev provider's, when it is on
    session: SessionSettings = field(default_factory=SessionSettings)
    dev_token_ttl_seconds: int = 3600  # lifetime of the dev provider's access and ID tokens
    # Authorization (gateway/pipeline.py): Cedar policies from `policies_dir`, role bindings
    # from the handler tier's table `store_uri`; both required (the gateway refuses to start).
    policies_dir: Path | None = None
    store_uri: str | None = None  # dynamodb://...
    bindings_ttl_seconds: float = 5.0  # how long the gateway trusts cached role bindings
    audit_path: Path | None = None  # audit JSON lines; None = stdout
    body_limits: BodyLimits = field(default_factory=BodyLimits)

    @property
    def dev_issuer(self) -> str:
        """The dev identity provider's issuer URL (served by this gateway under /devidp)."""
        return f"{self.public_url.rstrip('/')}/devidp"
