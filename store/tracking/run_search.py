"""search_runs: MLflow's filter and order grammar (store/tracking/run_query.py) with the SQL
store's results, read the way that costs least (store/README.md, "Search").

- **Start time leads the order** (none given, `start_time DESC` or `ASC`): the runs are read in
  that order and the search stops once it holds the page and one run more. Without an indexed
  clause it reads the experiment's partitions in order (whole runs, no request per run);
  with one (store/tracking/run_drivers.py) it takes the candidates in order and reads their
  runs, in order where they are dense, one by one where they are not.
- **Any other order**: every matching run must be known to sort them. A driver with at most
  GATHER_FETCH candidates reads those runs; otherwise the search gathers, per run, only what
  the filter and order read: the status column (status, stage, times, user), the index columns
  of the params and tags named, the metric buckets when a metric is named; then it sorts, and
  reads the page's runs. Dataset and `artifact_uri` clauses read the runs themselves.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from mlflow.entities import LifecycleStage, ViewType
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.validation import _parse_experiment_ids

from store.dynamo.table import DynamoTable
from store.search.pagination import next_page_token, page_offset
from store.tracking.experiments import validate_max_results
from store.tracking.items import run_to_entity
from store.tracking.run_drivers import METRICS, Candidates, choose_driver
from store.tracking.run_items import latest_attribute, latest_by_position
from store.tracking.run_keys import (
    ATTRIBUTE,
    HIDDEN_NAME_COLUMN,
    PARAM,
    TAG,
    entry_value,
    position_of,  # noqa: I001
)
from store.tracking.run_keys import metrics_pk as metrics_partition
from store.tracking.run_query import RunQuery, first_runs, parse_run_query, start_time_position
from store.tracking.run_reader import (
    column,
    fetch,
    in_order,
    start_time_bounds,
    status_column,
)

GATHER_FETCH = 500  # a sort over at most this many candidates reads their runs
_WHOLE_RUN_ATTRIBUTES = {"artifact_uri"}


class RunSearchMixin:
    """search_runs over one or many experiments, never one request per run of an experiment."""

    table: DynamoTable

    def _search_runs(
        self, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
    ):
        validate_max_results(max_results, allow_null=True)
        stages = set(LifecycleStage.view_type_to_stages(run_view_type or ViewType.ACTIVE_ONLY))
        query = parse_run_query(filter_string, order_by)
        # not bound to the experiment ids: the gateway narrows them to what the caller may read
        search = [filter_string, run_view_type, list(order_by or [])]
        offset = page_offset(page_token, "runs", search)
        experiments = list(dict.fromkeys(str(i) for i in _parse_experiment_ids(experiment_ids)))
        ascending = query.start_time_ascending()
        if max_results is not None and ascending is not None:
            page, total = self._in_start_order(
                experiments, query, stages, ascending, offset, max_results
            )
        else:
            page, total = self._gathered(experiments, query, stages, offset, max_results)
        datasets = self._datasets_for(page)
        runs = [run_to_entity(run, datasets, with_model_inputs=False) for run in page]
        return runs, next_page_token("runs", offset, max_results, total, search)

    # ---- start time first ---------------------------------------------------------------

    def _in_start_order(self, experiments, query: RunQuery, stages, ascending, offset, size):
        # Descending, run order is the full order when nothing else is ordered on.
        exact = not ascending and len(query.orders) <= 1
        position = start_time_position(ascending, with_run_id=exact)
        count = offset + size
        streams = [
            self._matching(experiment_id, query, stages, ascending, count + 1)
            for experiment_id in experiments
        ]
        found, more = first_runs(heapq.merge(*streams, key=position), count, position)
        return query.sort(found)[offset : offset + size], len(found) + more

    def _matching(self, experiment_id, query: RunQuery, stages, ascending, need) -> Iterator:
        """The runs of one experiment that match, in start-time order, lazily."""
        driver = choose_driver(query)
        if driver is None:
            bounds = start_time_bounds(query.clauses)
            runs = in_order(
                self.table, experiment_id, ascending=ascending, bounds=bounds, runs=need
            )
            yield from (r for r in runs if r["lifecycle_stage"] in stages and query.matches(r))
            return
        candidates = Candidates(self.table, experiment_id, self._locators, query)
        chunk, size = [], need
        for candidate in candidates.positions(driver, ascending, need):
            chunk.append(candidate)
            if len(chunk) >= size:
                yield from self._checked(experiment_id, chunk, query, stages)
                chunk, size = [], size * 2
        yield from self._checked(experiment_id, chunk, query, stages)

    def _checked(self, experiment_id, positions: list[str], query: RunQuery, stages) -> Iterator:
        runs = fetch(self.table, experiment_id, positions) if positions else {}
        for candidate in positions:
            run = runs.get(candidate)
            if run is not None and run["lifecycle_stage"] in stages and query.matches(run):
                yield run

    # ---- any other order ----------------------------------------------------------------

    def _gathered(self, experiments, query: RunQuery, stages, offset, size):
        runs = [run for e in experiments for run in self._gather(e, query)]
        matching = [r for r in runs if r["lifecycle_stage"] in stages and query.matches(r)]
        ordered = query.sort(matching)
        page = ordered[offset : None if size is None else offset + size]
        return self._whole(page), len(ordered)

    def _gather(self, experiment_id: str, query: RunQuery) -> list[dict]:
        """Every run that may match, whole or with what the filter and order read."""
        if _reads_whole_runs(query):
            return list(in_order(self.table, experiment_id, consistent=False, runs=1000))
        driver = choose_driver(query)
        candidates = None
        if driver is not None and driver.kind != METRICS:  # metrics: gathered below anyway
            found = Candidates(self.table, experiment_id, self._locators, query).all(driver)
            if len(found) <= GATHER_FETCH:
                return list(fetch(self.table, experiment_id, found).values())
            candidates = set(found)
        runs = {run["pos"]: run for run in status_column(self.table, experiment_id)}
        if candidates is not None:
            runs = {pos: run for pos, run in runs.items() if pos in candidates}
        for kind, key in _columns(query):
            self._gather_column(experiment_id, kind, key, runs)
        if any(c.kind == "metric" for c in query.clauses) or any(
            o.kind == "metric" for o in query.orders
        ):
            self._gather_metrics(experiment_id, runs)
        for run in runs.values():
            run["partial"] = True
        return list(runs.values())

    def _gather_column(self, experiment_id: str, kind: str, key: str, runs: dict) -> None:
        truncated = []
        for entry in column(self.table, experiment_id, kind, key):
            run = runs.get(position_of(entry["sk"]))
            if run is None:
                continue
            value, complete = entry_value(entry)
            if not complete:
                truncated.append((entry["pk"], entry["sk"]))
            _place(run, kind, key, value)
        for item in self.table.batch_get(truncated, consistent=False):
            run = runs.get(position_of(item["sk"]))
            if run is not None:
                _place(run, kind, key, item["v"])

    def _gather_metrics(self, experiment_id: str, runs: dict) -> None:
        buckets = self.table.query(metrics_partition(experiment_id))
        for position, latest in latest_by_position(buckets).items():
            run = runs.get(position)
            if run is not None:
                run["metrics"] = {k: latest_attribute(e) for k, e in latest.items()}

    def _whole(self, page: list[dict]) -> list[dict]:
        """The page's runs whole (gathered ones are read, by experiment)."""
        wanted: dict[str, list[str]] = {}
        for run in page:
            if run.get("partial"):
                wanted.setdefault(run["experiment_id"], []).append(run["pos"])
        read = {}
        for experiment_id, positions in wanted.items():
            read.update(fetch(self.table, experiment_id, positions))
        return [read.get(r["pos"]) if r.get("partial") else r for r in page if _present(r, read)]


