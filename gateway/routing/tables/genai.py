"""Route rows: MLflow's GenAI calls (evaluation datasets and their records, scorers, label
schemas, issues, review queues).

A dataset is decided on the experiments it is linked to (gateway/authz/datasets.py): reads
need one of them to allow (`ANY`), changes all of them (`ALL`, the default); adding a link
also needs the new experiments, removing one the named experiments.
"""

from __future__ import annotations

from gateway.routing.build import ajax, api, ref, rows
from gateway.routing.model import ANY, NONE, Route
from gateway.routing.tables.tracking import EXP_ID, EXP_IDS
from store.vocabulary import (
    DATASET,
    EXPERIMENT,
    ISSUE,
    LABEL_SCHEMA,
    REVIEW_QUEUE,
    SCORER,
    TRACE,
    WORKSPACE,
)

DATASET_CHANGED = ref(DATASET, "{dataset_id}")
DATASET_READ = ref(DATASET, "{dataset_id}", combine=ANY)
# A search names experiments (narrowed to the readable ones) or none: then every dataset, each
# kept when the caller may read it (gateway/filters.py)
SEARCH = (
    ref(EXPERIMENT, "experiment_ids[]", narrow=True, optional=True),
    ref(WORKSPACE, "absent:experiment_ids[]"),
)


def _datasets() -> list[Route]:
    f = "datasets"
    base = "/mlflow/datasets"
    one = f"{base}/{{dataset_id}}"
    search = api(3, f"{base}/search")
    return [
        *rows("POST", ajax(2, "/mlflow/experiments/search-datasets"), f, "SearchDatasets", EXP_IDS),
        *rows("POST", api(3, f"{base}/create"), f, "CreateDataset", EXP_IDS),
        *rows("GET", search, f, "SearchEvaluationDatasets", *SEARCH, filter=f"evaluation_{f}"),
        *rows("POST", search, f, "SearchEvaluationDatasets", *SEARCH, filter=f"evaluation_{f}"),
        *rows("GET", api(3, one), f, "GetDataset", DATASET_READ),
        *rows("DELETE", api(3, one), f, "DeleteDataset", DATASET_CHANGED),
        *rows(
            "GET",
            api(3, f"{one}/experiment-ids"),
            f,
            "GetDatasetExperimentIds",
            DATASET_READ,
            filter="dataset_experiment_ids",  # only the linked experiments the caller may see
        ),
        *rows("GET", api(3, f"{one}/records"), f, "GetDatasetRecords", DATASET_READ),
        *rows("POST", api(3, f"{one}/records"), f, "UpsertDatasetRecords", DATASET_CHANGED),
        *rows("DELETE", api(3, f"{one}/records"), f, "DeleteDatasetRecords", DATASET_CHANGED),
        *rows(
            "POST",
            api(3, f"{one}/add-experiments"),
            f,
            "AddDatasetToExperiments",
            DATASET_CHANGED,
            EXP_IDS,
        ),
        *rows(
            "POST",
            api(3, f"{one}/remove-experiments"),
            f,
            "RemoveDatasetFromExperiments",
            DATASET_CHANGED,
            EXP_IDS,
        ),
        *rows("PATCH", api(3, f"{one}/tags"), f, "SetDatasetTags", DATASET_CHANGED),
        *rows("DELETE", api(3, f"{one}/tags/{{key}}"), f, "DeleteDatasetTag", DATASET_CHANGED),
    ]


def _scorers() -> list[Route]:
    f = "scorers"
    base = "/mlflow/scorers"
    return [
        *rows(
            "GET",
            api(3, f"{base}/list"),
            f,
            "ListScorers",
            ref(EXPERIMENT, "experiment_id", optional=True),
            ref(EXPERIMENT, "experiment_ids[]", optional=True),
        ),
        *rows("GET", api(3, f"{base}/get"), f, "GetScorer", EXP_ID),
        *rows("GET", api(3, f"{base}/versions"), f, "ListScorerVersions", EXP_ID),
        *rows("POST", api(3, f"{base}/register"), f, "RegisterScorer", EXP_ID),
        *rows("DELETE", api(3, f"{base}/delete"), f, "DeleteScorer", EXP_ID),
        *rows("PUT", api(3, f"{base}/online-config"), f, "UpsertOnlineScoringConfig", EXP_ID),
        # the experiment's Judges page asks for its scorers' configurations: each scorer's own
        *rows(
            "GET",
            api(3, f"{base}/online-configs"),
            f,
            "GetOnlineScoringConfigs",
            ref(SCORER, "scorer_ids[]"),
        ),
    ]


