"""The OAuth 2.0 client, written once: the authorization URL (PKCE S256) and the token requests.

The gateway's browser sign-in (gateway/authn/oidc.py) and, on a user's machine, `cedarflow login`
and the MLflow plugin (gateway/client/) all call an identity provider through this module, on
top of authlib's OAuth2Session. A client with a secret authenticates with HTTP Basic, a public
client sends its id in the form. The calls block: the gateway makes them in a worker thread.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session


class IdentityProviderError(Exception):
    """The identity provider could not be reached or refused a request."""

    def __init__(self, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error  # the RFC 6749 error code, when the provider sent one


@dataclass(frozen=True)
class TokenResponse:
    """What a token endpoint answered (values of the wrong type are left out)."""

    access_token: str | None
    id_token: str | None = None
    refresh_token: str | None = None
    expires_in: int | None = None


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random string (state, nonce, code verifier)."""
    return secrets.token_urlsafe(nbytes)


class OAuthClient:
    """One app client of one identity provider."""

    def __init__(
        self, client_id: str, client_secret: str | None = None, *, timeout: float = 10.0
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self._timeout = timeout

    def authorization_url(
        self,
        endpoint: str,
        *,
        redirect_uri: str,
        scopes: tuple[str, ...],
        state: str,
        nonce: str,
        code_verifier: str,
    ) -> str:
        """Where to send the user's browser: the code flow with PKCE S256 and a nonce."""
        with self._session() as session:
            url, _ = session.create_authorization_url(
                endpoint,
                state=state,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
                scope=" ".join(scopes),
                nonce=nonce,
            )
        return url

    def redeem_code(
        self, token_endpoint: str, code: str, redirect_uri: str, code_verifier: str
    ) -> TokenResponse:
        return self._token(
            token_endpoint,
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
        )

    def refresh(self, token_endpoint: str, refresh_token: str) -> TokenResponse:
        return self._token(token_endpoint, grant_type="refresh_token", refresh_token=refresh_token)

    def client_credentials(self, token_endpoint: str) -> TokenResponse:
        """A machine token (needs the client secret)."""
        return self._token(token_endpoint, grant_type="client_credentials")

    def _session(self) -> OAuth2Session:
        return OAuth2Session(
            self.client_id,
            self._client_secret,
            code_challenge_method="S256",
            default_timeout=self._timeout,
        )

    def _token(self, url: str, **form: str) -> TokenResponse:
        try:
            with self._session() as session:
                document = session.fetch_token(url, allow_redirects=False, **form)
        except OAuthError as exc:
            raise IdentityProviderError(
                f"the token endpoint refused: {exc.error}", error=exc.error
            ) from None
        except (requests.RequestException, ValueError) as exc:
            raise IdentityProviderError(f"the token endpoint {url} failed: {exc}") from None
        expires_in = document.get("expires_in")
        return TokenResponse(
            access_token=_text(document.get("access_token")),
            id_token=_text(document.get("id_token")),
            refresh_token=_text(document.get("refresh_token")),
            expires_in=expires_in if isinstance(expires_in, int) else None,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
