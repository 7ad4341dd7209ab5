"""MLflow's tracking store on one DynamoDB table (`dynamodb://` store URIs).

The calls live in one mixin per concern; this class puts them together and is what MLflow's
tracking-store registry builds with `(store_uri, artifact_uri)`. Calls it does not offer raise
MLflow's NOT_IMPLEMENTED.
"""

from __future__ import annotations

import threading

from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.uri import resolve_uri_if_local

from store.dynamo.table import DynamoTable
from store.traces.store import TracesMixin
from store.tracking.eval_datasets import EvaluationDatasetsMixin
from store.tracking.eval_records import DatasetRecordsMixin
from store.tracking.experiments import ExperimentsMixin
from store.tracking.issues import IssuesMixin
from store.tracking.label_schemas import LabelSchemasMixin
from store.tracking.logged_models import LoggedModelsMixin
from store.tracking.metrics import MetricsMixin
from store.tracking.review_queues import ReviewQueuesMixin
from store.tracking.run_gc import RunGcMixin
from store.tracking.run_inputs import RunInputsMixin
from store.tracking.run_locator import Locators
from store.tracking.run_logging import RunLoggingMixin
from store.tracking.run_search import RunSearchMixin
from store.tracking.run_states import RunStates, active_experiments
from store.tracking.runs import RunsMixin
from store.tracking.scorers import ScorersMixin
from store.tracking.trace_metrics import TraceMetricsMixin
from store.unsupported import raise_not_implemented

_ready_tables: set[tuple[str, str]] = set()
_ready_lock = threading.Lock()


@raise_not_implemented
class DynamoTrackingStore(
    LoggedModelsMixin,
    TracesMixin,
    EvaluationDatasetsMixin,
    DatasetRecordsMixin,
    ScorersMixin,
    LabelSchemasMixin,
    ReviewQueuesMixin,
    IssuesMixin,
    TraceMetricsMixin,
    ExperimentsMixin,
    RunsMixin,
    RunLoggingMixin,
    RunInputsMixin,
    RunGcMixin,
    RunSearchMixin,
    MetricsMixin,
    AbstractStore,
):
    """Experiments, runs, metrics, datasets, logged models, traces and evaluation datasets in
    DynamoDB."""

    ARTIFACTS_FOLDER_NAME = "artifacts"

    def __init__(self, store_uri: str, artifact_uri: str | None = None) -> None:
        super().__init__()
        self.store_uri = store_uri
        self.table = DynamoTable.from_uri(store_uri)
        self._locators = Locators(self.table)
        self._states = RunStates()
        self._active_experiments = active_experiments()
        self.artifact_root_uri = resolve_uri_if_local(
            artifact_uri or DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
        )
        self._prepare_table()

    def _prepare_table(self) -> None:
        """Create the table and the Default experiment once per process and table."""
        marker = (self.store_uri, self.artifact_root_uri)
        with _ready_lock:
            if marker in _ready_tables:
                return
            self.table.ensure_table()
            self._ensure_default_experiment()
            _ready_tables.add(marker)
