"""Tracking-store fixtures: ours on moto (unit) or dynalite (real server), MLflow's on sqlite."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow  # noqa: F401 - import MLflow fully before the store (its plugin registry)
import pytest
from moto import mock_aws
from store_support import ARTIFACT_ROOT

from store.tracking import DynamoTrackingStore


def unique_table() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-process AWS, whatever the environment says about credentials and endpoints."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def store(tmp_path: Path, aws_env: None) -> DynamoTrackingStore:
    """Our store on moto, its artifacts in a temporary folder."""
    return DynamoTrackingStore(f"dynamodb:///t-{uuid.uuid4().hex[:12]}", str(tmp_path))


@pytest.fixture
def experiment_id(store: DynamoTrackingStore) -> str:
    return store.create_experiment("tests")


@pytest.fixture
def moto_store() -> Iterator[DynamoTrackingStore]:
    """Our store on moto's in-process DynamoDB, on a table of its own."""
    with mock_aws():
        store = DynamoTrackingStore(f"dynamodb://us-east-1/{unique_table()}", ARTIFACT_ROOT)
        store.table.parallel_writes = 1  # moto is not thread-safe
        yield store


@pytest.fixture
def dynalite_store_factory(dynalite_endpoint: str) -> Callable[[], DynamoTrackingStore]:
    """Makes our store on the session's dynalite, each on a fresh table."""
    host_port = dynalite_endpoint.removeprefix("http://")

    def make() -> DynamoTrackingStore:
        return DynamoTrackingStore(f"dynamodb://{host_port}/{unique_table()}", ARTIFACT_ROOT)

    return make


@pytest.fixture
def dynalite_store(dynalite_store_factory) -> DynamoTrackingStore:
    return dynalite_store_factory()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialized MLflow sqlite database (migrations run once per session)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    store = SqlAlchemyStore(f"sqlite:///{path}", ARTIFACT_ROOT)
    store.engine.dispose()
    return path


@pytest.fixture
def sql_store(_sqlite_template: Path, tmp_path: Path):
    """MLflow's own SqlAlchemyStore on a fresh copy of the template database: the oracle."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path = tmp_path / "mlflow.db"
    shutil.copy(_sqlite_template, path)
    store = SqlAlchemyStore(f"sqlite:///{path}", ARTIFACT_ROOT)
    yield store
    store.engine.dispose()
