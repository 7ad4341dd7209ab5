"""Runs the handler tier on MLflow's sqlite store, attributing runs to the bound principal.

This mirrors what the DynamoDB store does with `current_principal()`, so tests can check that the
principal reaches the store through MLflow's Flask-in-a-worker-thread path.

Usage: python principal_handler_tier.py PORT
"""

from __future__ import annotations

import sys

import uvicorn
from mlflow.entities import RunTag
from mlflow.server.handlers import _tracking_store_registry
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.mlflow_tags import MLFLOW_USER

from store.handler.identity import current_principal


class PrincipalAttributingStore(SqlAlchemyStore):
    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        principal = current_principal()
        if principal is not None:
            user_id = principal.username
            tags = [t for t in tags if t.key != MLFLOW_USER] + [RunTag(MLFLOW_USER, user_id)]
        return super().create_run(experiment_id, user_id, start_time, tags, run_name)


def main() -> None:
    _tracking_store_registry.register(
        "sqlite", lambda store_uri, artifact_uri: PrincipalAttributingStore(store_uri, artifact_uri)
    )
    uvicorn.run(
        "store.handler.app:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="warning"
    )


if __name__ == "__main__":
    main()
