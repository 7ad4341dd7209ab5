"""The store is found by MLflow's plugin registries for `dynamodb://` URIs."""

from __future__ import annotations

import subprocess
import sys

_CHECK = """
import mlflow
from mlflow.server import handlers
from mlflow.tracking._tracking_service import utils
from store.tracking import DynamoTrackingStore

uri = "dynamodb://127.0.0.1:8000/cedarflow"
assert handlers._tracking_store_registry.get_store_builder(uri) is DynamoTrackingStore
assert utils._tracking_store_registry.get_store_builder(uri) is DynamoTrackingStore
print("registered")
"""


def test_mlflow_registries_find_the_tracking_store_in_a_fresh_process():
    done = subprocess.run(
        [sys.executable, "-c", _CHECK], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "registered" in done.stdout
