"""Webhook signing secrets, sealed at rest (AES-256-GCM) and opened only to sign a delivery.

The key is derived (HKDF-SHA256) from `CEDARFLOW_WEBHOOK_SECRET_KEY` when it is set, else from
`CEDARFLOW_IDENTITY_SECRET`, which every handler-tier instance shares. Without either (a store
used directly, outside the handler tier) a random key per process is used: a secret sealed by
another process then does not open, and its webhook is not delivered rather than unsigned.
"""

from __future__ import annotations

import base64
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from store.sealing import sealing_key

SECRET_ENVS = ("CEDARFLOW_WEBHOOK_SECRET_KEY", "CEDARFLOW_IDENTITY_SECRET")
_VERSION = b"w1"
_NONCE_BYTES = 12


class SealedSecretUnreadable(Exception):
    """A stored secret that this process's key does not open."""


def seal_secret(secret: str, webhook_id: str) -> str:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(_key()).encrypt(nonce, secret.encode(), _VERSION + webhook_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def open_secret(value: str, webhook_id: str) -> str:
    try:
        raw = base64.b64decode(value)
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        plain = AESGCM(_key()).decrypt(nonce, sealed, _VERSION + webhook_id.encode())
    except (ValueError, InvalidTag) as exc:
        raise SealedSecretUnreadable(f"the secret of webhook {webhook_id} does not open") from exc
    return plain.decode()


def _key() -> bytes:
    return sealing_key(SECRET_ENVS, b"cedarflow webhook secrets")
