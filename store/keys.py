"""Where each item lives in the table: the one definition of every primary key.

The stores write items under these keys and `store/ownership.py` reads them to answer the
gateway; nothing else builds a key. MLflow-free, so the gateway can import it.
"""

from __future__ import annotations

EXPERIMENT_SK = "EXP"
NAME_CLAIM_SK = "EXPNAME"
RUN_SK = "RUN"
TRACE_INFO_SK = "INFO"
LOGGED_MODEL_SK = "LM"
REGISTERED_MODEL_SK = "RM"
VERSION_SK_PREFIX = "MV#"
RUN_VERSION_SK_PREFIX = "MV#"
USER_PRINCIPAL_PREFIX = "P#"
EXPERIMENTS_INDEX_PK = "EXPS"  # gsi1: every experiment, by id
REGISTERED_MODELS_INDEX_PK = "RMS"  # gsi1: every registered model, by name
USERS_INDEX_PK = "USERS"  # gsi1: the user directory, by name


def experiment_pk(experiment_id: str) -> str:
    """The experiment's partition (its datasets share it)."""
    return f"EXP#{experiment_id}"


def experiment_key(experiment_id: str) -> tuple[str, str]:
    return experiment_pk(experiment_id), EXPERIMENT_SK


def name_claim_key(name: str) -> tuple[str, str]:
    """The item that holds an experiment name for its experiment."""
    return f"EXPNAME#{name}", NAME_CLAIM_SK


def run_key(run_id: str) -> tuple[str, str]:
    return f"RUN#{run_id}", RUN_SK


def trace_pk(trace_id: str) -> str:
    """The trace's partition: its info item and its spans."""
    return f"TR#{trace_id}"


def trace_key(trace_id: str) -> tuple[str, str]:
    """The trace's info item."""
    return trace_pk(trace_id), TRACE_INFO_SK


def run_trace_links_pk(run_id: str) -> str:
    """The partition of a run's links to traces that did not exist yet when linked."""
    return f"RUNTR#{run_id}"


def logged_model_key(model_id: str) -> tuple[str, str]:
    return f"LM#{model_id}", LOGGED_MODEL_SK


def registered_model_key(name: str) -> tuple[str, str]:
    """A registered model is keyed by its name: the item is the name's claim."""
    return f"RMNAME#{name}", REGISTERED_MODEL_SK


def versions_pk(rid: str) -> str:
    """The partition of a model's versions, keyed by the model's immutable id."""
    return f"RM#{rid}"


def version_sk(version: int) -> str:
    return f"{VERSION_SK_PREFIX}{version:010d}"


def version_key(rid: str, version: int) -> tuple[str, str]:
    return versions_pk(rid), version_sk(version)


def run_versions_pk(run_id: str) -> str:
    """The partition naming the model versions whose files are a folder of this run's."""
    return f"RUNMV#{run_id}"


def run_version_key(run_id: str, rid: str, version: int) -> tuple[str, str]:
    return run_versions_pk(run_id), f"{RUN_VERSION_SK_PREFIX}{rid}#{version:010d}"


def users_pk(name: str) -> str:
    """The user directory's partition of one user name (one item per principal)."""
    return f"USER#{name}"


def user_key(name: str, principal: str) -> tuple[str, str]:
    return users_pk(name), f"{USER_PRINCIPAL_PREFIX}{principal}"


def users_index_sk(name: str, principal: str) -> str:
    """The directory entry's place in the name-ordered user list (gsi1 `USERS`)."""
    return f"{name}#{principal}"


# ---- evaluation datasets, their records, and scorers ----------------------------------------

EVAL_DATASET_SK = "EVDS"
EVAL_DATASETS_GSI = "EVDSS"  # every dataset, by creation time (the id-less search)
DATASET_LINK_SK_PREFIX = "EVDS#"  # under an experiment's partition: the datasets linked to it
RECORD_SK_PREFIX = "R#"
RECORD_CLAIM_SK_PREFIX = "C#"
SCORER_SK_PREFIX = "SCORER#"
SCORER_META_SK = "META"
SCORER_VERSION_SK_PREFIX = "V#"
SCORERS_GSI = "SCORERS"  # every scorer head, by experiment then name


def eval_dataset_key(dataset_id: str) -> tuple[str, str]:
    """An evaluation dataset's item (its links to experiments are the `experiments` set)."""
    return f"EVDS#{dataset_id}", EVAL_DATASET_SK


def dataset_link_key(experiment_id: str, dataset_id: str) -> tuple[str, str]:
    """The entry that lists a dataset under an experiment (an index of the dataset's set)."""
    return experiment_pk(experiment_id), f"{DATASET_LINK_SK_PREFIX}{dataset_id}"


def records_pk(dataset_id: str) -> str:
    """The partition of a dataset's records, their parts and their identity claims."""
    return f"DSR#{dataset_id}"


def record_sk(created_time: int, record_id: str) -> str:
    """A record's head, in MLflow's record order (creation time, then record id)."""
    return f"{RECORD_SK_PREFIX}{created_time:015d}#{record_id}"


def record_claim_key(dataset_id: str, record_id: str) -> tuple[str, str]:
    """The item whose conditional put makes a record new (it names the record's head)."""
    return records_pk(dataset_id), f"{RECORD_CLAIM_SK_PREFIX}{record_id}"


