"""Helpers shared by the registry-store tests."""

from __future__ import annotations

import pytest

from store.registry import DynamoRegistryStore


def calls(reg: DynamoRegistryStore, fn, *args, **kwargs):
    """Run one store call; return its result and the DynamoDB requests it made."""
    reg.table.round_trips.reset()
    result = fn(*args, **kwargs)
    return result, reg.table.round_trips.by_operation()


def all_items(reg: DynamoRegistryStore) -> list[dict]:
    client = reg.table._client  # test-only full read of the table
    return client.scan(TableName=reg.table.name)["Items"]


def error_code(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.error_code


def crash_on(monkeypatch, reg, method: str) -> None:
    """Make the table's next `method` call fail as if the process died before sending it."""
    original = getattr(reg.table, method)
    state = {"done": False}

    def failing(*args, **kwargs):
        if not state["done"]:
            state["done"] = True
            raise RuntimeError("process died")
        return original(*args, **kwargs)

    monkeypatch.setattr(reg.table, method, failing)
