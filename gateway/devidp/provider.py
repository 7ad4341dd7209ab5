"""The dev identity provider: a local token issuer for the stack on one machine.

It keeps its own RSA key, publishes it as a JWKS with OIDC discovery, and mints Cognito-shaped
access and ID tokens; devidp/oauth.py adds the sign-in page and the token endpoint.
The gateway trusts it like any other issuer: it fetches the JWKS over HTTP and verifies these
tokens with exactly the code used for Cognito.

It signs anyone in as anyone, so it runs only on a loopback address and never beside an outside
issuer: `dev_provider_for` refuses any other configuration, whoever builds the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

DEV_CLIENT_ID = "cedarflow-local"
KEY_FILE = "signing-key.pem"
USER_SCOPE = "openid email profile"
MACHINE_SCOPE = "cedarflow/api"
# Users get the same `sub` on every machine and after a key change, as a pool profile would.
_SUBJECT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://cedarflow.dev/devidp/users")


class DevIdentityProvider:
    """Mints RS256 tokens shaped like Cognito access tokens, with a key kept in `key_dir`."""

    def __init__(self, key_dir: Path, issuer: str) -> None:
        self.issuer = issuer.rstrip("/")
        self.jwks_url = f"{self.issuer}/.well-known/jwks.json"
        self._private_key = _load_or_create_key(Path(key_dir) / KEY_FILE)
        self._public_jwk = _public_jwk(self._private_key.public_key())
        self.kid = self._public_jwk["kid"]
        der = self._private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._key_digest = hashlib.sha256(b"cedarflow devidp secrets|" + der).digest()

    def mint(
        self,
        user: str,
        groups: Sequence[str] = (),
        *,
        machine_client_id: str | None = None,
        ttl: int = 3600,
    ) -> str:
        """An access token for `user` (or, with `machine_client_id`, a client-credentials one)."""
        now = int(time.time())
        claims: dict = {
            "iss": self.issuer,
            "token_use": "access",
            "iat": now,
            "exp": now + int(ttl),
            "jti": str(uuid.uuid4()),
        }
        if machine_client_id is not None:
            claims |= {"sub": machine_client_id, "client_id": machine_client_id}
            claims["scope"] = MACHINE_SCOPE
        else:
            claims |= {
                "sub": subject_for(user),
                "username": user,
                "client_id": DEV_CLIENT_ID,
                "scope": USER_SCOPE,
                "auth_time": now,
                "origin_jti": str(uuid.uuid4()),
            }
            if groups:
                claims["cognito:groups"] = list(groups)
        return self.encode(claims)

    def mint_id_token(
        self,
        user: str,
        groups: Sequence[str] = (),
        *,
        client_id: str = DEV_CLIENT_ID,
        nonce: str | None = None,
        email: str | None = None,
        ttl: int = 3600,
    ) -> str:
        """An ID token for `user`, shaped like Cognito's (aud = the app client)."""
        now = int(time.time())
        claims: dict = {
            "iss": self.issuer,
            "sub": subject_for(user),
            "aud": client_id,
            "token_use": "id",
            "cognito:username": user,
            "auth_time": now,
            "iat": now,
            "exp": now + int(ttl),
            "jti": str(uuid.uuid4()),
            "origin_jti": str(uuid.uuid4()),
        }
        if groups:
            claims["cognito:groups"] = list(groups)
        if email:
            claims |= {"email": email, "email_verified": True}
        if nonce is not None:
            claims["nonce"] = nonce
        return self.encode(claims)

    def derived_secret(self, purpose: str) -> bytes:
        """A secret bound to this provider's key (refresh-token sealing, machine client secrets)."""
        return hmac.new(self._key_digest, purpose.encode(), hashlib.sha256).digest()

    def client_secret(self, client_id: str) -> str:
        """The client-credentials secret of machine client `client_id` (stable with the key)."""
        return _b64(self.derived_secret(f"client-secret:{client_id}"))

    def encode(self, claims: dict, *, headers: dict | None = None) -> str:
        """Sign arbitrary claims with this provider's key (RS256, with its kid)."""
        return jwt.encode(
            claims,
            self._private_key,
            algorithm="RS256",
            headers={"kid": self.kid, **(headers or {})},
        )

    def jwks(self) -> dict:
        """The JWKS document: this provider's public key."""
        return {"keys": [dict(self._public_jwk)]}

    def discovery(self) -> dict:
        """The OIDC discovery document."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_url,
            "authorization_endpoint": f"{self.issuer}/oauth2/authorize",
            "token_endpoint": f"{self.issuer}/oauth2/token",
            "end_session_endpoint": f"{self.issuer}/logout",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [
                "none",
                "client_secret_basic",
                "client_secret_post",
            ],
            "claims_supported": ["sub", "iss", "username", "cognito:groups", "email", "nonce"],
        }

    async def jwks_endpoint(self, request: Request) -> JSONResponse:
        return JSONResponse(self.jwks(), headers={"Cache-Control": "max-age=300"})

    async def discovery_endpoint(self, request: Request) -> JSONResponse:
        return JSONResponse(self.discovery())


class DevProviderRefused(ValueError):
    """A configuration that would expose the dev identity provider; the message names the fix."""


def dev_provider_for(config: GatewayConfig) -> DevIdentityProvider | None:
    """The gateway's dev identity provider, None when off; refused beside outside issuers or
    on a gateway whose public address is not loopback."""
    if config.dev_idp_dir is None:
        return None
    if config.issuers:
        raise DevProviderRefused(
            "the dev identity provider signs anyone in as anyone: it cannot run beside an "
            "outside issuer (with --issuer, dev tokens are not trusted)"
        )
    host = urlsplit(config.public_url).hostname or ""
    if not is_loopback_host(host):
        raise DevProviderRefused(
            f"the dev identity provider signs anyone in as anyone: it runs on loopback only, "
            f"not at {config.public_url} (give an --issuer instead)"
        )
    return DevIdentityProvider(config.dev_idp_dir, config.dev_issuer)


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost`: the only addresses the dev provider may serve on."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost, or not an address at all
        return False


def subject_for(user: str) -> str:
    """The stable `sub` of a dev user."""
    return str(uuid.uuid5(_SUBJECT_NAMESPACE, user))


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Written aside then linked into place: a racing process sees no key or a whole key.
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    try:
        os.link(staging, path)
    except FileExistsError:
        return _load_or_create_key(path)
    finally:
        staging.unlink()
    return key


def _public_jwk(public_key: rsa.RSAPublicKey) -> dict:
    numbers = public_key.public_numbers()
    n = _b64uint(numbers.n)
    e = _b64uint(numbers.e)
    # RFC 7638 thumbprint: the kid changes exactly when the key does.
    canonical = json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":"), sort_keys=True)
    kid = _b64(hashlib.sha256(canonical.encode()).digest())
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}


def _b64uint(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
