"""Registry-store fixtures: our store on moto with a settable clock."""

from __future__ import annotations

import uuid

import pytest
from store_support import Clock

import store.registry.core
from store.registry import DynamoRegistryStore


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(store.registry.core, "get_current_time_millis", fake)
    return fake


@pytest.fixture
def uri(aws_env: None) -> str:
    return f"dynamodb://us-east-1/registry-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def reg(uri: str, clock: Clock) -> DynamoRegistryStore:
    return DynamoRegistryStore(uri)


@pytest.fixture
def live_reg(dynalite_endpoint: str) -> DynamoRegistryStore:
    """Our store on the session's dynalite (a real server process), on a table of its own."""
    host_port = dynalite_endpoint.removeprefix("http://")
    return DynamoRegistryStore(f"dynamodb://{host_port}/registry-{uuid.uuid4().hex[:10]}")
