"""`simulate request` and the running gateway decide every route of the table alike.

Every row of the one route table (MLflow's and the gateway's own) gives requests generated from
the row: naming resources that exist, naming resources that do not, and, for the rows that read
artifacts, a file of a model version registered from `runs:/`, a file beside it in the same run,
and a file of a logged model a version was registered from. Each request is sent to a gateway
(dev tokens, a local DynamoDB, a stand-in handler tier that records what reaches it) by a
reader, an editor, a manager, an outsider, an administrator and a reader of the registered
model only, and decided by the simulator with a bindings file and with the table. Everything
the gateway decides on is created through the real stores.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.app import create_app
from gateway.authn.principal import DEV_TAG, principal_id
from gateway.authz.policies import load_policies
from gateway.devidp.provider import subject_for
from gateway.routing import all_routes, match_route
from gateway.routing.model import ANSWER, OPEN, PERMISSIONS, Route
from gateway.simulate.bindings import load_bindings
from gateway.simulate.request import RequestResult, simulate_request
from gateway.simulate.sources import FileSource, TableSource
from store.vocabulary import ARTIFACT_PATH, DATASET

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "gateway"))
from gw_support import (  # noqa: E402
    EchoUpstream,
    ServerThread,
    free_port,
    gateway_config,
    table_on,
)
from sample_requests import ANSWERED_STATUS, Ids, Sample, build  # noqa: E402

ADMINS = ("admins",)
PROBE = "x-simulate-probe"
CALLERS = {  # user → groups; their roles are bound below
    "reader": ("team-r",),
    "editor": ("team-e",),
    "manager": ("team-m",),
    "outsider": ("team-o",),
    "admin": ADMINS,
    "model-reader": ("team-mr",),
}
OWN_ROLES = {"reader": "reader", "editor": "editor", "manager": "manager"}
MODEL_ROLES = OWN_ROLES | {"model-reader": "reader"}
_CLIENTS = threading.local()


def pid(user: str) -> str:
    return principal_id(DEV_TAG, subject_for(user))


@dataclass(frozen=True)
class World:
    url: str
    idp: object
    echo: EchoUpstream
    bundle: object
    file_source: FileSource
    table_source: TableSource
    own: Ids
    other: Ids
    missing: Ids


@pytest.fixture(scope="module")
def world(dynalite_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("route-agreement")
    uri = table_on(dynalite_endpoint, f"agreement{uuid.uuid4().hex[:8]}")
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri  # the registry resolves runs:/ sources through it
    try:
        own, own_file = _family(uri, "own", OWN_ROLES, MODEL_ROLES)
        everyone = dict.fromkeys(CALLERS, "editor")
        other, other_file = _family(uri, "open", everyone, everyone)
        shared = _shared_dataset(uri, own, other)  # reads: any experiment; changes: all
        other = replace(other, dataset=shared)
        for family in (own_file, other_file):
            for entry in family["experiments"].values():
                entry["datasets"].append(shared)
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    document = {
        "experiments": own_file["experiments"] | other_file["experiments"],
        "registered_models": own_file["registered_models"] | other_file["registered_models"],
    }
    bindings = root / "bindings.yaml"
    bindings.write_text(yaml.safe_dump(document))
    missing = Ids(
        "999999",
        "no-such-run",
        f"tr-{'f' * 32}",
        "m-none",
        "no-such-name",
        "no-model",
        "d-none",
        "no-scorer",
        "ls-none",
        "iss-none",
        "rq-none",
    )
    echo = EchoUpstream()
    port = free_port()
    with ServerThread(echo.app()) as upstream:
        app = create_app(gateway_config(upstream.url, port, root, uri, admin_groups=ADMINS))
        with ServerThread(app, port) as gateway:
            yield World(
                url=gateway.url,
                idp=app.state.dev_idp,
                echo=echo,
                bundle=load_policies(REPO / "policies"),
                file_source=FileSource(load_bindings(bindings)),
                table_source=TableSource(uri),
                own=own,
                other=other,
                missing=missing,
            )


def _family(uri: str, name: str, roles: dict, model_roles: dict) -> tuple[Ids, dict]:
    """An experiment with a run, a trace and a logged model, and a registered model whose
    version 1 is registered from `runs:/<run>/model` and version 2 from the logged model;
    made through the stores, bound to `roles`; with the same facts as a bindings file."""
    from mlflow.entities import LoggedModelTag
    from mlflow.entities.trace_info import TraceInfo
    from mlflow.entities.trace_location import TraceLocation
    from mlflow.entities.trace_state import TraceState
    from mlflow.genai.label_schemas.label_schemas import InputText

    from store.bindings import BindingStore
    from store.registry import DynamoRegistryStore
    from store.tracking import DynamoTrackingStore

    tracking = DynamoTrackingStore(uri, "mlflow-artifacts:/")
    registry = DynamoRegistryStore(uri)
    experiment_name = f"{name}-{uuid.uuid4().hex[:6]}"
    experiment = tracking.create_experiment(experiment_name)
    run = tracking.create_run(experiment, "seed", 0, [], "seed").info.run_id
    trace = f"tr-{uuid.uuid4().hex}"
    location = TraceLocation.from_experiment_id(experiment)
    tracking.start_trace(TraceInfo(trace, location, 1_700_000_000_000, TraceState.OK))
    logged = tracking.create_logged_model(experiment).model_id
    dataset = tracking.create_dataset(f"{name}-data", experiment_ids=[experiment]).dataset_id
    code = json.dumps({"name": "length", "call_source": "return 1"})
    scorer = tracking.register_scorer(experiment, "length", code).scorer_id
    label_schema = tracking.create_label_schema(
        experiment, name="tone", type="feedback", input=InputText()
    ).schema_id
    issue = tracking.create_issue(experiment, "slow", "too slow").issue_id
    queue = tracking.create_review_queue(
        experiment, name="triage", queue_type="custom", schema_ids=[label_schema]
    ).queue_id
    model = f"{name}-model-{uuid.uuid4().hex[:6]}"
    registry.create_registered_model(model)
    registry.create_model_version(model, f"runs:/{run}/model", run_id=run)
    registry.create_model_version(model, f"models:/{logged}", model_id=logged)
    named = json.dumps([{"name": model, "version": "2"}])
    tracking.set_logged_model_tags(logged, [LoggedModelTag("mlflow.modelVersions", named)])
    grants = BindingStore(tracking.table)
    for user, role in roles.items():
        grants.grant("experiment", experiment, role, user=pid(user))
    for user, role in model_roles.items():
        grants.grant("registered_model", model, role, user=pid(user))
    ids = Ids(
        experiment, run, trace, logged, experiment_name, model, dataset, scorer, label_schema,
        issue, queue,
    )  # fmt: skip
    document = {
        "experiments": {
            experiment: {
                "name": experiment_name,
                "users": {pid(u): r for u, r in roles.items()},
                "runs": [run],
                "traces": [trace],
                "logged_models": [logged],
                "datasets": [dataset],
                "scorers": [scorer],
                "label_schemas": [label_schema],
                "issues": [issue],
                "review_queues": [queue],
            }
        },
        "registered_models": {
            model: {
                "users": {pid(u): r for u, r in model_roles.items()},
                "versions": {"1": {"source": f"runs:/{run}/model"}, "2": {"model_id": logged}},
            }
        },
    }
    return ids, document


def _shared_dataset(uri: str, own: Ids, other: Ids) -> str:
    """A dataset linked to both families' experiments."""
    from store.tracking import DynamoTrackingStore

    tracking = DynamoTrackingStore(uri, "mlflow-artifacts:/")
    experiments = [own.experiment, other.experiment]
    return tracking.create_dataset("shared-data", experiment_ids=experiments).dataset_id


