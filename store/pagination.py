"""Signed page tokens: the client carries the cursor, but cannot forge or alter it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

_SECRET_ENVS = ("CEDARFLOW_PAGE_TOKEN_SECRET", "CEDARFLOW_IDENTITY_SECRET")
_PROCESS_SECRET = secrets.token_bytes(32)  # used when no secret is configured (one process only)
_MAX_TOKEN_CHARS = 8192


def encode_page_token(payload: dict) -> str:
    """A URL-safe token for a JSON-serializable payload, signed with HMAC-SHA256."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(body)}.{_b64(_sign(body))}"


def decode_page_token(token: str) -> dict:
    """The payload of a token made by `encode_page_token`; anything else is refused."""
    try:
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
            raise ValueError("not a token")
        body_part, signature_part = token.split(".")
        body = _unb64(body_part)
        if not hmac.compare_digest(_unb64(signature_part), _sign(body)):
            raise ValueError("bad signature")
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise MlflowException(
            "Invalid page token: it is malformed, was altered, or belongs to another server.",
            error_code=INVALID_PARAMETER_VALUE,
        ) from exc
    return payload


def _secret() -> bytes:
    for name in _SECRET_ENVS:
        value = os.environ.get(name)
        if value:
            return value.encode()
    return _PROCESS_SECRET


def _sign(body: bytes) -> bytes:
    return hmac.new(_secret(), b"page-token\x00" + body, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
