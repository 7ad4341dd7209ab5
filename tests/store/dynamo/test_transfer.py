"""Export and import of the table on dynalite: every value type back as it was, the file
format, refusals, resuming an import that stopped, unprocessed items retried."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from store.dynamo.provision import create_table
from store.dynamo.table import DynamoTable
from store.dynamo.transfer import (
    FORMAT,
    MANIFEST,
    TransferError,
    count_items,
    export_table,
    import_table,
)
from store.dynamo.uri import parse_dynamo_uri

CEDARFLOW = str(Path(sys.executable).parent / "cedarflow")

# One item with every attribute type DynamoDB has, binary ones included.
EVERY_TYPE = {
    "pk": {"S": "EXP#1"},
    "sk": {"S": "META"},
    "gsi1pk": {"S": "ROOT"},
    "gsi1sk": {"S": "1"},
    "n": {"N": "12.5"},
    "blob": {"B": "AAEC/w=="},
    "blobs": {"BS": ["AA==", "AQ=="]},
    "strings": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2.5"]},
    "flag": {"BOOL": True},
    "nothing": {"NULL": True},
    "nested": {"M": {"l": {"L": [{"S": "x"}, {"B": "/w=="}, {"M": {"n": {"N": "3"}}}]}}},
    "ttl": {"N": "4102444800"},
}


def _table(endpoint: str) -> DynamoTable:
    uri = f"dynamodb://{endpoint.removeprefix('http://')}/xfer{uuid.uuid4().hex[:10]}"
    return DynamoTable(parse_dynamo_uri(uri))


def _uri(table: DynamoTable) -> str:
    return f"dynamodb://{table.location.endpoint_url.removeprefix('http://')}/{table.name}"


def _filled(endpoint: str, runs: int = 300) -> DynamoTable:
    """EVERY_TYPE and `runs` items of 4 KB each (more than one 1 MB scan page)."""
    table = _table(endpoint)
    create_table(table)
    table._call("PutItem", TableName=table.name, Item=_with_bytes(EVERY_TYPE))
    table.batch_write(
        {"pk": "EXP#1", "sk": f"RUN#{i:04d}", "gsi1pk": "EXP#1", "gsi1sk": f"{i}", "v": "x" * 4096}
        for i in range(runs)
    )
    return table


def _with_bytes(item: dict) -> dict:
    """What a client sends: binary values as bytes (the files hold them as base64)."""
    from store.dynamo.transfer import _sendable

    return _sendable(item)


def _items(table: DynamoTable) -> dict[tuple[str, str], dict]:
    from store.dynamo.transfer import _scan_pages

    return {
        (item["pk"]["S"], item["sk"]["S"]): item for page in _scan_pages(table) for item in page
    }


def test_export_then_import_gives_every_item_back_with_every_type(dynalite_endpoint, tmp_path):
    source = _filled(dynalite_endpoint)
    said: list[str] = []
    manifest = export_table(source, tmp_path / "export", segments=3, say=said.append)
    assert manifest.items == 301
    assert said[-1] == "exported 301 items"

    target = _table(dynalite_endpoint)  # missing: import creates it
    assert import_table(target, tmp_path / "export") == 301
    copied = _items(target)
    assert copied == _items(source)
    assert copied[("EXP#1", "META")] == EVERY_TYPE
    assert _index_count(target, "EXP#1") == 300


def _index_count(table: DynamoTable, parent: str) -> int:
    """Items under `parent` in the index (pages of 1 MB)."""
    total, start = 0, None
    while True:
        page = table._call(
            "Query",
            TableName=table.name,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": {"S": parent}},
            Select="COUNT",
            **({"ExclusiveStartKey": start} if start else {}),
        )
        total += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return total


def test_files_are_dynamodb_export_json_lines_with_a_manifest(dynalite_endpoint, tmp_path):
    source = _filled(dynalite_endpoint, runs=10)
    export_table(source, tmp_path / "export", segments=2)
    manifest = json.loads((tmp_path / "export" / MANIFEST).read_text())
    assert (manifest["format"], manifest["version"], manifest["table"]) == (FORMAT, 1, source.name)
    assert manifest["items"] == 11 == sum(s["items"] for s in manifest["segments"])
    lines = []
    for segment in manifest["segments"]:
        with gzip.open(tmp_path / "export" / segment["file"], "rt") as data:
            lines += [json.loads(line) for line in data]
    assert len(lines) == 11
    assert all(list(line) == ["Item"] for line in lines)
    assert EVERY_TYPE in [line["Item"] for line in lines]


def test_import_refuses_a_table_that_is_not_empty(dynalite_endpoint, tmp_path):
    export_table(_filled(dynalite_endpoint, runs=5), tmp_path / "export")
    other = _filled(dynalite_endpoint, runs=1)
    with pytest.raises(TransferError, match="is not empty: import writes into an empty table"):
        import_table(other, tmp_path / "export")


def test_a_damaged_file_is_refused_before_anything_is_written(dynalite_endpoint, tmp_path):
    export_table(_filled(dynalite_endpoint, runs=5), tmp_path / "export", segments=1)
    (data,) = (tmp_path / "export" / "data").iterdir()
    data.write_bytes(gzip.compress(gzip.decompress(data.read_bytes())[:-20]))
    target = _table(dynalite_endpoint)
    create_table(target)
    with pytest.raises(TransferError, match="is damaged"):
        import_table(target, tmp_path / "export")
    assert count_items(target) == 0


def test_an_import_that_stopped_is_finished_by_a_resumed_one(
    dynalite_endpoint, tmp_path, monkeypatch
):
    source = _filled(dynalite_endpoint, runs=200)
    export_table(source, tmp_path / "export", segments=2)
    target = _table(dynalite_endpoint)
    create_table(target)

    from store.dynamo import transfer

    write = transfer._write_batch
    batches = 0

    def stop_after_three(table: DynamoTable, requests: list) -> None:
        nonlocal batches
        batches += 1
        if batches > 3:
            raise ConnectionError("the connection dropped")
        write(table, requests)

    monkeypatch.setattr(transfer, "_write_batch", stop_after_three)
    with pytest.raises(ConnectionError):
        import_table(target, tmp_path / "export", writers=1)
    monkeypatch.setattr(transfer, "_write_batch", write)
    assert 0 < count_items(target) < 201

    with pytest.raises(TransferError, match="give --resume"):
        import_table(target, tmp_path / "export")
    assert import_table(target, tmp_path / "export", resume=True) == 201
    assert _items(target) == _items(source)


def test_unprocessed_items_are_sent_again(dynalite_endpoint, tmp_path):
    export_table(_filled(dynalite_endpoint, runs=60), tmp_path / "export", segments=1)
    target = _table(dynalite_endpoint)
    create_table(target)
    send = target._call
    writes = 0

    def throttle_half(operation: str, **request: Any) -> dict:
        nonlocal writes
        if operation != "BatchWriteItem":
            return send(operation, **request)
        writes += 1
        (requests,) = request["RequestItems"].values()
        if len(requests) == 1:
            return send(operation, **request)
        half = len(requests) // 2  # what throttling does: part of the batch left for later
        send(operation, RequestItems={target.name: requests[:half]})
        return {"UnprocessedItems": {target.name: requests[half:]}}

    target._call = throttle_half
    assert import_table(target, tmp_path / "export") == 61
    assert writes > 61 // 25 + 1


def test_export_refuses_a_directory_that_holds_files(dynalite_endpoint, tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("keep")
    with pytest.raises(TransferError, match="not an empty directory"):
        export_table(_filled(dynalite_endpoint, runs=1), tmp_path / "old")


def test_export_and_import_commands(dynalite_endpoint, tmp_path):
    source = _filled(dynalite_endpoint, runs=30)
    env = {**os.environ}
    exported = subprocess.run(
        [CEDARFLOW, "table", "export", "--table", _uri(source), "--to", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "exported 31 items" in exported.stderr
    target = _table(dynalite_endpoint)

    def load(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CEDARFLOW, "table", "import", "--table", _uri(target), "--from", str(tmp_path / "x"),
             *extra],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip

    imported = load()
    assert imported.returncode == 0, imported.stderr
    assert "imported 31 of 31 items" in imported.stderr
    again = load()
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "is not empty" in again.stderr
    resumed = load("--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _items(target) == _items(source)

    missing = subprocess.run(
        [CEDARFLOW, "table", "import", "--table", _uri(target), "--from", str(tmp_path / "no")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "has no manifest.json" in missing.stderr
