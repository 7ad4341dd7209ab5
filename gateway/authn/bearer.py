"""Step 1 of a request: who is calling? Verifies a Cognito-style bearer JWT.

The checks, in order: a Bearer token with an RS256 header and a `kid`; an issuer we trust
(exact `iss`); the key by `kid` from that issuer's JWKS; the signature; `exp`, `iat`, `iss`,
`sub`, `token_use` present and `exp`/`iat`/`nbf` within a small leeway; `token_use` accepted;
`aud` (ID token) or `client_id` (access token) among the issuer's app clients; then the claims
become a user or service principal. Every failure is an AuthenticationError (401); its message
helps the user without telling an attacker which check failed.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import jwt
from starlette.requests import Request

from gateway.authn.jwks import JwksCache, UnknownSigningKey
from gateway.authn.principal import (
    Authenticated,
    MissingPrincipalClaim,
    UnknownServiceClient,
    check_issuer_tags,
    principal_from_claims,
    token_client_id,
)
from gateway.config import USE_ID, GatewayConfig, IssuerConfig
from gateway.errors import AuthenticationError

_logger = logging.getLogger(__name__)

ALGORITHM = "RS256"
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub", "token_use"]

NO_CREDENTIALS_MESSAGE = (
    "Authentication required: send an 'Authorization: Bearer <token>' header "
    "(MLflow clients: set MLFLOW_TRACKING_TOKEN)."
)
MALFORMED_MESSAGE = "The bearer token is malformed."
EXPIRED_MESSAGE = "The token has expired: get a new one."
INVALID_MESSAGE = "The token is not accepted by this server."


class Authenticator:
    """Verifies bearer tokens against the configured issuers."""

    def __init__(
        self,
        config: GatewayConfig,
        issuers: tuple[IssuerConfig, ...],
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_issuer_tags(issuers)  # no two issuers' users may share principal ids
        self._config = config
        self._issuers = {issuer.issuer: issuer for issuer in issuers}
        self._jwks = {
            issuer.issuer: JwksCache(issuer.jwks_url, config.jwks, client, clock=clock)
            for issuer in issuers
        }
        self._verified = _VerifiedTokens()

    @property
    def jwks_caches(self) -> dict[str, JwksCache]:
        return dict(self._jwks)

    async def authenticate(self, request: Request) -> Authenticated:
        """The caller of `request`, or AuthenticationError."""
        return await self.verify_token(bearer_token(request))

    async def verify_token(self, token: str) -> Authenticated:
        """Verify one JWT and map it to a principal."""
        remembered = self._verified.get(token)
        if remembered is not None and self._still_valid(remembered):
            return remembered.caller
        caller, claims, kid = await self._verify_uncached(token)
        self._verified.put(token, _Verified(caller, float(claims["exp"]), kid))
        return caller

    async def verify_id_token(
        self, token: str, *, client_id: str, nonce: str | None
    ) -> tuple[Authenticated, dict]:
        """Verify an ID token from a sign-in: every bearer check, then `aud` and `nonce`.

        `nonce` None skips the nonce check (ID tokens from a refresh carry none).
        """
        caller, claims, _ = await self._verify_uncached(token)
        if claims["token_use"] != USE_ID or token_client_id(claims, USE_ID) != client_id:
            raise _invalid(INVALID_MESSAGE, "not an ID token for the login client")
        if nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise _invalid(INVALID_MESSAGE, "nonce mismatch")
        return caller, claims

    def _still_valid(self, verified: _Verified) -> bool:
        # Same outcome as a full check: not expired, and the key is still published.
        unexpired = time.time() < verified.expires_at + self._config.leeway_seconds
        return unexpired and self._jwks[verified.caller.issuer].holds_fresh(verified.kid)

    async def _verify_uncached(self, token: str) -> tuple[Authenticated, dict, str]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _invalid(MALFORMED_MESSAGE, "malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise _invalid(INVALID_MESSAGE, f"algorithm {header.get('alg')!r} refused")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid(INVALID_MESSAGE, "no kid")
        iss = unverified.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise _invalid(INVALID_MESSAGE, "untrusted issuer")
        try:
            key = await self._jwks[issuer.issuer].get_key(kid)
        except UnknownSigningKey as exc:
            raise _invalid(INVALID_MESSAGE, f"signing key: {exc}") from None
        claims = self._decode(token, key, issuer)
        self._check_client(claims, issuer)
        try:
            caller = principal_from_claims(claims, issuer, self._config.service_clients)
        except UnknownServiceClient:
            raise _invalid(INVALID_MESSAGE, "unknown machine client") from None
        except MissingPrincipalClaim as exc:
            raise _invalid(INVALID_MESSAGE, f"no {exc} claim") from None
        return caller, claims, kid

    def _decode(self, token: str, key: jwt.PyJWK, issuer: IssuerConfig) -> dict:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=issuer.issuer,
                leeway=self._config.leeway_seconds,
                options={"require": _REQUIRED_CLAIMS, "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid(EXPIRED_MESSAGE, "expired") from None
        except jwt.ImmatureSignatureError:
            raise _invalid(INVALID_MESSAGE, "not yet valid") from None
        except jwt.PyJWTError as exc:
            raise _invalid(INVALID_MESSAGE, f"rejected: {type(exc).__name__}") from None

    @staticmethod
    def _check_client(claims: dict, issuer: IssuerConfig) -> None:
        token_use = claims["token_use"]
        if token_use not in issuer.token_uses:
            raise _invalid(INVALID_MESSAGE, f"token_use {token_use!r} not accepted")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise _invalid(INVALID_MESSAGE, "empty sub")
        if token_client_id(claims, token_use) not in issuer.client_ids:
            raise _invalid(INVALID_MESSAGE, "audience / client_id not configured")


@dataclass(frozen=True)
class _Verified:
    caller: Authenticated
    expires_at: float  # the token's exp
    kid: str


class _VerifiedTokens:
    """Tokens already verified, so a training loop's calls skip the RSA check (bounded LRU)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, _Verified] = OrderedDict()
        self._max_entries = max_entries

    def get(self, token: str) -> _Verified | None:
        entry = self._entries.get(token)
        if entry is not None:
            self._entries.move_to_end(token)
        return entry

    def put(self, token: str, entry: _Verified) -> None:
        self._entries[token] = entry
        self._entries.move_to_end(token)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


def bearer_token(request: Request) -> str:
    """The token of an `Authorization: Bearer` header, or AuthenticationError."""
    header = request.headers.get("authorization")
    if not header:
        raise AuthenticationError(NO_CREDENTIALS_MESSAGE, reason="no token", token_present=False)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError(
            NO_CREDENTIALS_MESSAGE, reason=f"{scheme} credentials", token_present=False
        )
    token = token.strip()
    if not token:
        raise _invalid(MALFORMED_MESSAGE, "empty bearer token")
    return token


def _invalid(message: str, reason: str) -> AuthenticationError:
    return AuthenticationError(message, reason=reason)
