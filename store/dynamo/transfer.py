"""`cedarflow table export` and `import`: every item of the table to files and back, for a
copy kept away from the table (another account, another region) and for rebuilding a table.

The directory an export writes:

    manifest.json                      written last: an export without it is incomplete
    data/segment-0000-of-0004.json.gz  one file per parallel scan segment

Each data file is gzip'd JSON lines in the format of DynamoDB's own export to S3: one
`{"Item": {...}}` per line, attribute values typed (`{"S": "..."}`, `{"N": "1.5"}`, `{"B":
base64}`, `{"M": {...}}`, ...). The manifest names the format and its version, the table and
its schema, the number of items in all and, per file, its item count and the SHA-256 of its
bytes. Import checks every file against the manifest before it writes anything.

The scan is not a snapshot: stop writes (the service) while exporting for a consistent copy, or
export from a table restored to a point in time. Import writes into an empty table (a missing
one is created with the schema) with BatchWriteItem, unprocessed items retried; a rerun with
`resume` writes every item again with the same values, so it finishes an import that stopped.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from store.dynamo.check import check_table
from store.dynamo.client import sleep_backoff
from store.dynamo.provision import create_table
from store.dynamo.schema import SCHEMA, TableSchema
from store.dynamo.table import BATCH_WRITE_SIZE, DynamoTable

FORMAT = "cedarflow-table-export"
VERSION = 1
MANIFEST = "manifest.json"
DATA = "data"
DEFAULT_SEGMENTS = 4
DEFAULT_WRITERS = 4
_PROGRESS_EVERY_S = 5.0

Say = Callable[[str], None]


class TransferError(Exception):
    """The export or import cannot go on; the message says why and what to do, in one line."""


@dataclass(frozen=True)
class SegmentFile:
    file: str  # relative to the export directory
    items: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    table: str
    items: int
    segments: tuple[SegmentFile, ...]


# ---- export ---------------------------------------------------------------------------------


def export_table(
    table: DynamoTable,
    directory: Path,
    *,
    segments: int = DEFAULT_SEGMENTS,
    schema: TableSchema = SCHEMA,
    say: Say | None = None,
) -> Manifest:
    """Scan the table in `segments` parallel segments into `directory` (new or empty)."""
    if segments < 1:
        raise TransferError(f"segments must be at least 1, not {segments}")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise TransferError(f"{directory} is not an empty directory: export into a new one")
    if check_table(table, schema).missing:
        raise TransferError(f"DynamoDB table {table.name} does not exist")
    (directory / DATA).mkdir(parents=True, exist_ok=True)
    progress = _Progress("exported", None, say)
    with ThreadPoolExecutor(segments, "table-export") as pool:
        files = list(
            pool.map(
                lambda n: _export_segment(table, directory, n, segments, progress), range(segments)
            )
        )
    manifest = Manifest(table.name, sum(f.items for f in files), tuple(files))
    _write_manifest(directory, manifest, schema)
    progress.done()
    return manifest


def _export_segment(
    table: DynamoTable, directory: Path, segment: int, total: int, progress: _Progress
) -> SegmentFile:
    name = f"{DATA}/segment-{segment:04d}-of-{total:04d}.json.gz"
    count = 0
    with gzip.open(directory / name, "wt", encoding="utf-8") as out:
        for page in _scan_pages(table, Segment=segment, TotalSegments=total):
            for item in page:
                out.write(json.dumps({"Item": item}, separators=(",", ":")) + "\n")
            count += len(page)
            progress.add(len(page))
    return SegmentFile(name, count, _sha256(directory / name))


def _scan_pages(table: DynamoTable, **request: Any) -> Iterator[list[dict]]:
    """Pages of raw (typed) items, read consistently."""
    start = None
    while True:
        page = table._call(
            "Scan",
            TableName=table.name,
            ConsistentRead=True,
            **request,
            **({"ExclusiveStartKey": start} if start else {}),
        )
        yield page.get("Items", [])
        start = page.get("LastEvaluatedKey")
        if not start:
            return


def _write_manifest(directory: Path, manifest: Manifest, schema: TableSchema) -> None:
    document = {
        "format": FORMAT,
        "version": VERSION,
        "table": manifest.table,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "schema": {
            "key_schema": schema.key_schema(),
            "attribute_definitions": schema.attribute_definitions(),
            "global_secondary_indexes": schema.index_definitions(),
            "ttl_attribute": schema.ttl_attribute,
        },
        "items": manifest.items,
        "segments": [
            {"file": f.file, "items": f.items, "sha256": f.sha256} for f in manifest.segments
        ],
    }
    partial = directory / f"{MANIFEST}.partial"
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(directory / MANIFEST)


# ---- import ---------------------------------------------------------------------------------


def read_manifest(directory: Path) -> Manifest:
    """The manifest of a complete export, each data file checked against it."""
    try:
        document = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise TransferError(
            f"{directory} has no {MANIFEST}: not an export, or one that did not finish"
        ) from None
    except (OSError, ValueError) as exc:
        raise TransferError(f"{directory / MANIFEST} cannot be read: {exc}") from None
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise TransferError(f"{directory / MANIFEST} is not a {FORMAT} version {VERSION}")
    files = tuple(SegmentFile(s["file"], s["items"], s["sha256"]) for s in document["segments"])
    for segment in files:
        path = directory / segment.file
        if not path.is_file():
            raise TransferError(f"{path} is missing")
        if _sha256(path) != segment.sha256:
            raise TransferError(f"{path} is damaged: its SHA-256 is not the manifest's")
    return Manifest(document["table"], document["items"], files)


def import_table(
    table: DynamoTable,
    directory: Path,
    *,
    resume: bool = False,
    writers: int = DEFAULT_WRITERS,
    schema: TableSchema = SCHEMA,
    say: Say | None = None,
) -> int:
    """Write every item of the export in `directory` into the table; returns the number of
    items the table holds afterwards (the manifest's count when nothing else is in it)."""
    manifest = read_manifest(directory)
    report = check_table(table, schema)
    if report.missing:
        (say or _quiet)(f"creating table {table.name}")
        report = create_table(table, schema)
    if not report.matches:
        raise TransferError(report.summary)
    if not resume and next(iter(_scan_pages(table, Limit=1)), []):
        raise TransferError(
            f"DynamoDB table {table.name} is not empty: import writes into an empty table "
            "(give --resume to finish an import of this export that stopped)"
        )
    progress = _Progress("imported", manifest.items, say)
    with ThreadPoolExecutor(max(1, writers), "table-import") as pool:
        written = pool.map(
            lambda s: _import_segment(table, directory / s.file, progress), manifest.segments
        )
        for segment, count in zip(manifest.segments, written, strict=True):
            if count != segment.items:
                raise TransferError(
                    f"{segment.file} holds {count} items, the manifest says {segment.items}"
                )
    progress.done()
    return count_items(table)


def _import_segment(table: DynamoTable, path: Path, progress: _Progress) -> int:
    count = 0
    batch: list[dict] = []
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            batch.append({"PutRequest": {"Item": _sendable(json.loads(line)["Item"])}})
            if len(batch) == BATCH_WRITE_SIZE:
                _write_batch(table, batch)
                count += len(batch)
                progress.add(len(batch))
                batch = []
    if batch:
        _write_batch(table, batch)
        count += len(batch)
        progress.add(len(batch))
    return count


def _write_batch(table: DynamoTable, requests: list[dict]) -> None:
    pending = {table.name: requests}
    attempt = 0
    while pending:
        response = table._call("BatchWriteItem", RequestItems=pending)
        left = response.get("UnprocessedItems") or {}
        # Throttling leaves some items unprocessed: retry them, patiently while others go in.
        attempt = attempt + 1 if _size(left) >= _size(pending) else 0
        pending = left
        if pending:
            sleep_backoff(attempt, "BatchWriteItem")


def count_items(table: DynamoTable) -> int:
    """The number of items in the table, counted with a scan (DescribeTable's lags hours)."""
    total, start = 0, None
    while True:
        page = table._call(
            "Scan",
            TableName=table.name,
            Select="COUNT",
            **({"ExclusiveStartKey": start} if start else {}),
        )
        total += page.get("Count", 0)
        start = page.get("LastEvaluatedKey")
        if not start:
            return total


# ---- values and files -----------------------------------------------------------------------


def _sendable(value: dict) -> dict:
    """An item as read from a file, with binary values as bytes (botocore base64-encodes)."""
    return {name: _attribute(attribute) for name, attribute in value.items()}


def _attribute(attribute: dict) -> dict:
    ((kind, value),) = attribute.items()
    if kind == "B":
        return {"B": base64.b64decode(value)}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) for v in value]}
    if kind == "M":
        return {"M": _sendable(value)}
    if kind == "L":
        return {"L": [_attribute(v) for v in value]}
    return attribute


def _size(request_items: dict) -> int:
    return sum(len(requests) for requests in request_items.values())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Progress:
    """Counts items across threads; says the count every few seconds and at the end."""

    def __init__(self, verb: str, expected: int | None, say: Say | None) -> None:
        self._verb, self._expected, self._say = verb, expected, say or _quiet
        self._count = 0
        self._lock = threading.Lock()
        self._next = time.monotonic() + _PROGRESS_EVERY_S

    def add(self, items: int) -> None:
        with self._lock:
            self._count += items
            if time.monotonic() >= self._next:
                self._next = time.monotonic() + _PROGRESS_EVERY_S
                self._say(self._line())

    def done(self) -> None:
        self._say(self._line())

    def _line(self) -> str:
        of = f" of {self._expected}" if self._expected is not None else ""
        return f"{self._verb} {self._count}{of} items"


def _quiet(_: str) -> None:
    pass