def _reads_artifacts(route: Route) -> bool:
    return any(s.kind == ARTIFACT_PATH or s.source.startswith("artifact:") for s in route.refs)


def _samples(world: World) -> list[Sample]:
    """Requests generated from every row: existing and missing resources, artifact files."""
    own = world.own
    files = [
        f"{own.experiment}/{own.run}/artifacts/model/MLmodel",  # version 1's files
        f"{own.experiment}/{own.run}/artifacts/notes.txt",  # beside them in the run
        f"{own.experiment}/models/{own.logged_model}/artifacts/MLmodel",  # version 2's
    ]
    samples = []
    for route in all_routes():
        variants = [own, world.missing]
        if _reads_artifacts(route):
            variants += [replace(own, artifact_path=path) for path in files]
        if any(spec.kind == DATASET for spec in route.refs):  # linked to both families
            variants.append(replace(own, dataset=world.other.dataset))
        for ids in variants:
            sample = build(route, ids, world.other)
            if sample is not None:
                samples.append(sample)
    return samples


def _send(world: World, sample: Sample, user: str) -> tuple[str, int]:
    probe = uuid.uuid4().hex
    client = getattr(_CLIENTS, "client", None)
    if client is None:  # one pooled client per worker thread
        client = _CLIENTS.client = httpx.Client(timeout=60, trust_env=False)
    token = world.idp.mint(user, CALLERS[user])
    headers = {**sample.headers, "Authorization": f"Bearer {token}", PROBE: probe}
    response = client.request(
        sample.method, world.url + sample.target, headers=headers, content=sample.body
    )
    return probe, response.status_code


