"""The store's answers about ownership, on items written by the real stores.

Every resource is created through the tracking and registry stores (on moto, and on dynalite
for the real server) and every answer read back through `Ownership`, so a change of the item
layout that the answers do not follow fails here, not as a denial in the gateway.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from test_traces_support import new_trace_id, trace_info

from store.handler.identity import Principal, bind_principal
from store.keys import run_version_key
from store.ownership import Ownership, artifact_proxy_path, runs_source
from store.registry import DynamoRegistryStore
from store.tracking import DynamoTrackingStore
from store.vocabulary import EXPERIMENT, REGISTERED_MODEL

ALICE = Principal(subject="dev:alice", username="alice", groups=("vision",))
ARTIFACT_ROOT = "mlflow-artifacts:/"  # as the handler tier serves artifacts


@dataclass
class Stores:
    tracking: DynamoTrackingStore
    registry: DynamoRegistryStore
    ownership: Ownership

    def run(self, experiment_id: str) -> str:
        return self.tracking.create_run(experiment_id, "alice", 0, [], "r").info.run_id

    def reads(self, call, *args, **kwargs):
        """The answer of one Ownership call and the reads it counted."""
        before = self.ownership.reads
        answer = call(*args, **kwargs)
        return answer, self.ownership.reads - before


def _stores(uri: str) -> Stores:
    tracking = DynamoTrackingStore(uri, ARTIFACT_ROOT)
    tracking.table.parallel_writes = 1  # moto is not thread-safe
    registry = DynamoRegistryStore(uri)
    return Stores(tracking, registry, Ownership(registry.table))


@pytest.fixture(params=["moto", "dynalite"])
def stores(request, monkeypatch: pytest.MonkeyPatch) -> Stores:
    table = f"own{uuid.uuid4().hex[:10]}"
    if request.param == "moto":
        request.getfixturevalue("aws_env")
        uri = f"dynamodb://us-east-1/{table}"
    else:
        endpoint = request.getfixturevalue("dynalite_endpoint")
        uri = f"dynamodb://{endpoint.removeprefix('http://')}/{table}"
    # runs:/ and models:/ sources are resolved through MLflow's client, on this table
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return _stores(uri)


# ---- owners --------------------------------------------------------------------------------


def test_owners_of_runs_traces_and_logged_models(stores):
    experiment_id = stores.tracking.create_experiment("owners")
    run_id = stores.run(experiment_id)
    trace_id = new_trace_id()
    stores.tracking.start_trace(trace_info(trace_id, experiment_id))
    model_id = stores.tracking.create_logged_model(experiment_id).model_id
    own = stores.ownership

    assert stores.reads(own.experiment_of_run, run_id) == (experiment_id, 1)
    assert stores.reads(own.experiment_of_trace, trace_id) == (experiment_id, 1)
    assert stores.reads(own.experiment_of_logged_model, model_id) == (experiment_id, 1)
    assert stores.reads(own.experiment_id_by_name, "owners") == (experiment_id, 1)
    assert own.experiment_of_run("no-such-run") is None
    assert own.experiment_of_trace("tr-missing") is None
    assert own.experiment_of_logged_model("m-missing") is None
    assert own.experiment_id_by_name("nobody's") is None


def test_a_deleted_trace_keeps_its_experiment(stores):
    experiment_id = stores.tracking.create_experiment("traces")
    trace_id = new_trace_id()
    stores.tracking.start_trace(trace_info(trace_id, experiment_id))
    stores.tracking.delete_traces(experiment_id, trace_ids=[trace_id])
    assert stores.ownership.experiment_of_trace(trace_id) == experiment_id


def test_a_renamed_experiment_is_found_by_its_new_name(stores):
    experiment_id = stores.tracking.create_experiment("before")
    stores.tracking.rename_experiment(experiment_id, "after")
    assert stores.ownership.experiment_id_by_name("after") == experiment_id


# ---- bindings --------------------------------------------------------------------------------


def test_bindings_written_at_creation(stores):
    with bind_principal(ALICE):
        experiment_id = stores.tracking.create_experiment("bound")
        stores.registry.create_registered_model("churn")
    experiment, reads = stores.reads(stores.ownership.bindings, EXPERIMENT, experiment_id)
    assert reads == 1
    assert experiment.users == {"dev:alice": "manager"}
    assert experiment.groups == {"vision": "editor"}
    assert experiment.private is False
    model = stores.ownership.bindings(REGISTERED_MODEL, "churn")
    assert (model.users, model.groups) == ({"dev:alice": "manager"}, {"vision": "reader"})
    assert stores.ownership.bindings(EXPERIMENT, "424242") is None
    assert stores.ownership.bindings(REGISTERED_MODEL, "nope") is None


def test_bindings_follow_a_model_rename(stores):
    with bind_principal(ALICE):
        stores.registry.create_registered_model("old")
    stores.registry.rename_registered_model("old", "new")
    assert stores.ownership.bindings(REGISTERED_MODEL, "old") is None
    assert stores.ownership.bindings(REGISTERED_MODEL, "new").users == {"dev:alice": "manager"}


# ---- registry facts --------------------------------------------------------------------------


def test_model_version_facts(stores):
    experiment_id = stores.tracking.create_experiment("facts")
    run_id = stores.run(experiment_id)
    model_id = stores.tracking.create_logged_model(experiment_id).model_id
    stores.registry.create_registered_model("churn")
    stores.registry.create_model_version("churn", "s3://b/one", run_id=run_id)
    stores.registry.create_model_version("churn", "s3://b/two", run_id=run_id, model_id=model_id)
    stores.registry.transition_model_version_stage("churn", 2, "Production", False)
    stores.registry.set_registered_model_alias("churn", "champion", 2)

    facts, reads = stores.reads(stores.ownership.model_version, "churn", 2)
    assert reads == 2
    assert (facts.name, facts.version, facts.stage) == ("churn", 2, "Production")
    assert (facts.aliases, facts.model_id, facts.source) == (("champion",), model_id, "s3://b/two")
    assert facts.live
    assert stores.ownership.model_version("churn", 1).aliases == ()
    assert stores.ownership.model_version("churn", 3) is None
    assert stores.ownership.model_version("nope", 1) is None

    model = stores.ownership.registered_model("churn")
    assert model.aliases == {"champion": 2}
    assert stores.ownership.versions_in_stage(model, "Production") == ("2",)
    assert stores.ownership.versions_in_stage(model, "None") == ("1",)

    stores.registry.delete_model_version("churn", 1)
    deleted = stores.ownership.model_version("churn", 1)
    assert deleted is not None and not deleted.live


# ---- the logged model's registered versions --------------------------------------------------


def test_logged_model_names_only_the_versions_registered_from_it(stores):
    experiment_id = stores.tracking.create_experiment("lm")
    run_id = stores.run(experiment_id)
    mine = stores.tracking.create_logged_model(experiment_id).model_id
    other = stores.tracking.create_logged_model(experiment_id).model_id
    for name in ("real", "forged", "gone"):
        stores.registry.create_registered_model(name)
    stores.registry.create_model_version("real", "s3://b/m", run_id=run_id, model_id=mine)
    stores.registry.create_model_version("forged", "s3://b/o", run_id=run_id, model_id=other)
    stores.registry.create_model_version("gone", "s3://b/g", run_id=run_id, model_id=mine)
    stores.registry.delete_model_version("gone", 1)
    # the tag is the client's to write: it may name anything
    claimed = [{"name": n, "version": "1"} for n in ("real", "forged", "gone", "missing")]
    stores.tracking.set_logged_model_tags(mine, [_tag("mlflow.modelVersions", claimed)])

    facts = stores.ownership.logged_model(mine)
    assert (facts.model_id, facts.experiment_id) == (mine, experiment_id)
    assert facts.registered_as == ("real",)
    assert stores.ownership.logged_model("m-missing") is None


def test_logged_model_with_an_unreadable_tag_names_nothing(stores):
    experiment_id = stores.tracking.create_experiment("lm-bad")
    model_id = stores.tracking.create_logged_model(experiment_id).model_id
    stores.tracking.set_logged_model_tags(model_id, [_tag("mlflow.modelVersions", "{not json")])
    assert stores.ownership.logged_model(model_id).registered_as == ()


# ---- versions registered from a run ------------------------------------------------------------


def test_versions_from_a_run_without_a_scan(stores):
    experiment_id = stores.tracking.create_experiment("from-run")
    run_id = stores.run(experiment_id)
    other_run = stores.run(experiment_id)
    stores.registry.create_registered_model("churn")
    stores.registry.create_registered_model("other")
    stores.registry.create_model_version("churn", f"runs:/{run_id}/model", run_id=run_id)
    stores.registry.create_model_version("churn", f"runs:/{run_id}/better", run_id=run_id)
    stores.registry.create_model_version("other", f"runs:/{other_run}/model", run_id=other_run)
    stores.registry.create_model_version("other", "s3://b/m", run_id=run_id)  # not its files

    found, reads = stores.reads(stores.ownership.versions_from_run, run_id)
    assert reads == 1 + 1 + 2  # the run's entries, the model once, each version
    assert [(v.name, v.version, v.source) for v in found] == [
        ("churn", 1, f"runs:/{run_id}/model"),
        ("churn", 2, f"runs:/{run_id}/better"),
    ]
    assert found[0].proxy_path == f"{experiment_id}/{run_id}/artifacts/model"
    assert stores.registry.get_model_version_download_uri("churn", 1) == found[0].storage_location

    under = f"{experiment_id}/{run_id}/artifacts/model/MLmodel"
    assert [v.version for v in stores.ownership.versions_from_run(run_id, under)] == [1]
    assert (
        stores.ownership.versions_from_run(run_id, f"{experiment_id}/{run_id}/artifacts/mod") == ()
    )
    assert stores.ownership.versions_from_run(run_id, f"{experiment_id}/{run_id}/artifacts") == ()
    assert stores.ownership.versions_from_run("no-such-run") == ()


def test_versions_from_a_run_follow_rename_and_deletes(stores):
    experiment_id = stores.tracking.create_experiment("lifecycle")
    run_id = stores.run(experiment_id)
    stores.registry.create_registered_model("old")
    for _ in range(3):
        stores.registry.create_model_version("old", f"runs:/{run_id}/model", run_id=run_id)
    stores.registry.rename_registered_model("old", "new")
    stores.registry.create_registered_model("old")  # a new model takes the old name
    stores.registry.create_model_version("old", "s3://b/unrelated")
    assert [(v.name, v.version) for v in stores.ownership.versions_from_run(run_id)] == [
        ("new", 1),
        ("new", 2),
        ("new", 3),
    ]

    stores.registry.delete_model_version("new", 2)
    assert [v.version for v in stores.ownership.versions_from_run(run_id)] == [1, 3]

    stores.registry.delete_registered_model("new")
    assert stores.ownership.versions_from_run(run_id) == ()
    remaining = list(stores.registry.table.query(run_version_key(run_id, "-", 0)[0]))
    assert [i["version"] for i in remaining] == [2]  # the deleted version's entry is ignored


def test_a_forged_entry_under_a_run_gains_nothing(stores):
    experiment_id = stores.tracking.create_experiment("forged")
    run_id = stores.run(experiment_id)
    victim_run = stores.run(experiment_id)
    stores.registry.create_registered_model("churn")
    stores.registry.create_model_version("churn", f"runs:/{victim_run}/model", run_id=victim_run)
    rid = stores.ownership.registered_model("churn").rid
    pk, sk = run_version_key(run_id, rid, 1)  # claims version 1, registered from another run
    stores.registry.table.put(
        {"pk": pk, "sk": sk, "name": "churn", "rid": rid, "version": 1,
         "storage_location": f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"}
    )  # fmt: skip
    pk, sk = run_version_key(run_id, "another-rid", 1)
    stores.registry.table.put(
        {"pk": pk, "sk": sk, "name": "churn", "rid": "another-rid", "version": 1}
    )
    assert stores.ownership.versions_from_run(run_id) == ()
    assert [v.version for v in stores.ownership.versions_from_run(victim_run)] == [1]


def test_an_entry_left_for_another_path_of_the_same_run_gains_nothing(stores):
    experiment_id = stores.tracking.create_experiment("stale")
    run_id = stores.run(experiment_id)
    stores.registry.create_registered_model("churn")
    stores.registry.create_model_version("churn", f"runs:/{run_id}/better", run_id=run_id)
    rid = stores.ownership.registered_model("churn").rid
    pk, sk = run_version_key(run_id, rid, 1)  # as left by a creation that lost number 1
    where = f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts/model"
    stores.registry.table.put(
        {"pk": pk, "sk": sk, "name": "churn", "rid": rid, "version": 1, "storage_location": where}
    )
    under = f"{experiment_id}/{run_id}/artifacts/model/MLmodel"
    assert stores.ownership.versions_from_run(run_id, under) == ()


def test_registering_from_a_run_writes_one_entry_more(stores):
    experiment_id = stores.tracking.create_experiment("trips")
    run_id = stores.run(experiment_id)
    stores.registry.create_registered_model("churn")
    table = stores.registry.table
    table.round_trips.reset()
    stores.registry.create_model_version("churn", "s3://b/m", run_id=run_id)
    assert table.round_trips.by_operation() == {"GetItem": 1, "PutItem": 1, "UpdateItem": 1}
    table.round_trips.reset()
    stores.registry.create_model_version("churn", f"runs:/{run_id}/m", run_id=run_id)
    written = table.round_trips.by_operation()  # the run is read too, to resolve the source
    assert (written["UpdateItem"], written["PutItem"]) == (1, 2)


# ---- source parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("runs:/abc/model", ("abc", "model")),
        ("runs:/abc/model/sub/", ("abc", "model/sub/")),
        ("runs:/abc", ("abc", "")),
        ("RUNS:/abc/m", ("abc", "m")),
        ("runs://profile@databricks/abc/m", None),  # another tracking server's run
        ("runs:abc/m", None),
        ("runs:/", None),
        ("models:/churn/1", None),
        ("s3://b/abc/m", None),
    ],
)
def test_runs_sources_are_read_as_mlflow_reads_them(source, expected):
    from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

    assert runs_source(source) == expected
    if expected is not None:
        run_id, path = RunsArtifactRepository.parse_runs_uri(source)
        assert (run_id, path or "") == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mlflow-artifacts:/1/r/artifacts/model", "1/r/artifacts/model"),
        ("mlflow-artifacts://host:5000/1/r/artifacts/model/", "1/r/artifacts/model"),
        ("mlflow-artifacts:/1/r/artifacts/../../2", None),
        ("mlflow-artifacts:/1//r", None),
        ("mlflow-artifacts:/", None),
        ("s3://bucket/1/r/artifacts/model", None),
        ("/tmp/artifacts/1/r", None),
    ],
)
def test_artifact_proxy_paths(uri, expected):
    assert artifact_proxy_path(uri) == expected


def _tag(key: str, value) -> object:
    from mlflow.entities import LoggedModelTag

    return LoggedModelTag(key, value if isinstance(value, str) else json.dumps(value))


def test_an_interrupted_rename_repeated_renames_the_entries_under_runs(stores):
    from fault_support import RequestFaults, fails_unavailable, requests_of

    experiment_id = stores.tracking.create_experiment("interrupted")
    run_id = stores.run(experiment_id)
    faults = RequestFaults(stores.registry.table)

    def model(name: str) -> None:
        stores.registry.create_registered_model(name)
        for _ in range(2):
            stores.registry.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)

    model("probe")
    sent = requests_of(faults, lambda: stores.registry.rename_registered_model("probe", "probed"))
    for fail_at in range(1, len(sent) + 1):
        old, new = f"old-{fail_at}", f"new-{fail_at}"
        model(old)
        fails_unavailable(
            faults, fail_at, lambda o=old, n=new: stores.registry.rename_registered_model(o, n)
        )
        stores.registry.rename_registered_model(old, new)  # the client's retry
        mine = {
            (v.name, v.version)
            for v in stores.ownership.versions_from_run(run_id)
            if v.name.endswith(f"-{fail_at}")
        }
        assert mine == {(new, 1), (new, 2)}, fail_at


def test_a_version_from_a_run_failing_at_any_request_is_never_without_its_entry(stores):
    from fault_support import RequestFaults, fails_unavailable, requests_of

    experiment_id = stores.tracking.create_experiment("entries")
    run_id = stores.run(experiment_id)
    faults = RequestFaults(stores.registry.table)
    source = f"runs:/{run_id}/model"
    stores.registry.create_registered_model("probe")
    probe = lambda: stores.registry.create_model_version("probe", source, run_id=run_id)  # noqa: E731
    probe()  # the run's location is remembered after the first
    sent = requests_of(faults, probe)
    for fail_at in range(1, len(sent) + 1):
        name = f"model-{fail_at}"
        stores.registry.create_registered_model(name)
        create = lambda n=name: stores.registry.create_model_version(n, source, run_id=run_id)  # noqa: E731
        fails_unavailable(faults, fail_at, create)
        create()  # the client's retry
        listed = stores.registry.search_model_versions(f"name = '{name}'", max_results=100)
        entries = {v.version for v in stores.ownership.versions_from_run(run_id) if v.name == name}
        assert {int(v.version) for v in listed} == entries, fail_at
