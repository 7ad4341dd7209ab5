"""An issuer's signing keys, fetched from its JWKS URL over HTTP and cached.

- A key is looked up by `kid`; an unknown `kid` triggers one refresh, at most once per cool-down,
  so a rotated-in key is accepted at once while a flood of junk kids costs no extra fetches.
- The whole set is refetched once it is older than the cache lifetime: a key the issuer removed
  stops being trusted then.
- When the endpoint is down, the last good copy keeps serving (up to `max_stale_seconds`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx
import jwt

from gateway.config import JwksSettings

_logger = logging.getLogger(__name__)


class UnknownSigningKey(Exception):
    """No key with this `kid` is published by the issuer (or none could be fetched)."""


class JwksCache:
    """The signing keys of one issuer."""

    def __init__(
        self,
        jwks_url: str,
        settings: JwksSettings,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jwks_url = jwks_url
        self.settings = settings
        self._client = client
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, successful or not
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def get_key(self, kid: str) -> jwt.PyJWK:
        """The public key for `kid`, refreshing the set when it is stale or lacks the kid."""
        if self._is_stale() or kid not in self._keys:
            await self._refresh_if_allowed()
        if self._fetched_at is None or self._age() > self._usable_age():
            raise UnknownSigningKey("no signing keys available")
        key = self._keys.get(kid)
        if key is None:
            raise UnknownSigningKey("unknown kid")
        return key

    def holds_fresh(self, kid: str) -> bool:
        """True when `kid` is in a copy younger than the cache lifetime (no fetch is made)."""
        return not self._is_stale() and kid in self._keys

    async def ensure_loaded(self) -> bool:
        """Fetch the set if none is held yet; True when keys are available."""
        if self._fetched_at is None or self._is_stale():
            await self._refresh_if_allowed()
        return self._fetched_at is not None and self._age() <= self._usable_age()

    def _age(self) -> float:
        fetched_at = self._fetched_at if self._fetched_at is not None else float("-inf")
        return self._clock() - fetched_at

    def _is_stale(self) -> bool:
        return self._fetched_at is None or self._age() >= self.settings.cache_seconds

    def _usable_age(self) -> float:
        # Past the cache lifetime a copy is only usable because the endpoint is failing.
        return self.settings.cache_seconds + self.settings.max_stale_seconds

    async def _refresh_if_allowed(self) -> None:
        async with self._lock:
            now = self._clock()
            if (
                self._attempted_at is not None
                and now - self._attempted_at < self.settings.refresh_cooldown_seconds
            ):
                return
            self._attempted_at = now
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                _logger.warning("JWKS fetch from %s failed: %s", self.jwks_url, exc)
                return
            self._keys = keys
            self._fetched_at = now

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        self.fetch_count += 1
        response = await self._client.get(
            self.jwks_url,
            timeout=self.settings.fetch_timeout_seconds,
            follow_redirects=False,
        )
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("JWKS document has no 'keys' list")
        return _rsa_signing_keys(document["keys"])


def _rsa_signing_keys(entries: list) -> dict[str, jwt.PyJWK]:
    """The RS256 signature keys of a JWKS, by kid; anything else is ignored."""
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", "RS256") != "RS256":
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry, algorithm="RS256")
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            _logger.warning("Ignoring an unusable JWKS entry (kid %r)", entry["kid"])
    return keys
