"""The bulk loader of the scale benchmark leaves exactly the items the store's API leaves."""

from __future__ import annotations

import json
import uuid

import boto3
from boto3.dynamodb.types import TypeDeserializer
from store_support import ARTIFACT_ROOT

from bench.scale_runs import generate, load_api, load_bulk
from store.tracking import DynamoTrackingStore


def _items(store: DynamoTrackingStore) -> set[str]:
    """Every item of the store's table, each as canonical JSON."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    decode = TypeDeserializer().deserialize
    found = set()
    for page in client.get_paginator("scan").paginate(TableName=store.table.name):
        for item in page["Items"]:
            plain = {name: decode(value) for name, value in item.items()}
            found.add(json.dumps(plain, sort_keys=True, default=str))
    return found


def test_bulk_load_leaves_the_items_of_the_api(moto_store: DynamoTrackingStore) -> None:
    runs = generate(25)  # finished runs, a rare one, every kind of value
    bulk_store = DynamoTrackingStore(f"dynamodb://us-east-1/bulk-{uuid.uuid4().hex}", ARTIFACT_ROOT)
    bulk_store.table.parallel_writes = 1  # moto is not thread-safe
    api_experiment = moto_store.create_experiment("scale")
    bulk_experiment = bulk_store.create_experiment("scale")
    assert api_experiment == bulk_experiment
    api_before, bulk_before = _items(moto_store), _items(bulk_store)

    run_ids = load_api(moto_store, api_experiment, runs, threads=1)
    load_bulk(bulk_store, bulk_experiment, runs, run_ids, threads=1)

    api_added = _items(moto_store) - api_before
    bulk_added = _items(bulk_store) - bulk_before
    assert len(api_added) == 12 * len(runs)
    assert bulk_added == api_added
