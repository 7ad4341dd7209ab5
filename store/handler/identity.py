"""The caller's identity as the gateway hands it to the handler tier.

The gateway authenticates the caller and adds one header, `X-Cedarflow-Identity`, signed with a
secret both tiers share (HMAC-SHA256). The header is short-lived and bound to the method and path
of the call it was made for, so a captured header cannot be used for another call. The handler
tier verifies it and binds the principal for the request; the stores read it with
`current_principal()`.

Header value: ``v1.<base64url(payload json)>.<base64url(hmac)>``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

IDENTITY_HEADER = "X-Cedarflow-Identity"
SECRET_ENV_VAR = "CEDARFLOW_IDENTITY_SECRET"  # noqa: S105 (a variable name)

_VERSION = "v1"
# Tolerated clock difference between gateway and handler tier, in seconds.
_CLOCK_SKEW = 5
# A header is never accepted for longer than this, whatever ttl it claims.
_MAX_TTL = 300
_KINDS = ("user", "service", "anonymous")


@dataclass(frozen=True)
class Principal:
    """The caller: a person ("user"), a machine client ("service"), or "anonymous".

    "anonymous" is only ever signed by the gateway for the UI's public static files.
    """

    subject: str
    username: str
    email: str | None = None
    groups: tuple[str, ...] = ()
    kind: str = "user"


class InvalidIdentity(Exception):
    """The identity header is missing, malformed, forged, expired or made for another call."""


def sign_identity(
    principal: Principal,
    method: str,
    path: str,
    secret: bytes,
    ttl: int = 60,
    *,
    query: str = "",
) -> str:
    """Return the header value asserting `principal` for one call (`method` `path`[?`query`])."""
    _require_secret(secret)
    now = int(time.time())
    payload = {
        "sub": principal.subject,
        "usr": principal.username,
        "eml": principal.email,
        "grp": list(principal.groups),
        "knd": principal.kind,
        "mth": method.upper(),
        "pth": path,
        "qh": _query_digest(query),
        "iat": now,
        "exp": now + min(int(ttl), _MAX_TTL),
        "nce": secrets.token_urlsafe(12),
    }
    body = _b64encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{_VERSION}.{body}"
    return f"{signed}.{_b64encode(_mac(secret, signed))}"


@dataclass(frozen=True)
class IdentityClaims:
    """A verified header: the principal plus what replay protection needs."""

    principal: Principal
    nonce: str
    expires_at: int


def verify_identity_claims(
    value: str, method: str, path: str, secret: bytes, *, query: str = ""
) -> IdentityClaims:
    """Verify the header and return the principal with its nonce and expiry."""
    _require_secret(secret)
    if not value:
        raise InvalidIdentity("missing identity header")
    parts = value.split(".")
    if len(parts) != 3 or parts[0] != _VERSION:
        raise InvalidIdentity("malformed identity header")
    signed = f"{parts[0]}.{parts[1]}"
    try:
        given_mac = _b64decode(parts[2])
    except ValueError:
        raise InvalidIdentity("malformed identity header") from None
    if not hmac.compare_digest(given_mac, _mac(secret, signed)):
        raise InvalidIdentity("bad identity signature")
    try:
        payload = json.loads(_b64decode(parts[1]))
        principal = Principal(
            subject=_text(payload["sub"]),
            username=_text(payload["usr"]),
            email=None if payload["eml"] is None else _text(payload["eml"]),
            groups=tuple(_text(g) for g in payload["grp"]),
            kind=_text(payload["knd"]),
        )
        issued, expires = int(payload["iat"]), int(payload["exp"])
        bound_method, bound_path, bound_query = payload["mth"], payload["pth"], payload["qh"]
        nonce = _text(payload["nce"])
    except (ValueError, KeyError, TypeError):
        raise InvalidIdentity("malformed identity header") from None
    if principal.kind not in _KINDS or not principal.subject:
        raise InvalidIdentity("malformed identity header")
    now = int(time.time())
    if expires < now - _CLOCK_SKEW or issued > now + _CLOCK_SKEW or expires - issued > _MAX_TTL:
        raise InvalidIdentity("identity header expired")
    if bound_method != method.upper() or bound_path != path or bound_query != _query_digest(query):
        raise InvalidIdentity("identity header was made for another call")
    return IdentityClaims(principal=principal, nonce=nonce, expires_at=expires)


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "cedarflow_principal", default=None
)


def current_principal() -> Principal | None:
    """The verified caller of the request being served, or None outside the handler tier."""
    return _current.get()


@contextlib.contextmanager
def bind_principal(principal: Principal | None) -> Iterator[Principal | None]:
    """Make `principal` the current caller for the duration of the block."""
    token = _current.set(principal)
    try:
        yield principal
    finally:
        _current.reset(token)


def identity_secret_from_env(environ: dict[str, str] | None = None) -> bytes | None:
    """The shared secret from CEDARFLOW_IDENTITY_SECRET (hex or raw text), or None if unset."""
    raw = (os.environ if environ is None else environ).get(SECRET_ENV_VAR, "")
    return parse_secret(raw) if raw else None


def parse_secret(raw: str) -> bytes:
    """Hex text is decoded to bytes; anything else is used as UTF-8 text."""
    text = raw.strip()
    if len(text) >= 32 and len(text) % 2 == 0:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    return text.encode()


def _require_secret(secret: bytes) -> None:
    # An empty key would make every header trivially forgeable.
    if not secret:
        raise InvalidIdentity("no identity secret configured")


def _mac(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode(), hashlib.sha256).digest()


def _query_digest(query: str) -> str:
    # Only a digest travels: query strings can be long and may carry data.
    if not query:
        return ""
    return _b64encode(hashlib.sha256(query.encode()).digest()[:16])


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("bad base64") from exc
