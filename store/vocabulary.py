"""The authorization vocabulary the gateway and the store share: resource kinds and roles.

The one definition: every module that names a kind of resource, a role or an MLflow
permission imports it from here.
"""

from __future__ import annotations

# Resource kinds a request can name before resolution.
WORKSPACE = "workspace"  # calls without a single target (create, global search, UI)
EXPERIMENT = "experiment"
EXPERIMENT_NAME = "experiment_name"
RUN = "run"
REGISTERED_MODEL = "registered_model"
TRACE = "trace"
LOGGED_MODEL = "logged_model"
DATASET = "dataset"
SCORER = "scorer"  # a registered scorer, by its id: decided on its experiment
LABEL_SCHEMA = "label_schema"  # a label schema, by its id: decided on its experiment
ISSUE = "issue"  # an issue, by its id: decided on its experiment
REVIEW_QUEUE = "review_queue"  # a review queue, by its id: decided on its experiment
ARTIFACT_PATH = "artifact_path"  # an mlflow-artifacts path: "<experiment id>/..."

DEFAULT_WORKSPACE = "default"  # the one workspace of a deployment (MLflow's name for it)

# Roles bound on experiments and registered models; each includes the ones before it.
ROLES = ("reader", "editor", "manager")
# MLflow's permission names (its permissions API and client) for the roles.
PERMISSION_OF_ROLE = {"reader": "READ", "editor": "EDIT", "manager": "MANAGE"}
ROLE_OF_PERMISSION = {permission: role for role, permission in PERMISSION_OF_ROLE.items()}
