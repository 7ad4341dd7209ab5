"""Generated runs of one experiment, and two ways to load them into our store.

- `load_api`: through the store's API, as a client would (create_run with the tags, one
  log_batch per run, update_run_info(FINISHED) for one run in ten);
- `load_bulk`: the items those calls leave, built with the store's own item functions and sent
  with BatchWriteItem (tests/store/tracking/test_scale_runs.py checks both leave the same items).

Both load the run with the long metric history through log_batch chunks.
"""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.uri import append_to_uri_path

from store.tracking import DynamoTrackingStore
from store.tracking.items import MetricPoint
from store.tracking.metric_buckets import written_bucket
from store.tracking.run_items import (
    core_item,
    locator_item,
    param_item,
    tag_item,
)
from store.tracking.run_keys import run_position
from store.tracking.run_logging import history_items, newest_by_key
from store.tracking.runs import ARTIFACTS_FOLDER_NAME

RARE_EVERY = 2_500  # one run in this many has team=rare, model=a and a name starting "zz"
USER = "bench"
RUNS_PER_WRITE = 400  # runs whose items go in one batch_write (~4800 items)


@dataclass(frozen=True)
class GeneratedRun:
    index: int
    name: str
    finished: bool
    params: tuple[Param, ...]
    tags: tuple[RunTag, ...]  # the last one is mlflow.runName
    metrics: tuple[Metric, ...]

    @property
    def start_time(self) -> int:
        return 1000 + self.index

    @property
    def end_time(self) -> int:
        return 5000 + self.index


def generate(runs: int, seed: int = 7) -> list[GeneratedRun]:
    rng = random.Random(seed)
    made = []
    for i in range(runs):
        rare = i % RARE_EVERY == 17
        name = f"zz-{i}" if rare else f"run-{i}"
        made.append(
            GeneratedRun(
                index=i,
                name=name,
                finished=i % 10 == 0,
                params=(
                    Param("model", "a" if rare else f"m-{i % 5}"),
                    Param("lr", str(rng.choice((0.1, 0.01, 0.001)))),
                    Param("seed", str(i)),
                ),
                tags=(
                    RunTag("team", "rare" if rare else f"team-{i % 7}"),
                    RunTag("mlflow.source.name", "train.py"),
                    RunTag(MLFLOW_RUN_NAME, name),
                ),
                metrics=(
                    Metric("acc", round(rng.uniform(0.5, 0.99), 4), 1000 + i, 0),
                    Metric("loss", rng.random(), 1000 + i, 0),
                    Metric("x", rng.random(), 1000 + i, 0),
                ),
            )
        )
    return made


# ---- through the API ----------------------------------------------------------------------------


def load_api(
    store: DynamoTrackingStore, experiment_id: str, runs: list[GeneratedRun], threads: int = 8
) -> list[str]:
    """Each run as a client logs it; returns the run ids in the order of `runs`."""

    def one(run: GeneratedRun) -> str:
        created = store.create_run(
            experiment_id, USER, run.start_time, list(run.tags[:-1]), run.name
        )
        run_id = created.info.run_id
        store.log_batch(run_id, list(run.metrics), list(run.params), [])
        if run.finished:
            store.update_run_info(run_id, RunStatus.FINISHED, run.end_time, None)
        return run_id

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, runs))


def load_history(
    store: DynamoTrackingStore, run_id: str, points: int, threads: int = 8, key: str = "h"
) -> None:
    """`points` points of metric `key` (value step / 2 at step = timestamp), 1000 a log_batch."""

    def chunk(steps: range) -> None:
        store.log_batch(run_id, [Metric(key, s * 0.5, s, s) for s in steps], [], [])

    chunks = [range(start, min(start + 1000, points)) for start in range(0, points, 1000)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(chunk, chunks))


# ---- in bulk ------------------------------------------------------------------------------------


def run_items(
    experiment_id: str, artifact_location: str, run_id: str, run: GeneratedRun
) -> list[dict]:
    """The items create_run, log_batch and update_run_info leave for `run`."""
    position = run_position(run.start_time, run_id)
    artifact_uri = append_to_uri_path(artifact_location, run_id, ARTIFACTS_FOLDER_NAME)
    status = RunStatus.to_string(RunStatus.FINISHED if run.finished else RunStatus.RUNNING)
    core = core_item(
        position,
        {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "user_id": USER,
            "status": status,
            "start_time": run.start_time,
            "end_time": run.end_time if run.finished else None,
            "deleted_time": None,
            "lifecycle_stage": "active",
            "artifact_uri": artifact_uri,
        },
    )
    points = [MetricPoint.from_metric(m) for m in run.metrics]
    bucket = written_bucket(experiment_id, position, 0, 0, newest_by_key(points))
    return [
        locator_item(run_id, experiment_id, position, artifact_uri),
        core,
        bucket,
        *(tag_item(experiment_id, position, t.key, t.value) for t in run.tags),
        *(param_item(experiment_id, position, p.key, p.value) for p in run.params),
        *history_items(run_id, points),
    ]


def load_bulk(
    store: DynamoTrackingStore,
    experiment_id: str,
    runs: list[GeneratedRun],
    run_ids: list[str] | None = None,
    threads: int = 4,
) -> list[str]:
    """The same items as `load_api` in BatchWriteItem requests; returns the run ids (new ones
    unless given)."""
    run_ids = run_ids or [uuid.uuid4().hex for _ in runs]
    location = store.get_experiment(experiment_id).artifact_location

    def write(start: int) -> None:
        items = []
        for run, run_id in zip(
            runs[start : start + RUNS_PER_WRITE],
            run_ids[start : start + RUNS_PER_WRITE],
            strict=True,
        ):
            items += run_items(experiment_id, location, run_id, run)
        store.table.batch_write(puts=items)

    starts = range(0, len(runs), RUNS_PER_WRITE)
    if threads <= 1:
        for start in starts:
            write(start)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(write, starts))
    return run_ids