def _present(run: dict, read: dict) -> bool:
    return not run.get("partial") or run["pos"] in read


def _reads_whole_runs(query: RunQuery) -> bool:
    named = [(c.kind, c.key) for c in query.clauses] + [(o.kind, o.key) for o in query.orders]
    return any(
        kind == "dataset" or (kind == "attribute" and key in _WHOLE_RUN_ATTRIBUTES)
        for kind, key in named
    )


def _columns(query: RunQuery) -> list[tuple[str, str]]:
    """The index columns a gathered search reads: params and tags named, the run name."""
    columns = []
    named = [(c.kind, c.key, True) for c in query.clauses]
    named += [(o.kind, o.key, False) for o in query.orders]
    for kind, key, filtering in named:
        if kind == "parameter":
            columns.append((PARAM, key))
        elif kind == "tag":
            columns.append((TAG, key))
        elif kind == "attribute" and key == "run_name":
            columns.append((TAG, MLFLOW_RUN_NAME))
            if not filtering:  # orders read the run's name, kept when its tag was deleted
                columns.append((ATTRIBUTE, HIDDEN_NAME_COLUMN))
    return list(dict.fromkeys(columns))


def _place(run: dict, kind: str, key: str, value: str) -> None:
    if kind == PARAM:
        run["params"][key] = value
    elif kind == TAG:
        run["tags"][key] = value
        if key == MLFLOW_RUN_NAME:
            run["name"] = value
    else:
        run["name"] = value
