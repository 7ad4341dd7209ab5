"""Records of evaluation datasets: upsert (MLflow's merge rules), delete, pages in order.

A dataset's records live in the partition ``DSR#<dataset_id>`` (store/keys.py):

- a claim ``C#<record_id>`` per record, whose conditional put is what makes a record new;
- a head ``R#<created:015d>#<record_id>``, sorted as MLflow orders records (creation time,
  then id), holding the record's columns; its payload (inputs, outputs, expectations, tags,
  source) is JSON, zlib-compressed above 8 KB and cut into part items ``…#P<nn>`` right after
  the head above 300 KB, so no item nears DynamoDB's 400 KB and any record MLflow takes is kept.

A record's id is derived from its dataset and its inputs (MLflow identifies a record by the hash
of its inputs), so two writers upserting the same inputs meet on one claim, and a retried upsert
is harmless. A page of records is one Query; an upsert of n records never makes one request
per record except the claims of new ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities.dataset_record import DATASET_RECORD_WRAPPED_OUTPUT_KEY, DatasetRecord
from mlflow.entities.dataset_record_source import DatasetRecordSource
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.tracking import LOAD_DATASET_RECORDS_MAX_RESULTS
from mlflow.utils.mlflow_tags import MLFLOW_USER
from mlflow.utils.time import get_current_time_millis

from store.dynamo.errors import ConditionFailed
from store.dynamo.expressions import Update
from store.dynamo.table import DynamoTable
from store.handler.identity import current_principal
from store.keys import (
    RECORD_SK_PREFIX,
    eval_dataset_key,
    record_claim_key,
    record_sk,
    records_pk,
)
from store.search.pagination import page_cursor, seal_page_cursor
from store.tracking.eval_datasets import attributed_tags, dataset_digest

RECORD_ID_PREFIX = "dr-"
COMPRESS_ABOVE_BYTES = 8 * 1024
PART_BYTES = 300 * 1024
_PARALLEL_CLAIMS = 8
_SCHEMA_RETRIES = 5
_PAYLOAD_FIELDS = ("inputs", "outputs", "expectations", "tags", "source")


@dataclass
class _Record:
    """One record as its head item holds it (payload decoded)."""

    record_id: str
    input_hash: str
    created_time: int
    last_update_time: int
    payload: dict[str, Any]
    source_id: str | None = None
    created_by: str | None = None
    last_updated_by: str | None = None
    stored_parts: int = 0  # part items the stored head has now (to delete the ones left over)
    new: bool = field(default=False, compare=False)

    @property
    def sk(self) -> str:
        return record_sk(self.created_time, self.record_id)


class DatasetRecordsMixin:
    """Record calls of MLflow's tracking AbstractStore (needs ``self.table``)."""

    table: DynamoTable

    def upsert_dataset_records(
        self, dataset_id: str, records: list[dict[str, Any]]
    ) -> dict[str, int]:
        dataset = self.table.get(*eval_dataset_key(dataset_id))
        if dataset is None or dataset.get("deleted"):
            raise MlflowException(
                f"Evaluation dataset with id '{dataset_id}' not found", RESOURCE_DOES_NOT_EXIST
            )
        records = [_checked(r) for r in records or []]
        now = get_current_time_millis()
        ids = [record_id(dataset_id, input_hash(r)) for r in records]
        stored = self._stored_records(dataset_id, dict.fromkeys(ids))
        claimed = self._claim_new(
            dataset_id, [i for i in dict.fromkeys(ids) if i not in stored], now
        )
        stored.update(claimed.lost)
        merged: dict[str, _Record] = {}
        inserted = updated = 0
        for record, rid in zip(records, ids, strict=True):
            current = merged.get(rid) or stored.get(rid)
            if current is None:
                merged[rid] = _new_record(rid, record, now)
                inserted += 1
            else:
                merged[rid] = _merged(current, record, now)
                updated += 1
        self._write_records(dataset_id, merged.values())
        self._finish_upsert(dataset_id, dataset, records, now, inserted)
        return {"inserted": inserted, "updated": updated}

    def delete_dataset_records(self, dataset_id: str, dataset_record_ids: list[str]) -> int:
        dataset = self.table.get(*eval_dataset_key(dataset_id))
        if dataset is None or dataset.get("deleted"):
            return 0
        ids = [i for i in dict.fromkeys(dataset_record_ids or []) if isinstance(i, str) and i]
        claims = self.table.batch_get(record_claim_key(dataset_id, i) for i in ids)
        if not claims:
            return 0
        heads = {
            h["sk"]: h
            for h in self.table.batch_get((records_pk(dataset_id), c["record_sk"]) for c in claims)
        }
        deletes = []
        for claim in claims:
            deletes.append((claim["pk"], claim["sk"]))
            head = heads.get(claim["record_sk"])
            deletes.append((records_pk(dataset_id), claim["record_sk"]))
            for n in range(1, int((head or {}).get("parts", 1))):
                deletes.append((records_pk(dataset_id), _part_sk(claim["record_sk"], n)))
        self.table.batch_write(deletes=deletes)
        update = Update().add("num_records", -len(claims)).set("emptied", True).exists("pk")
        with contextlib.suppress(ConditionFailed):  # deleted meanwhile: nothing left to count
            self.table.update(*eval_dataset_key(dataset_id), update)
        return len(claims)

    def _load_dataset_records(
        self,
        dataset_id: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> tuple[list[DatasetRecord], str | None]:
        limit = None if max_results is None else (max_results or LOAD_DATASET_RECORDS_MAX_RESULTS)
        after = page_cursor(page_token, "dataset_records", dataset_id)
        low = f"{after}$" if after else RECORD_SK_PREFIX  # past the last head and its parts
        items = self.table.query(
            records_pk(dataset_id),
            sk_range=(low, f"{RECORD_SK_PREFIX}\uffff"),
            consistent=True,
            page_size=None if limit is None else limit + 1,
        )
        heads: list[dict] = []
        parts: dict[str, list[dict]] = {}
        for item in items:
            if "record_id" not in item:  # a part of the head before it
                parts.setdefault(item["head_sk"], []).append(item)
                continue
            if limit is not None and len(heads) == limit:
                token = seal_page_cursor("dataset_records", heads[-1]["sk"], dataset_id)
                return _records(dataset_id, heads, parts), token
            heads.append(item)
        return _records(dataset_id, heads, parts), None

    # ---- internals ------------------------------------------------------------------------------

    def _stored_records(self, dataset_id: str, ids: Iterable[str]) -> dict[str, _Record]:
        """Existing records among `ids`: their claims, then their heads (and parts)."""
        claims = self.table.batch_get(record_claim_key(dataset_id, i) for i in ids)
        return self._heads_of(dataset_id, [c["record_sk"] for c in claims])

    def _heads_of(self, dataset_id: str, sks: list[str]) -> dict[str, _Record]:
        pk = records_pk(dataset_id)
        heads = self.table.batch_get((pk, sk) for sk in sks)
        wanted = [
            (pk, _part_sk(h["sk"], n)) for h in heads for n in range(1, int(h.get("parts", 1)))
        ]
        parts: dict[str, list[dict]] = {}
        for part in self.table.batch_get(wanted) if wanted else []:
            parts.setdefault(part["head_sk"], []).append(part)
        return {h["record_id"]: _record_of(h, parts.get(h["sk"], [])) for h in heads}

    def _claim_new(self, dataset_id: str, ids: list[str], now: int) -> _Claims:
        """Claim each new record; a claim another writer won makes that record an update."""
        outcome = _Claims()
        if not ids:
            return outcome

        def claim(rid: str) -> tuple[str, bool]:
            pk, sk = record_claim_key(dataset_id, rid)
            item = {"pk": pk, "sk": sk, "record_sk": record_sk(now, rid)}
            try:
                self.table.put(item, condition="attribute_not_exists(pk)")
                return rid, True
            except ConditionFailed:
                return rid, False

        with ThreadPoolExecutor(min(len(ids), _PARALLEL_CLAIMS)) as pool:
            results = list(pool.map(claim, ids))
        lost = [rid for rid, won in results if not won]
        if lost:  # written by someone else a moment ago: merge into theirs
            outcome.lost = self._stored_records(dataset_id, lost)
            for rid in lost:
                if rid not in outcome.lost:  # their head is not written yet: ours goes there
                    claim_item = self.table.get(*record_claim_key(dataset_id, rid)) or {}
                    created = int(claim_item.get("record_sk", record_sk(now, rid))[2:17])
                    outcome.lost[rid] = _Record(rid, "", created, created, {})
        return outcome

    def _write_records(self, dataset_id: str, records: Iterable[_Record]) -> None:
        puts, deletes = [], []
        for record in records:
            items = _record_items(dataset_id, record)
            puts += items
            deletes += [
                (records_pk(dataset_id), _part_sk(record.sk, n))
                for n in range(len(items), record.stored_parts)
            ]
        self.table.batch_write(puts=puts, deletes=deletes)

    def _finish_upsert(
        self, dataset_id: str, dataset: dict, records: list[dict], now: int, inserted: int
    ) -> None:
        """Schema, digest, times and the record count, on condition that the schema read is
        still the stored one (a concurrent upsert's fields are merged in, never lost)."""
        author = _last_author(records)
        for _ in range(_SCHEMA_RETRIES):
            schema = updated_schema(dataset.get("schema"), records)
            update = Update()
            update.set("digest", dataset_digest(dataset["name"], now))
            update.set("last_update_time", now)
            update.set_or_remove("last_updated_by", author)
            if schema:
                update.set("schema", json.dumps(schema))
            if inserted:
                update.add("num_records", inserted)
            update.exists("pk").missing("deleted")
            if dataset.get("schema") is None:
                update.missing("schema")
            else:
                update.equals("schema", dataset["schema"])
            try:
                self.table.update(*eval_dataset_key(dataset_id), update)
                return
            except ConditionFailed:
                dataset = self.table.get(*eval_dataset_key(dataset_id))
                if dataset is None or dataset.get("deleted"):
                    return  # deleted meanwhile: its records go with it
        raise MlflowException(f"Could not update evaluation dataset '{dataset_id}'; retry.")


@dataclass
class _Claims:
    lost: dict[str, _Record] = field(default_factory=dict)


# ---- MLflow's record rules ----------------------------------------------------------------------


def input_hash(record: dict) -> str:
    """MLflow's identity of a record in its dataset: the hash of its inputs."""
    return hashlib.sha256(json.dumps(record.get("inputs", {}), sort_keys=True).encode()).hexdigest()


def record_id(dataset_id: str, inputs_hash: str) -> str:
    digest = hashlib.sha256(f"{dataset_id}\0{inputs_hash}".encode()).hexdigest()
    return f"{RECORD_ID_PREFIX}{digest[:32]}"


def _checked(record: object) -> dict:
    if not isinstance(record, dict):
        raise MlflowException("Each dataset record must be a JSON object.", INVALID_PARAMETER_VALUE)
    inputs = record.get("inputs", {})
    if inputs is not None and not isinstance(inputs, dict):
        raise MlflowException("A record's 'inputs' must be a JSON object.", INVALID_PARAMETER_VALUE)
    for name in ("expectations", "tags"):
        if record.get(name) is not None and not isinstance(record[name], dict):
            raise MlflowException(
                f"A record's '{name}' must be a JSON object.", INVALID_PARAMETER_VALUE
            )
    source = record.get("source")
    if source is not None and not isinstance(source, dict | DatasetRecordSource):
        raise MlflowException("A record's 'source' must be a JSON object.", INVALID_PARAMETER_VALUE)
    return record


def _new_record(rid: str, record: dict, now: int) -> _Record:
    tags = attributed_tags(record.get("tags") or {})
    source = record.get("source")
    if isinstance(source, dict):
        source = DatasetRecordSource.from_dict(source)
    outputs = record.get("outputs", {})
    entity = DatasetRecord(
        dataset_id="",
        inputs=record.get("inputs", {}),
        dataset_record_id=rid,
        created_time=now,
        last_update_time=now,
        tags=tags,
        source=source,
    )
    author = _author(tags)
    payload = {
        "inputs": entity.inputs,
        "outputs": {DATASET_RECORD_WRAPPED_OUTPUT_KEY: outputs} if outputs is not None else None,
        "expectations": record.get("expectations"),
        "tags": entity.tags,
        "source": source.to_dict() if source is not None else None,
    }
    return _Record(
        record_id=rid,
        input_hash=input_hash(record),
        created_time=now,
        last_update_time=now,
        payload=_json_roundtrip(payload),
        source_id=entity.source_id,
        created_by=author,
        last_updated_by=author,
        new=True,
    )


def _merged(current: _Record, record: dict, now: int) -> _Record:
    """MLflow's merge of an upsert into an existing record: outputs replaced when given,
    expectations and tags merged key by key when given and not empty."""
    payload = dict(current.payload)
    if not current.input_hash:  # a record whose head another writer has not written yet
        return _new_record(current.record_id, record, current.created_time)
    if "outputs" in record:
        outputs = record["outputs"]
        payload["outputs"] = (
            {DATASET_RECORD_WRAPPED_OUTPUT_KEY: outputs} if outputs is not None else None
        )
    if expectations := record.get("expectations"):
        payload["expectations"] = {**(payload.get("expectations") or {}), **expectations}
    tags = attributed_tags(record.get("tags") or {})
    if tags:
        payload["tags"] = {**(payload.get("tags") or {}), **tags}
    last_updated_by = current.last_updated_by
    if MLFLOW_USER in tags or current_principal() is not None:
        last_updated_by = _author(tags)
    return _Record(
        record_id=current.record_id,
        input_hash=current.input_hash,
        created_time=current.created_time,
        last_update_time=now,
        payload=_json_roundtrip(payload),
        source_id=current.source_id,
        created_by=current.created_by,
        last_updated_by=last_updated_by,
        stored_parts=current.stored_parts,
        new=current.new,
    )


def _author(tags: dict) -> str | None:
    principal = current_principal()
    return principal.username if principal is not None else tags.get(MLFLOW_USER)


def _last_author(records: list[dict]) -> str | None:
    """Who last updated the dataset, as MLflow records it: the last record's `mlflow.user`."""
    principal = current_principal()
    if principal is not None:
        return principal.username
    author = None
    for record in records:
        tags = record.get("tags")
        if tags and MLFLOW_USER in tags:
            author = tags[MLFLOW_USER]
    return author


def updated_schema(existing: str | None, records: list[dict]) -> dict | None:
    """The dataset's schema with the field types of `records` added (MLflow's inference)."""
    if not records and not existing:
        return None
    schema = (
        json.loads(existing)
        if existing
        else {"inputs": {}, "outputs": {}, "expectations": {}, "version": "1.0"}
    )
    for record in records:
        for section in ("inputs", "expectations"):
            for key, value in (record.get(section) or {}).items():
                schema[section].setdefault(key, _type_name(value))
        outputs = record.get("outputs")
        if isinstance(outputs, dict):
            if isinstance(schema["outputs"], dict):
                for key, value in outputs.items():
                    schema["outputs"].setdefault(key, _type_name(value))
        elif outputs is not None and not schema["outputs"]:
            schema["outputs"] = _type_name(outputs)
    return schema


def _type_name(value: object) -> str:
    for kind, name in (
        (type(None), "null"),
        (bool, "boolean"),
        (int, "integer"),
        (float, "float"),
        (str, "string"),
        (list, "array"),
        (dict, "object"),
    ):
        if isinstance(value, kind):
            return name
    return "unknown"


def _json_roundtrip(payload: dict) -> dict:
    """The payload as a JSON column gives it back (tuples become lists, keys strings)."""
    return json.loads(json.dumps(payload))


# ---- items --------------------------------------------------------------------------------------


def _part_sk(head_sk: str, n: int) -> str:
    return f"{head_sk}#P{n:04d}"


def _record_items(dataset_id: str, record: _Record) -> list[dict]:
    raw = json.dumps(record.payload).encode()
    compressed = len(raw) > COMPRESS_ABOVE_BYTES
    blob = zlib.compress(raw, 6) if compressed else raw
    chunks = [blob[i : i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)] or [b""]
    head = {
        "pk": records_pk(dataset_id),
        "sk": record.sk,
        "record_id": record.record_id,
        "input_hash": record.input_hash,
        "created_time": record.created_time,
        "last_update_time": record.last_update_time,
        "source_id": record.source_id,
        "created_by": record.created_by,
        "last_updated_by": record.last_updated_by,
        "zlib": compressed,
        "parts": len(chunks),
        "data": chunks[0] if compressed else raw.decode(),
    }
    items = [{k: v for k, v in head.items() if v is not None}]
    for n, chunk in enumerate(chunks[1:], start=1):
        items.append(
            {"pk": records_pk(dataset_id), "sk": _part_sk(record.sk, n), "head_sk": record.sk,
             "part": n, "data": chunk}
        )  # fmt: skip
    return items


def _record_of(head: dict, parts: list[dict]) -> _Record:
    data = head["data"]
    if head.get("zlib"):
        ordered = [data, *(p["data"] for p in sorted(parts, key=lambda p: p["part"]))]
        text = zlib.decompress(b"".join(ordered)).decode()
    else:
        text = data
    return _Record(
        record_id=head["record_id"],
        input_hash=head["input_hash"],
        created_time=int(head["created_time"]),
        last_update_time=int(head["last_update_time"]),
        payload=json.loads(text),
        source_id=head.get("source_id"),
        created_by=head.get("created_by"),
        last_updated_by=head.get("last_updated_by"),
        stored_parts=int(head.get("parts", 1)),
    )


def _records(
    dataset_id: str, heads: list[dict], parts: dict[str, list[dict]]
) -> list[DatasetRecord]:
    out = []
    for head in heads:
        record = _record_of(head, parts.get(head["sk"], []))
        payload = record.payload
        outputs = payload.get("outputs")
        out.append(
            DatasetRecord(
                dataset_record_id=record.record_id,
                dataset_id=dataset_id,
                inputs=payload.get("inputs"),
                outputs=outputs.get(DATASET_RECORD_WRAPPED_OUTPUT_KEY) if outputs else None,
                expectations=payload.get("expectations"),
                tags=payload.get("tags"),
                source=DatasetRecordSource.from_dict(payload["source"])
                if payload.get("source")
                else None,
                source_id=record.source_id,
                created_time=record.created_time,
                last_update_time=record.last_update_time,
                created_by=record.created_by,
                last_updated_by=record.last_updated_by,
            )
        )
    return out
