"""The restore drill: a stack filled through MLflow's client, its table exported with
`cedarflow table export`, imported into a new table with `cedarflow table import`, and a new
stack on that table gives every answer the first one gave: experiments, runs and metric
histories, registered models with versions and aliases, traces, role bindings and the
permission decisions they make. Only the API is compared, never the files."""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType
from traces_support import export_json, new_otel_id, span_json, span_names, start_trace, trace_info

CEDARFLOW = str(Path(sys.executable).parent / "cedarflow")
PERMISSIONS = "/api/3.0/cedarflow/permissions"
ALICE = ("alice-drill", ("vision",))
BOB = ("bob-drill", ("audio",))  # granted reader on the experiment and the model
CAROL = ("carol-drill", ("sales",))  # no grant
MODEL = "drill-model"
T0 = 1_700_000_000_000  # metric timestamps (ms), as a training script would log them


@dataclass(frozen=True)
class World:
    experiment_id: str
    run_ids: tuple[str, ...]
    trace_id: str


def fill(stack, model_dir: Path) -> World:
    for user in (BOB, CAROL):
        with stack.as_user(*user):
            MlflowClient().search_experiments()  # signed in once: they may be named in grants
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    with stack.as_user(*ALICE):
        client = MlflowClient()
        experiment_id = client.create_experiment("drill-vision", tags={"team": "vision"})
        client.set_experiment_tag(experiment_id, "stage", "research")
        run_ids = []
        for number, rate in enumerate(("0.1", "0.01", "0.001")):
            run = client.create_run(experiment_id, run_name=f"lr-{rate}", tags={"lr": rate})
            run_id = run.info.run_id
            client.log_param(run_id, "lr", rate)
            client.log_param(run_id, "epochs", "5")
            for step in range(5):
                client.log_metric(run_id, "loss", 1.0 / (step + 1 + number), T0 + step, step)
                client.log_metric(run_id, "accuracy", 0.5 + step / 10, T0 + step, step)
            client.log_artifacts(run_id, str(model_dir), artifact_path="model")
            client.set_terminated(run_id)
            run_ids.append(run_id)
        client.delete_run(run_ids[2])

        client.create_registered_model(MODEL, tags={"task": "vision"}, description="drill")
        for run_id in run_ids[:2]:
            client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id)
        client.set_registered_model_alias(MODEL, "champion", "2")
        client.set_model_version_tag(MODEL, "1", "validated", "yes")

    otel_id = new_otel_id()
    trace_id = f"tr-{otel_id}"
    with stack.http(*ALICE) as alice:
        spans = [span_json(otel_id, "b1" * 8, "predict", attributes={"input": "an image"})]
        assert export_json(alice, experiment_id, spans).status_code == 200
        assert start_trace(alice, trace_id, experiment_id, preview="a cat").status_code == 200
        for kind, resource_id in (("experiment", experiment_id), ("registered_model", MODEL)):
            grant = {"resource_type": kind, "resource_id": resource_id, "role": "reader"}
            granted = alice.post(f"{PERMISSIONS}/grant", json={**grant, "username": BOB[0]})
            assert granted.status_code == 200, granted.text
    return World(experiment_id, tuple(run_ids), trace_id)