def scorer_head_key(experiment_id: str, name: str) -> tuple[str, str]:
    """A scorer of an experiment: its id, its latest version and its online configuration."""
    return experiment_pk(experiment_id), f"{SCORER_SK_PREFIX}{name}"


def scorer_pk(scorer_id: str) -> str:
    """The partition of a scorer id: its owner (META) and its versions."""
    return f"SCORER#{scorer_id}"


def scorer_meta_key(scorer_id: str) -> tuple[str, str]:
    """Which experiment a scorer id belongs to, written once and never changed."""
    return scorer_pk(scorer_id), SCORER_META_SK


def scorer_version_key(scorer_id: str, version: int) -> tuple[str, str]:
    return scorer_pk(scorer_id), f"{SCORER_VERSION_SK_PREFIX}{version:010d}"


# ---- registry webhooks ----

WEBHOOK_SK = "WEBHOOK"
WEBHOOKS_GSI_PK = "WEBHOOKS"  # every live webhook, oldest first by creation time


def webhook_key(webhook_id: str) -> tuple[str, str]:
    return f"WEBHOOK#{webhook_id}", WEBHOOK_SK


def webhooks_index_key(created_ms: int, webhook_id: str) -> str:
    return f"{created_ms:015d}#{webhook_id}"


# ---- label schemas ----

LABEL_SCHEMA_SK = "LS"
LABEL_SCHEMA_NAME_SK_PREFIX = "LSNAME#"  # under an experiment's partition: a name's claim
LABEL_SCHEMA_DEFAULT_SK = "LSDEFAULT"  # under an experiment's partition: its default question
NEWEST_FIRST = 2**63 - 1  # a time t sorts newest first as NEWEST_FIRST - t


def label_schema_key(schema_id: str) -> tuple[str, str]:
    return f"LS#{schema_id}", LABEL_SCHEMA_SK


def label_schemas_index_pk(experiment_id: str) -> str:
    """The gsi1 partition listing an experiment's label schemas."""
    return f"EXPLS#{experiment_id}"


def label_schemas_index_sk(created_ms: int, schema_id: str) -> str:
    """Newest first, then id ascending (MLflow's list order)."""
    return f"{NEWEST_FIRST - created_ms:019d}#{schema_id}"


def label_schema_name_key(experiment_id: str, name: str) -> tuple[str, str]:
    """The item that holds a schema name of an experiment for its schema."""
    return experiment_pk(experiment_id), f"{LABEL_SCHEMA_NAME_SK_PREFIX}{name}"


def label_schema_default_key(experiment_id: str) -> tuple[str, str]:
    """The marker naming the experiment's default question once it is seeded."""
    return experiment_pk(experiment_id), LABEL_SCHEMA_DEFAULT_SK


# ---- issues ----

ISSUE_SK = "ISSUE"
ISSUES_INDEX_PK = "ISSUES"  # gsi1: every issue, by experiment then creation time
ISSUE_TRACE_SK_PREFIX = "TR#"  # under an issue's partition: a trace that references it


def issue_key(issue_id: str) -> tuple[str, str]:
    return f"ISSUE#{issue_id}", ISSUE_SK


def issues_index_sk(experiment_id: str, created_ms: int, issue_id: str) -> str:
    return f"{int(experiment_id):020d}#{created_ms:015d}#{issue_id}"


def issues_of_experiment_prefix(experiment_id: str) -> str:
    return f"{int(experiment_id):020d}#"


def issue_trace_key(issue_id: str, trace_id: str) -> tuple[str, str]:
    """The marker saying a trace holds an assessment that references the issue."""
    return f"ISSUE#{issue_id}", f"{ISSUE_TRACE_SK_PREFIX}{trace_id}"


# ---- review queues ----

REVIEW_QUEUE_SK = "RQ"
REVIEW_QUEUE_NAME_SK_PREFIX = "RQNAME#"  # under an experiment's partition: a name's claim
REVIEW_QUEUE_ITEM_SK_PREFIX = "I#"  # under a queue's partition: an item to review


def review_queue_key(queue_id: str) -> tuple[str, str]:
    return f"RQ#{queue_id}", REVIEW_QUEUE_SK


def review_queues_index_pk(experiment_id: str) -> str:
    """The gsi1 partition listing an experiment's review queues."""
    return f"EXPRQ#{experiment_id}"


def review_queues_index_sk(created_ms: int, queue_id: str) -> str:
    """Newest first, then id ascending (MLflow's list order)."""
    return f"{NEWEST_FIRST - created_ms:019d}#{queue_id}"


def review_queue_name_key(experiment_id: str, name_key: str) -> tuple[str, str]:
    """The item that holds a case-folded queue name of an experiment for its queue."""
    return experiment_pk(experiment_id), f"{REVIEW_QUEUE_NAME_SK_PREFIX}{name_key}"


def review_queue_item_key(queue_id: str, item_id: str) -> tuple[str, str]:
    return f"RQ#{queue_id}", f"{REVIEW_QUEUE_ITEM_SK_PREFIX}{item_id}"


def review_queues_holding_pk(item_id: str) -> str:
    """The gsi1 partition listing the queues that hold an item."""
    return f"RQFOR#{item_id}"
