"""Sealed page tokens: the one format of every paged search in the stores.

A token carries a search's cursor (how far the search has read) encrypted and authenticated
with AES-256-GCM, so a client can neither read it (the offset counts items the gateway may
have hidden from the caller) nor alter it, and bound to the search it was made for: its kind
(`runs`, `experiments`, ...) and, where the store gives one, a digest of its query.

    p1.<base64url(nonce[12] || AES-GCM(key, nonce, {"k": kind, "o": offset, "q": digest}))>

A search that resumes after a key instead of an offset (dataset records) seals that key (`c`).

The key is derived (HKDF-SHA256) from `CEDARFLOW_PAGE_TOKEN_SECRET` when it is set, else from
`CEDARFLOW_IDENTITY_SECRET`, the secret every handler-tier instance already shares; so a token
made by one instance is read by any other. Without either (a store used directly, outside
the handler tier) a random key per process is used. A token that does not open is MLflow's
INVALID_PARAMETER_VALUE (400), with the message MLflow's own store gives that token when its
parser refuses it too (a token that opens neither way is answered as MLflow answers it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from store.sealing import sealing_key

SECRET_ENVS = ("CEDARFLOW_PAGE_TOKEN_SECRET", "CEDARFLOW_IDENTITY_SECRET")
_VERSION = "p1"
_NONCE_BYTES = 12
_MAX_TOKEN_CHARS = 1024
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
    payload = _open(token, kind, query)
    offset = payload.get("o")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise _refusal(token, kind)
    return offset


def seal_page_cursor(kind: str, cursor: str, query: object = None) -> str:
    """A sealed token resuming search `kind` (with `query`) after the key `cursor`."""
    payload = {"k": kind, "c": cursor, "q": _digest(query)}
    nonce = secrets.token_bytes(_NONCE_BYTES)
    plain = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    sealed = AESGCM(_key()).encrypt(nonce, plain, _VERSION.encode())
    return f"{_VERSION}.{_b64(nonce + sealed)}"


def page_cursor(token: str | None, kind: str, query: object = None) -> str | None:
    """The key a token made by `seal_page_cursor` for the same search holds (None if none)."""
    if not token:
        return None
    cursor = _open(token, kind, query).get("c")
    if not isinstance(cursor, str):
        raise _refusal(token, kind)
    return cursor


def _open(token: str, kind: str, query: object) -> dict:
    try:
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
            raise ValueError("not a token")
        version, _, body = token.partition(".")
        if version != _VERSION:
            raise ValueError("unknown format")
        raw = _unb64(body)
        nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        payload = json.loads(AESGCM(_key()).decrypt(nonce, sealed, _VERSION.encode()))
        if payload["k"] != kind or payload["q"] != _digest(query):
            raise ValueError("made for another search")
    except (ValueError, KeyError, TypeError, InvalidTag, binascii.Error) as exc:
        raise _refusal(token, kind) from exc
    return payload


def _refusal(token: object, kind: str) -> MlflowException:
    """The error for a token that does not open: ours for a token of our format (altered, or
    made for another search), else MLflow's own message when its parser refuses it too."""
    ours = isinstance(token, str) and token.startswith(f"{_VERSION}.")
    parser = None if ours else _mlflow_parser(kind)
    if parser is not None:
        try:
            parser(token)
        except MlflowException as refused:  # MLflow's message for this input
            return MlflowException(refused.message, error_code=INVALID_PARAMETER_VALUE)
        except Exception:  # noqa: BLE001, S110 - MLflow's parser crashes on it: our message
            pass
    return MlflowException(_INVALID, error_code=INVALID_PARAMETER_VALUE)


def _mlflow_parser(kind: str):
    """The page-token parser MLflow's SQL store applies to search `kind`, if it has one."""
    from mlflow.utils.search_utils import SearchLoggedModelsPaginationToken, SearchUtils

    if kind == "logged_models":
        return SearchLoggedModelsPaginationToken.decode
    if kind in _OFFSET_TOKEN_SEARCHES:
        return SearchUtils.parse_start_offset_from_page_token
    return None  # MLflow's store has no token parser there (or crashes on any bad one)


# Searches whose SQL store reads an offset token with SearchUtils' parser.
_OFFSET_TOKEN_SEARCHES = frozenset(
    {
        "runs",
        "experiments",
        "registered_models",
        "model_versions",
        "traces",
        "metric_history",
        "evaluation_datasets",
        "webhooks",
        "label_schemas",
        "issues",
        "review_queues",
        "review_queue_items",
    }
)


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
    return sealing_key(SECRET_ENVS, b"cedarflow page tokens")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