def answers(stack, world: World) -> dict[str, object]:
    """What the API answers about everything `fill` wrote, as plain values."""
    seen: dict[str, object] = {}
    with stack.as_user(*ALICE):
        client = MlflowClient()
        experiment = client.get_experiment(world.experiment_id)
        seen["experiment"] = _experiment(experiment)
        seen["experiment by name"] = _experiment(client.get_experiment_by_name("drill-vision"))
        seen["experiments"] = sorted(
            _experiment(e) for e in client.search_experiments(view_type=ViewType.ALL)
        )
        for run_id in world.run_ids:
            seen[f"run {run_id}"] = client.get_run(run_id).to_dictionary()
            for key in ("loss", "accuracy"):
                history = client.get_metric_history(run_id, key)
                seen[f"{key} of {run_id}"] = sorted((m.step, m.timestamp, m.value) for m in history)
        for name, view in (("active", ViewType.ACTIVE_ONLY), ("deleted", ViewType.DELETED_ONLY)):
            runs = client.search_runs([world.experiment_id], run_view_type=view)
            seen[f"{name} runs"] = sorted(r.info.run_id for r in runs)
        found = client.search_runs([world.experiment_id], "params.lr = '0.01'")
        seen["runs with lr 0.01"] = [r.info.run_id for r in found]
        model = client.get_registered_model(MODEL)
        seen["model"] = (model.name, model.description, model.tags, model.aliases)
        seen["versions"] = sorted(
            (v.version, v.source, v.run_id, v.tags, sorted(v.aliases), v.status)
            for v in client.search_model_versions(f"name = '{MODEL}'")
        )
        seen["champion"] = client.get_model_version_by_alias(MODEL, "champion").version
    with stack.http(*ALICE) as alice:
        seen["trace"] = trace_info(alice, world.trace_id)
        seen["spans"] = span_names(alice, world.trace_id)
        for kind, resource_id in (("experiment", world.experiment_id), ("registered_model", MODEL)):
            target = {"resource_type": kind, "resource_id": resource_id}
            seen[f"bindings of {kind}"] = alice.get(f"{PERMISSIONS}/list", params=target).json()
    reads = {
        "experiment": ("/api/2.0/mlflow/experiments/get", {"experiment_id": world.experiment_id}),
        "run": ("/api/2.0/mlflow/runs/get", {"run_id": world.run_ids[0]}),
        "model": ("/api/2.0/mlflow/registered-models/get", {"name": MODEL}),
    }
    for user in (BOB, CAROL):
        with stack.http(*user) as http:
            for what, (path, params) in reads.items():
                seen[f"{user[0]} reads the {what}"] = http.get(path, params=params).status_code
            seen[f"{user[0]} tags the experiment"] = http.post(
                "/api/2.0/mlflow/experiments/set-experiment-tag",
                json={"experiment_id": world.experiment_id, "key": "by", "value": user[0]},
            ).status_code
    return seen


def _experiment(experiment) -> tuple:
    return (
        experiment.experiment_id,
        experiment.name,
        experiment.artifact_location,
        experiment.lifecycle_stage,
        sorted(experiment.tags.items()),
        experiment.creation_time,
    )


def cedarflow(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([CEDARFLOW, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"cedarflow {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


@pytest.mark.slow
def test_a_table_exported_and_imported_answers_every_call_the_same(
    dynalite_endpoint, start_authz_stack, tmp_path
):
    server = dynalite_endpoint.removeprefix("http://")
    source = f"dynamodb://{server}/drill-source-{uuid.uuid4().hex[:8]}"
    target = f"dynamodb://{server}/drill-restored-{uuid.uuid4().hex[:8]}"
    artifacts = tmp_path / "artifacts"  # the bucket: restored on its own, outside the table
    (tmp_path / "model").mkdir()

    cedarflow("table", "create", "--table", source)
    with start_authz_stack(source, tmp_path / "first", artifacts_dir=artifacts) as first:
        world = fill(first, tmp_path / "model")
        before = answers(first, world)
    # What the drill must prove: data, grants and refusals (else equal answers prove nothing).
    assert before["champion"] == "2" and len(before["versions"]) == 2
    assert len(before[f"loss of {world.run_ids[0]}"]) == 5
    assert before["deleted runs"] == [world.run_ids[2]] and len(before["active runs"]) == 2
    assert before["spans"] == ["predict"]
    assert [before[f"bob-drill reads the {what}"] for what in ("experiment", "run", "model")] == [
        200,
        200,
        200,
    ]
    assert before["bob-drill tags the experiment"] == 403
    assert {before[f"carol-drill reads the {w}"] for w in ("experiment", "run", "model")} == {403}

    exported = cedarflow("table", "export", "--table", source, "--to", str(tmp_path / "export"))
    assert "exported" in exported.stderr
    cedarflow("table", "create", "--table", target)
    imported = cedarflow("table", "import", "--table", target, "--from", str(tmp_path / "export"))
    assert "imported" in imported.stderr
    cedarflow("table", "check", "--table", target)

    with start_authz_stack(target, tmp_path / "second", artifacts_dir=artifacts) as second:
        after = answers(second, world)
    assert after == before
