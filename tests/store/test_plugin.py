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


_HANDLER_ORDER = """
import warnings
warnings.simplefilter("error", UserWarning)  # a store that failed to register only warns
from mlflow.server import handlers
from store.registry import DynamoRegistryStore
from store.tracking import DynamoTrackingStore

uri = "dynamodb://127.0.0.1:8000/cedarflow"
assert handlers._tracking_store_registry.get_store_builder(uri) is DynamoTrackingStore
assert handlers._model_registry_store_registry.get_store_builder(uri) is DynamoRegistryStore
print("registered")
"""


def test_both_stores_register_when_mlflows_server_is_imported_first():
    done = subprocess.run(
        [sys.executable, "-c", _HANDLER_ORDER], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "registered" in done.stdout