def _gateway(world: World, jobs: list[tuple[Sample, str]]) -> list[tuple]:
    """What the gateway did: forwarded, or answered with a status."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        sent = list(pool.map(lambda job: _send(world, *job), jobs))
    forwarded = {v for r in world.echo.received for n, v in r["headers"] if n == PROBE}
    return [("forward",) if probe in forwarded else ("answer", s) for probe, s in sent]


def _simulated(result: RequestResult) -> tuple:
    """What the simulator says the gateway does with the request."""
    verdict = result.verdict
    if verdict.undecided is not None:
        return ("not decided",)
    if verdict.refusal is not None:
        return ("answer", verdict.refusal.status_code)
    if verdict.answered_empty:
        return ("answer", 200)
    if not verdict.allowed:
        return ("answer", 403)
    if verdict.parsed.route.serve == ANSWER:
        return ("answer", ANSWERED_STATUS.get(verdict.parsed.route.action, 200))
    return ("forward",)


def _simulate(world: World, source, sample: Sample, user: str) -> tuple:
    result = simulate_request(
        world.bundle, source, pid(user), CALLERS[user], sample.method, sample.target,
        sample.body, ADMINS, sample.headers,
    )  # fmt: skip
    return _simulated(result)


def test_every_route_of_the_table_is_decided_alike(world):
    samples = _samples(world)
    decided = [s for s in samples if s.route.serve not in (OPEN, PERMISSIONS)]
    jobs = [(sample, user) for sample in decided for user in CALLERS]
    gateway = _gateway(world, jobs)
    differences = []
    for (sample, user), answered in zip(jobs, gateway, strict=True):
        for name, source in (("file", world.file_source), ("table", world.table_source)):
            simulated = _simulate(world, source, sample, user)
            if simulated != answered and not (answered[0] == simulated[0] == "forward"):
                differences.append((name, user, sample.method, sample.target, simulated, answered))
    assert not differences, sorted({d[2:] for d in differences})[:20]
    routes = {(s.route.method, s.route.path) for s in decided}
    table = {(r.method, r.path) for r in all_routes() if r.serve not in (OPEN, PERMISSIONS)}
    assert routes == table  # every row was asked, none was skipped
    outcomes = {answered[0] for answered in gateway}
    assert outcomes == {"forward", "answer"}


def test_the_gateways_own_calls_are_not_decided_by_the_simulator(world):
    own = [s for s in _samples(world) if s.route.serve in (OPEN, PERMISSIONS)]
    assert {s.route.serve for s in own} == {OPEN, PERMISSIONS}
    for sample in own:
        assert _simulate(world, world.file_source, sample, "admin") == ("not decided",)


def _artifact_call(world: World, path: str) -> Sample:
    """A download through the artifact proxy, as MLflow's client makes it."""
    route = match_route("GET", f"/api/2.0/mlflow-artifacts/artifacts/{path}").route
    return build(route, replace(world.own, artifact_path=path), world.other)


def test_a_model_reader_reads_the_versions_files_and_nothing_else_of_the_run(world):
    own = world.own
    version_1 = f"{own.experiment}/{own.run}/artifacts/model/MLmodel"
    beside = f"{own.experiment}/{own.run}/artifacts/notes.txt"
    version_2 = f"{own.experiment}/models/{own.logged_model}/artifacts/MLmodel"
    samples = [_artifact_call(world, p) for p in (version_1, beside, version_2)]
    jobs = [(sample, user) for sample in samples for user in ("model-reader", "outsider")]
    answered = _gateway(world, jobs)
    assert answered == [
        ("forward",), ("answer", 403),  # version 1's files: the model reader only
        ("answer", 403), ("answer", 403),  # the rest of the run: neither
        ("forward",), ("answer", 403),  # version 2's files (a logged model's)
    ]  # fmt: skip
    simulated = [_simulate(world, world.file_source, s, u) for s, u in jobs]
    assert simulated == answered