def _label_schemas() -> list[Route]:
    f = "label_schemas"
    base = "/mlflow/label-schemas"
    schema = ref(LABEL_SCHEMA, "schema_id")  # a schema id resolves to its experiment
    return [
        *rows("POST", api(3, f"{base}/create"), f, "CreateLabelSchema", EXP_ID),
        *rows("GET", api(3, f"{base}/get"), f, "GetLabelSchema", schema),
        *rows("GET", api(3, f"{base}/get-by-name"), f, "GetLabelSchemaByName", EXP_ID),
        *rows("GET", api(3, f"{base}/list"), f, "ListLabelSchemas", EXP_ID),
        *rows("PATCH", api(3, f"{base}/update"), f, "UpdateLabelSchema", schema),
        *rows("DELETE", api(3, f"{base}/delete"), f, "DeleteLabelSchema", schema),
    ]


def _issues() -> list[Route]:
    f = "issues"
    base = "/mlflow/issues"
    issue = ref(ISSUE, "{issue_id}")  # the handler reads the path's id only
    # without an experiment MLflow searches every issue: decided on the workspace, and each
    # issue of the answer kept when the caller may read it (gateway/filters.py)
    search = (
        ref(EXPERIMENT, "experiment_id", optional=True),
        ref(WORKSPACE, "absent:experiment_id"),
    )
    return [
        *rows("POST", api(3, base), f, "CreateIssue", EXP_ID),
        *rows("POST", api(3, f"{base}/search"), f, "SearchIssues", *search, filter=f),
        *rows("GET", api(3, f"{base}/{{issue_id}}"), f, "GetIssue", issue, params=NONE),
        *rows("PATCH", api(3, f"{base}/{{issue_id}}"), f, "UpdateIssue", issue),
    ]


def _review_queues() -> list[Route]:
    f = "review_queues"
    base = "/mlflow/review-queues"
    queue = ref(REVIEW_QUEUE, "queue_id")  # a queue id resolves to its experiment
    # the traces a call names are decided on their own experiments too
    added = ref(TRACE, "item_ids[]")
    removed = ref(TRACE, "item_ids[]", missing_ok=True)  # a deleted trace can still be removed
    reviewed = ref(TRACE, "item_id", missing_ok=True)
    held = ref(TRACE, "item_id", optional=True, missing_ok=True)
    return [
        *rows("POST", api(3, f"{base}/create"), f, "CreateReviewQueue", EXP_ID),
        *rows("POST", api(3, f"{base}/get-or-create-user"), f, "GetOrCreateUserQueue", EXP_ID),
        *rows("GET", api(3, f"{base}/get"), f, "GetReviewQueue", queue),
        *rows("GET", api(3, f"{base}/get-by-name"), f, "GetReviewQueueByName", EXP_ID),
        *rows("GET", api(3, f"{base}/list"), f, "ListReviewQueues", EXP_ID, held),
        *rows("POST", api(3, f"{base}/update"), f, "UpdateReviewQueue", queue),
        *rows("POST", api(3, f"{base}/delete"), f, "DeleteReviewQueue", queue),
        *rows("POST", api(3, f"{base}/items/add"), f, "AddItemsToReviewQueue", queue, added),
        *rows(
            "POST", api(3, f"{base}/items/remove"), f, "RemoveItemsFromReviewQueue", queue, removed
        ),
        *rows("GET", api(3, f"{base}/items/list"), f, "ListReviewQueueItems", queue),
        *rows(
            "POST",
            api(3, f"{base}/items/set-status"),
            f,
            "SetReviewQueueItemStatus",
            queue,
            reviewed,
        ),
    ]


def genai_routes() -> list[Route]:
    return [*_datasets(), *_scorers(), *_label_schemas(), *_issues(), *_review_queues()]
