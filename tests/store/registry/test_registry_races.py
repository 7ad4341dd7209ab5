"""Concurrent registry writers against a real DynamoDB server process (dynalite)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from mlflow.exceptions import MlflowException

from store.registry import DynamoRegistryStore

_TIMEOUT_S = 120


def in_parallel(*tasks) -> list[tuple[str, object]]:
    """Run the tasks together from one barrier; each gives ("ok", result) or ("error", code)."""
    barrier = threading.Barrier(len(tasks))

    def start(task):
        barrier.wait()
        try:
            return ("ok", task())
        except MlflowException as exc:
            return ("error", exc.error_code)

    with ThreadPoolExecutor(len(tasks)) as pool:
        futures = [pool.submit(start, task) for task in tasks]
        return [future.result(timeout=_TIMEOUT_S) for future in futures]


def versions_of(reg: DynamoRegistryStore, name: str) -> list[int]:
    found = reg.search_model_versions(f"name = '{name}'", max_results=1000)
    return sorted(int(mv.version) for mv in found)


def test_parallel_version_creation_numbers_densely(live_reg):
    live_reg.create_registered_model("dense")
    results = in_parallel(*[lambda: live_reg.create_model_version("dense", "s3://b/m")] * 20)
    assert [outcome for outcome, _ in results] == ["ok"] * 20
    assert sorted(int(mv.version) for _, mv in results) == list(range(1, 21))
    assert versions_of(live_reg, "dense") == list(range(1, 21))
    latest = live_reg.get_latest_versions("dense", ["None"])
    assert [int(mv.version) for mv in latest] == [20]


def test_parallel_model_creation_on_one_name_has_one_winner(live_reg):
    results = in_parallel(*[lambda: live_reg.create_registered_model("contested")] * 8)
    assert sorted(outcome for outcome, _ in results) == ["error"] * 7 + ["ok"]
    assert {value for outcome, value in results if outcome == "error"} == {
        "RESOURCE_ALREADY_EXISTS"
    }
    found = live_reg.search_registered_models("name = 'contested'")
    assert [m.name for m in found] == ["contested"]


def test_parallel_alias_settings_end_on_one_version_everywhere(live_reg):
    live_reg.create_registered_model("aliased")
    for _ in range(8):
        live_reg.create_model_version("aliased", "s3://b/m")
    results = in_parallel(
        *[
            lambda v=v: live_reg.set_registered_model_alias("aliased", "champion", v)
            for v in range(1, 9)
        ]
    )
    assert [outcome for outcome, _ in results] == ["ok"] * 8
    by_alias = live_reg.get_model_version_by_alias("aliased", "champion")
    model = live_reg.get_registered_model("aliased")
    assert model.aliases == {"champion": by_alias.version}
    holders = [
        v for v in range(1, 9) if live_reg.get_model_version("aliased", v).aliases == ["champion"]
    ]
    assert holders == [int(by_alias.version)]


def test_rename_racing_version_creation_orphans_no_version(live_reg):
    live_reg.create_registered_model("before")
    live_reg.create_model_version("before", "s3://b/m")
    creations = [lambda: live_reg.create_model_version("before", "s3://b/m")] * 8
    results = in_parallel(lambda: live_reg.rename_registered_model("before", "after"), *creations)
    assert results[0][0] == "ok"
    created = [value for outcome, value in results[1:] if outcome == "ok"]
    refused = [value for outcome, value in results[1:] if outcome == "error"]
    assert set(refused) <= {"RESOURCE_DOES_NOT_EXIST"}
    # Every version is under the final name, the acknowledged ones included, with no gap.
    assert versions_of(live_reg, "after") == list(range(1, len(created) + 2))
    assert {int(mv.version) for mv in created} <= set(versions_of(live_reg, "after"))
    assert [m.name for m in live_reg.search_registered_models()] == ["after"]
    [latest] = live_reg.get_latest_versions("after", ["None"])
    assert int(latest.version) == len(created) + 1


def test_parallel_renames_onto_one_name_have_one_winner(live_reg):
    for name in ("a", "b", "c", "d"):
        live_reg.create_registered_model(name)
        live_reg.create_model_version(name, f"s3://b/{name}")
    results = in_parallel(
        *[lambda n=n: live_reg.rename_registered_model(n, "target") for n in ("a", "b", "c", "d")]
    )
    winners = [value.name for outcome, value in results if outcome == "ok"]
    assert winners == ["target"]
    assert (
        sorted(value for outcome, value in results if outcome == "error")
        == ["RESOURCE_ALREADY_EXISTS"] * 3
    )
    names = sorted(m.name for m in live_reg.search_registered_models())
    assert len(names) == 4 and names.count("target") == 1
    for name in names:
        assert versions_of(live_reg, name) == [1]


def test_parallel_renames_of_one_model_leave_one_name(live_reg):
    live_reg.create_registered_model("origin")
    live_reg.create_model_version("origin", "s3://b/m")
    results = in_parallel(
        *[lambda n=n: live_reg.rename_registered_model("origin", f"to-{n}") for n in range(4)]
    )
    assert sum(outcome == "ok" for outcome, _ in results) >= 1
    assert {value for outcome, value in results if outcome == "error"} <= {
        "RESOURCE_DOES_NOT_EXIST"
    }
    names = [m.name for m in live_reg.search_registered_models()]
    assert len(names) == 1
    assert versions_of(live_reg, names[0]) == [1]
