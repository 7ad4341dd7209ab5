"""Client side: where a gateway's tokens come from, and how they are kept fresh.

- `discover(url)` reads the gateway's `/.well-known/cedarflow` (issuer, endpoints, public client).
- `CredentialStore` keeps what `cedarflow login` got (the refresh token) in a file only the user
  can read.
- `RefreshingToken` hands out an access token and gets a new one shortly before its `exp`, from
  the refresh token (a person) or from the client-credentials grant (a job).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt

from gateway.authn.oauth import IdentityProviderError, OAuthClient, TokenResponse

CLIENT_DISCOVERY_PATH = "/.well-known/cedarflow"
CLIENT_ID_ENV = "CEDARFLOW_CLIENT_ID"
CLIENT_SECRET_ENV = "CEDARFLOW_CLIENT_SECRET"  # noqa: S105 (a variable name)
CREDENTIALS_ENV = "CEDARFLOW_CREDENTIALS"
_REFRESH_MARGIN_SECONDS = 60.0


class ClientAuthError(Exception):
    """No usable credentials for a gateway, or its identity provider refused them."""


@dataclass(frozen=True)
class ClientDiscovery:
    """What a gateway tells its clients about signing in."""

    gateway: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    client_id: str | None
    scopes: tuple[str, ...]
    redirect_host: str = "127.0.0.1"
    redirect_port: int = 0


@dataclass(frozen=True)
class StoredLogin:
    """One gateway's sign-in, as kept in the credentials file."""

    gateway: str
    issuer: str
    token_endpoint: str
    client_id: str
    refresh_token: str
    username: str | None = None


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    expires_at: float
    issued_at: float


def gateway_key(url: str) -> str:
    """The gateway's origin: how logins are filed and matched to MLflow's request URLs."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientAuthError(f"not an http(s) URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def discover(gateway_url: str, http: httpx.Client) -> ClientDiscovery:
    url = f"{gateway_key(gateway_url)}{CLIENT_DISCOVERY_PATH}"
    try:
        response = http.get(url)
        response.raise_for_status()
        document = response.json()
        return ClientDiscovery(
            gateway=gateway_key(gateway_url),
            issuer=document["issuer"],
            authorization_endpoint=document["authorization_endpoint"],
            token_endpoint=document["token_endpoint"],
            client_id=document.get("client_id"),
            scopes=tuple(document.get("scopes") or ("openid",)),
            redirect_host=document.get("redirect_host") or "127.0.0.1",
            redirect_port=int(document.get("redirect_port") or 0),
        )
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise ClientAuthError(f"{url} did not describe a Cedarflow gateway: {exc}") from None


def default_credentials_path() -> Path:
    if os.environ.get(CREDENTIALS_ENV):
        return Path(os.environ[CREDENTIALS_ENV])
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "cedarflow" / "credentials.json"


class CredentialStore:
    """The credentials file: {"logins": {gateway origin: StoredLogin}}, mode 0600."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_credentials_path()

    def load(self, gateway: str) -> StoredLogin | None:
        entry = self._read().get(gateway_key(gateway))
        if not isinstance(entry, dict):
            return None
        try:
            return StoredLogin(**entry)
        except TypeError:
            return None

    def save(self, login: StoredLogin) -> None:
        logins = self._read()
        logins[gateway_key(login.gateway)] = asdict(login)
        self._write(logins)

    def _read(self) -> dict:
        try:
            document = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        logins = document.get("logins") if isinstance(document, dict) else None
        return logins if isinstance(logins, dict) else {}

    def _write(self, logins: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created 0600 before any secret is written, then renamed over the old file.
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"logins": logins}, handle, indent=2)
        os.replace(staging, self.path)


class RefreshingToken:
    """An access token renewed before it lapses; safe to share between threads."""

    def __init__(self, fetch: Callable[[], TokenGrant], *, clock=time.time) -> None:
        self._fetch = fetch
        self._clock = clock
        self._grant: TokenGrant | None = None
        self._lock = threading.Lock()
        self.fetch_count = 0

    def token(self) -> str:
        with self._lock:
            if self._grant is None or self._due(self._grant):
                self._grant = self._fetch()
                self.fetch_count += 1
            return self._grant.access_token

    def _due(self, grant: TokenGrant) -> bool:
        # Renewed in the last minute, or the last quarter of a short life.
        margin = min(_REFRESH_MARGIN_SECONDS, (grant.expires_at - grant.issued_at) / 4)
        return self._clock() >= grant.expires_at - margin


def refresh_grant(login: StoredLogin) -> TokenGrant:
    """A new access token from the stored refresh token."""
    hint = f"run `cedarflow login --url {login.gateway}` again"
    client = OAuthClient(login.client_id)
    return _grant(lambda: client.refresh(login.token_endpoint, login.refresh_token), hint)


def client_credentials_grant(token_endpoint: str, client_id: str, client_secret: str) -> TokenGrant:
    """A machine token (client-credentials grant; the secret goes in HTTP Basic)."""
    hint = f"check {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV}"
    client = OAuthClient(client_id, client_secret)
    return _grant(lambda: client.client_credentials(token_endpoint), hint)


def grant_from_token(access_token: str) -> TokenGrant:
    """Read `exp`/`iat` of a token (not verified: the gateway does that)."""
    try:
        claims = jwt.decode(access_token, options={"verify_signature": False})
        expires_at = float(claims["exp"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        raise ClientAuthError("the identity provider returned an unreadable token") from None
    issued_at = float(claims.get("iat", time.time()))
    return TokenGrant(access_token, expires_at, issued_at)


def _grant(request: Callable[[], TokenResponse], hint: str) -> TokenGrant:
    try:
        tokens = request()
    except IdentityProviderError as exc:
        if exc.error is None:  # not reached, or an answer that is no token response
            raise ClientAuthError(str(exc)) from None
        raise ClientAuthError(f"the identity provider refused ({exc.error}): {hint}") from None
    if tokens.access_token is None:
        raise ClientAuthError(f"the identity provider issued no access token: {hint}")
    return grant_from_token(tokens.access_token)
