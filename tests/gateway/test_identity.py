"""The signed identity header between the gateway and the handler tier."""

from __future__ import annotations

import base64
import json
import threading

import pytest

from store.handler.identity import (
    InvalidIdentity,
    Principal,
    bind_principal,
    current_principal,
    identity_secret_from_env,
    sign_identity,
    verify_identity_claims,
)

SECRET = b"s" * 32
ALICE = Principal(
    subject="sub-1", username="alice", email="a@example.com", groups=("g1", "g2"), kind="user"
)


def test_round_trip_keeps_every_field():
    header = sign_identity(ALICE, "post", "/api/2.0/mlflow/runs/create", SECRET, query="a=1")
    assert (
        verify_identity_claims(
            header, "POST", "/api/2.0/mlflow/runs/create", SECRET, query="a=1"
        ).principal
        == ALICE
    )


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/api/2.0/mlflow/runs/create", "a=1"),
        ("POST", "/api/2.0/mlflow/runs/delete", "a=1"),
        ("POST", "/api/2.0/mlflow/runs/create", "a=2"),
        ("POST", "/api/2.0/mlflow/runs/create", ""),
    ],
)
def test_a_header_only_fits_its_own_call(method, path, query):
    header = sign_identity(ALICE, "POST", "/api/2.0/mlflow/runs/create", SECRET, query="a=1")
    with pytest.raises(InvalidIdentity):
        verify_identity_claims(header, method, path, SECRET, query=query)


def test_wrong_secret_and_tampering_are_detected():
    header = sign_identity(ALICE, "GET", "/x", SECRET)
    with pytest.raises(InvalidIdentity):
        verify_identity_claims(header, "GET", "/x", b"t" * 32)
    version, payload, mac = header.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["usr"] = "root"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidIdentity):
        verify_identity_claims(f"{version}.{forged}.{mac}", "GET", "/x", SECRET)


def test_expired_headers_are_refused():
    header = sign_identity(ALICE, "GET", "/x", SECRET, ttl=-60)
    with pytest.raises(InvalidIdentity, match="expired"):
        verify_identity_claims(header, "GET", "/x", SECRET)


@pytest.mark.parametrize("value", ["", "v1", "v1.a", "v2.a.b", "v1.a.b.c", "v1.!!.??"])
def test_malformed_headers_are_refused(value):
    with pytest.raises(InvalidIdentity):
        verify_identity_claims(value, "GET", "/x", SECRET)


def test_an_empty_secret_is_never_used():
    with pytest.raises(InvalidIdentity):
        sign_identity(ALICE, "GET", "/x", b"")
    with pytest.raises(InvalidIdentity):
        verify_identity_claims("v1.a.b", "GET", "/x", b"")


def test_secret_from_the_environment_accepts_hex_or_text():
    assert identity_secret_from_env({"CEDARFLOW_IDENTITY_SECRET": "ab" * 16}) == b"\xab" * 16
    assert identity_secret_from_env({"CEDARFLOW_IDENTITY_SECRET": "a passphrase"}) == (
        b"a passphrase"
    )
    assert identity_secret_from_env({}) is None


def test_bind_principal_is_scoped_and_per_thread():
    seen = []
    with bind_principal(ALICE):
        assert current_principal() == ALICE
        thread = threading.Thread(target=lambda: seen.append(current_principal()))
        thread.start()
        thread.join()
    assert current_principal() is None
    assert seen == [None]  # a plain thread does not inherit the binding


def test_the_replay_guard_accepts_each_nonce_once_and_forgets_expired_ones():
    from store.handler.app import ReplayGuard

    guard = ReplayGuard(max_entries=3)
    far = 2**40
    assert guard.first_use("old", 0)
    assert guard.first_use("n1", far)  # "old" expired long ago: forgotten now
    assert guard._seen.keys() == {"n1"}
    assert not guard.first_use("n1", far)
    assert guard.first_use("n2", far)
    assert guard.first_use("n3", far)
    assert guard.first_use("n4", far)  # full: the oldest is dropped, the size stays bounded
    assert guard._seen.keys() == {"n2", "n3", "n4"}
