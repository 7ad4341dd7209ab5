"""Sealed page tokens: the one format of every paged search in the stores.

A token carries a search's cursor (how far the search has read) encrypted and authenticated
with AES-256-GCM, so a client can neither read it (the offset counts items the gateway may
have hidden from the caller) nor alter it, and bound to the search it was made for: its kind
(`runs`, `experiments`, ...) and, where the store gives one, a digest of its query.

    p1.<base64url(nonce[12] || AES-GCM(key, nonce, {"k": kind, "o": offset, "q": digest}))>

The key is derived (HKDF-SHA256) from `CEDARFLOW_PAGE_TOKEN_SECRET` when it is set, else from
`CEDARFLOW_IDENTITY_SECRET`, the secret every handler-tier instance already shares; so a token
made by one instance is read by any other. Without either (a store used directly, outside
the handler tier) a random key per process is used. A token that does not open is MLflow's
INVALID_PARAMETER_VALUE (400).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from store.handler.identity import parse_secret

SECRET_ENVS = ("CEDARFLOW_PAGE_TOKEN_SECRET", "CEDARFLOW_IDENTITY_SECRET")
_VERSION = "p1"
_NONCE_BYTES = 12
_MAX_TOKEN_CHARS = 1024
_PROCESS_SECRET = secrets.token_bytes(32)  # no configured secret: tokens work on one process
_INVALID = (
    "Invalid page token: it could not be decoded, was altered, or was made for another search."
)


def seal_page_token(kind: str, offset: int, query: object = None) -> str:
    """A sealed token resuming search `kind` (with `query`) at `offset`."""
    payload = {"k": kind, "o": int(offset), "q": _digest(query)}
    nonce = secrets.token_bytes(_NONCE_BYTES)
    plain = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    sealed = AESGCM(_key()).encrypt(nonce, plain, _VERSION.encode())
    return f"{_VERSION}.{_b64(nonce + sealed)}"


def page_offset(token: str | None, kind: str, query: object = None) -> int:
    """The offset a token made by `seal_page_token` for the same search holds (0 if none)."""
    if not token:
        return 0
    try:
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
            raise ValueError("not a token")
        version, _, body = token.partition(".")
        if version != _VERSION:
            raise ValueError("unknown format")
        raw = _unb64(body)
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        payload = json.loads(AESGCM(_key()).decrypt(nonce, sealed, _VERSION.encode()))
        offset = payload["o"]
        if payload["k"] != kind or payload["q"] != _digest(query):
            raise ValueError("made for another search")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError("bad offset")
    except (ValueError, KeyError, TypeError, InvalidTag, binascii.Error) as exc:
        raise MlflowException(_INVALID, error_code=INVALID_PARAMETER_VALUE) from exc
    return offset


def next_page_token(
    kind: str, offset: int, max_results: int | None, total: int, query: object = None
) -> str | None:
    """The token after the page [offset, offset + max_results) of `total` items, if any."""
    if max_results is None or offset + max_results >= total:
        return None
    return seal_page_token(kind, offset + max_results, query)


def _digest(query: object) -> str:
    if query is None:
        return ""
    text = json.dumps(query, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _key() -> bytes:
    for name in SECRET_ENVS:
        value = os.environ.get(name, "")
        if value:
            return _derive(parse_secret(value))
    return _derive(_PROCESS_SECRET)


@lru_cache(maxsize=8)
def _derive(secret: bytes) -> bytes:
    # a key of its own: the identity secret's HMAC key is never used to seal tokens
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"cedarflow page tokens")
    return hkdf.derive(secret)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
