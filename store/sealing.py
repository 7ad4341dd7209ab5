"""The AES-256-GCM keys of what the stores seal (page tokens, webhook secrets): one key per use,
derived (HKDF-SHA256) from the first secret set among the environment variables named, else from
a random secret of this process (what it seals then opens in this process only)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from store.handler.identity import parse_secret

_PROCESS_SECRET = secrets.token_bytes(32)


def sealing_key(env_names: Sequence[str], purpose: bytes) -> bytes:
    """The key for `purpose`: a key of its own, never the identity secret's HMAC key itself."""
    for name in env_names:
        value = os.environ.get(name, "")
        if value:
            return _derive(parse_secret(value), purpose)
    return _derive(_PROCESS_SECRET, purpose)


@lru_cache(maxsize=16)
def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)
