"""Registry calls on the DynamoDB store (dynalite) beside MLflow's SQL store (sqlite).

    .venv/bin/python bench/registry_bench.py [--models 50] [--versions 5] [--repeat 200]

Prints one Markdown row per call: median and p90 latency of each store, the ratio
(DynamoDB / sqlite) and the DynamoDB requests each call made. Both stores run in this process;
dynalite runs in memory on a loopback port and is stopped at the end.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
from side_by_side import Measurement, markdown_table, timed

from gateway.stack.dynamodb_server import DynamoServer
from store.registry import DynamoRegistryStore


def populate(store, models: int, versions: int) -> None:
    for m in range(models):
        name = f"model-{m:04d}"
        store.create_registered_model(name, tags=[RegisteredModelTag("team", f"t{m % 4}")])
        for v in range(versions):
            store.create_model_version(
                name,
                f"s3://bucket/{name}/{v}",
                run_id=f"run{m % 7}",
                tags=[ModelVersionTag("k", str(v))],
            )
    store.create_registered_model("bench")
    store.create_model_version("bench", "s3://bucket/bench/1")
    store.set_registered_model_alias("bench", "champion", 1)


def calls(store) -> dict[str, Callable[[], object]]:
    return {
        "create_model_version": lambda: store.create_model_version("bench", "s3://bucket/b/2"),
        "get_model_version_by_alias": lambda: store.get_model_version_by_alias("bench", "champion"),
        "get_registered_model": lambda: store.get_registered_model("model-0001"),
        "search_model_versions name=": lambda: store.search_model_versions("name = 'model-0001'"),
        "search_model_versions run_id=": lambda: store.search_model_versions(
            "run_id = 'run3'", max_results=100
        ),
        "search_registered_models": lambda: store.search_registered_models(
            "tags.team = 't1'", max_results=100
        ),
    }


def run(models: int, versions: int, repeat: int) -> list[Measurement]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        DynamoServer(None, log_path=Path(tmp) / "dynalite.log", allow_moto=False) as server,
    ):
        host = server.url.removeprefix("http://")
        ours = DynamoRegistryStore(f"dynamodb://{host}/bench-{uuid.uuid4().hex[:8]}")
        oracle = SqlAlchemyStore(f"sqlite:///{tmp}/registry.db")
        for store in (ours, oracle):
            populate(store, models, versions)
        ours_calls, oracle_calls = calls(ours), calls(oracle)
        results = []
        for name, call in ours_calls.items():
            ours.table.round_trips.reset()
            call()
            trips = ours.table.round_trips.total()
            ours_ms = timed(call, repeat)
            sqlite_ms = timed(oracle_calls[name], repeat)
            results.append(Measurement(name, ours_ms, sqlite_ms, trips))
        return results


def report(results: list[Measurement], models: int, versions: int, repeat: int) -> str:
    title = f"{models} models x {versions} versions, {repeat} calls each"
    return markdown_table(title, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    results = run(args.models, args.versions, args.repeat)
    print(report(results, args.models, args.versions, args.repeat))


if __name__ == "__main__":
    main()
