"""Browser sessions kept in the browser: an encrypted, authenticated cookie and nothing on a server.

The cookie carries the principal of a verified ID token, that token's expiry, and the refresh
token that renews it. It is sealed with Fernet (AES-128-CBC then HMAC-SHA256 over the whole):
encryption because a refresh token is a credential anyone could redeem at the identity provider,
the HMAC so that no field can be forged or changed. Every gateway replica holding the same
secret reads every session, so the gateway stays stateless.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import asdict, dataclass, replace

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.authn.principal import Authenticated, Principal

SESSION_COOKIE = "cedarflow_session"
LOGIN_COOKIE = "cedarflow_login"
# The cookie MLflow's UI clears when its Logout is chosen (not a credential: the user's name).
UI_USER_COOKIE = "mlflow_user"
# Browsers drop cookies over 4096 bytes; a session that would not fit goes without a refresh token.
MAX_COOKIE_BYTES = 4000
_FORMAT = 1


@dataclass(frozen=True)
class Session:
    """A signed-in browser: who it is and how long until the tokens behind it need renewing."""

    caller: Authenticated
    expires_at: float  # the ID token's exp
    issued_at: float  # the ID token's iat
    signed_in_at: float
    refresh_token: str | None = None
    ui_marker: bool = False  # signed in with the UI's user cookie: its removal signs out

    def needs_refresh(self, margin: float, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return now >= self.expires_at - margin

    def renewed(
        self, caller: Authenticated, expires_at: float, issued_at: float, refresh_token: str | None
    ) -> Session:
        """After a refresh: the sign-in time and (unless replaced) the refresh token stay."""
        return replace(
            self,
            caller=caller,
            expires_at=expires_at,
            issued_at=issued_at,
            refresh_token=refresh_token or self.refresh_token,
        )

    def without_refresh_token(self) -> Session:
        return replace(self, refresh_token=None)


@dataclass(frozen=True)
class LoginAttempt:
    """What the gateway must remember between sending a browser to the IdP and its return."""

    state: str
    nonce: str
    code_verifier: str
    return_to: str


class InvalidCookie(Exception):
    """The cookie was not made by this gateway, was changed, or is too old."""


class CookieSealer:
    """Seals and opens the gateway's cookies with a key derived from one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        self._fernet = Fernet(_derive_key(secret, b"cedarflow browser session v1"))

    def seal_session(self, session: Session) -> str:
        payload = {
            "v": _FORMAT,
            "principal": asdict(session.caller.principal),
            "issuer": session.caller.issuer,
            "token_use": session.caller.token_use,
            "client_id": session.caller.client_id,
            "token_id": session.caller.token_id,
            "identity_provider": session.caller.identity_provider,
            "exp": session.expires_at,
            "iat": session.issued_at,
            "signed_in_at": session.signed_in_at,
            "refresh_token": session.refresh_token,
            "ui_marker": session.ui_marker,
        }
        return self._seal(payload)

    def open_session(self, value: str, max_age: float) -> Session:
        payload = self._open(value, ttl=None)
        try:
            if payload["v"] != _FORMAT:
                raise InvalidCookie("old session format")
            principal = dict(payload["principal"])
            principal["groups"] = tuple(principal.get("groups") or ())
            session = Session(
                caller=Authenticated(
                    principal=Principal(**principal),
                    issuer=payload["issuer"],
                    token_use=payload["token_use"],
                    client_id=payload["client_id"],
                    token_id=payload.get("token_id"),
                    identity_provider=payload.get("identity_provider"),
                ),
                expires_at=float(payload["exp"]),
                issued_at=float(payload["iat"]),
                signed_in_at=float(payload["signed_in_at"]),
                refresh_token=payload.get("refresh_token"),
                ui_marker=payload.get("ui_marker") is True,
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidCookie("malformed session") from None
        if time.time() - session.signed_in_at > max_age:
            raise InvalidCookie("session too old")
        return session

    def seal_login(self, attempt: LoginAttempt) -> str:
        return self._seal(asdict(attempt))

    def open_login(self, value: str, max_age: int) -> LoginAttempt:
        payload = self._open(value, ttl=max_age)
        try:
            return LoginAttempt(**payload)
        except TypeError:
            raise InvalidCookie("malformed login state") from None

    def _seal(self, payload: dict) -> str:
        return self._fernet.encrypt(json.dumps(payload, separators=(",", ":")).encode()).decode()

    def _open(self, value: str, ttl: int | None) -> dict:
        try:
            payload = json.loads(self._fernet.decrypt(value.encode(), ttl=ttl))
        except (InvalidToken, ValueError):
            raise InvalidCookie("not a cookie of this gateway") from None
        if not isinstance(payload, dict):
            raise InvalidCookie("malformed cookie")
        return payload


def _derive_key(secret: bytes, purpose: bytes) -> bytes:
    # One secret, separate keys per purpose: a session key never verifies an identity header.
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
    return base64.urlsafe_b64encode(key)
