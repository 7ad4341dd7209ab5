"""A gateway and the simulator side by side, for the matrix agreement tests.

A real gateway (dev-token authentication, route table, parsing, resolution from a local
DynamoDB, Cedar decisions, audit) runs in front of a recording stand-in for the handler
tier. For every column of the matrix a user holds exactly that standing on its own
experiment (with a run, a trace, a logged model) and its own registered model; the same
facts are given to the simulator as bindings. A call counts as allowed when the gateway
forwards it (or, for the gateway's own calls, answers it).
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.authn.principal import DEV_TAG, principal_id
from gateway.authz.entities import Bindings
from gateway.authz.policies import load_policies
from gateway.devidp.provider import DevIdentityProvider, subject_for
from gateway.routing import match_route
from gateway.routing.model import ANSWER
from gateway.routing.tables.gateway import METRICS_PATH
from gateway.simulate.bindings import BindingsData, VersionFacts
from gateway.simulate.cells import COLUMNS, Column
from gateway.simulate.request import simulate_request
from store.bindings import remember_user
from store.dynamo.table import DynamoTable
from store.handler.identity import Principal
from store.vocabulary import EXPERIMENT, REGISTERED_MODEL

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "gateway"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gw_support import EchoUpstream, ServerThread, free_port, gateway_config  # noqa: E402
from sample_requests import ANSWERED_STATUS, Ids, Sample  # noqa: E402

ADMINS = ("admins",)
METRICS_ROUTE = match_route("GET", METRICS_PATH).route
KNOWN = "known-user"
PROBE = "x-simulate-probe"
_CLIENTS = threading.local()
# trace ids as OTLP makes them (tr-<32 hex>), so that span exports can name them too
OPEN = Ids(
    "900", "run-open", f"tr-{900:032x}", "m-open", "exp-open", "model-open", "d-open", "sc-open",
    "ls-open", "iss-open", "rq-open",
)  # fmt: skip
# Calls the gateway decides differently from the policies alone, and why:
# - GraphQL: the matrix shows the workspace decision; the gateway then decides each root
#   field of a non-administrator's query (gateway/pipeline.py), which `simulate request` does too.
# Each experiment has a dataset linked to it alone, a scorer and a label schema, so that a call
# naming them is decided on that experiment as the matrix shows.


def matrix_columns() -> list[tuple[int, str, Column]]:
    out, seen = [], {}
    for rtype, columns in COLUMNS.items():
        for column in columns:
            key = (rtype, column.key)
            seen.setdefault(key, len(seen) + 1)
            out.append((seen[key], rtype, column))
    return out


def pid(user: str) -> str:
    """The principal id the gateway gives a dev-token user."""
    return principal_id(DEV_TAG, subject_for(user))


def user_of(index: int, column: Column) -> tuple[str, tuple[str, ...]]:
    return f"sim{index}", ADMINS if column.admin else (f"team{index}",)


def ids_of(index: int) -> Ids:
    trace = f"tr-{index:032x}"
    return Ids(
        str(index), f"run{index}", trace, f"m{index}", f"exp{index}", f"model{index}",
        f"d-{index}", f"sc-{index}", f"ls-{index}", f"iss-{index}", f"rq-{index}",
    )  # fmt: skip


def _acl(index: int, column: Column) -> dict:
    user, groups = user_of(index, column)
    users = {pid(user): column.role} if column.role and not column.via_group else {}
    bound = {groups[0]: column.role} if column.role and column.via_group else {}
    return {"users": users, "groups": bound, "private": column.private}


def _seed(table: DynamoTable, data: BindingsData, ids: Ids, acl: dict, everyone: list[str]):
    """The items the gateway's resolver reads, and the same facts as a bindings file."""
    exp, model = ids.experiment, ids.model
    table.put(
        {
            "pk": f"EXP#{exp}",
            "sk": "EXP",
            "experiment_id": exp,
            "name": ids.experiment_name,
            "acl_users": acl["users"],
            "acl_groups": acl["groups"],
            "acl_private": acl["private"],
        }
    )
    table.put({"pk": f"EXPNAME#{ids.experiment_name}", "sk": "EXPNAME", "experiment_id": exp})
    for pk, sk in (
        (f"RUN#{ids.run}", "RUN"),
        (f"TR#{ids.trace}", "INFO"),
        (f"LM#{ids.logged_model}", "LM"),
    ):
        table.put({"pk": pk, "sk": sk, "experiment_id": exp})
    table.put({"pk": f"SCORER#{ids.scorer}", "sk": "META", "experiment_id": exp})
    table.put({"pk": f"LS#{ids.label_schema}", "sk": "LS", "experiment_id": exp})
    table.put({"pk": f"ISSUE#{ids.issue}", "sk": "ISSUE", "experiment_id": exp})
    table.put({"pk": f"RQ#{ids.review_queue}", "sk": "RQ", "experiment_id": exp})
    table.put({"pk": f"EVDS#{ids.dataset}", "sk": "EVDS", "experiments": {exp}})
    data.datasets[ids.dataset] = (exp,)
    table.put(
        {
            "pk": f"RMNAME#{model}",
            "sk": "RM",
            "rid": f"r-{model}",
            "name": model,
            "acl_users": acl["users"],
            "acl_groups": acl["groups"],
        }
    )
    table.put({"pk": f"RM#r-{model}", "sk": f"MV#{1:010d}", "stage": "None"})
    data.resources[(EXPERIMENT, exp)] = Bindings.from_data(EXPERIMENT, exp, acl)
    model_acl = {"users": acl["users"], "groups": acl["groups"]}
    data.resources[(REGISTERED_MODEL, model)] = Bindings.from_data(
        REGISTERED_MODEL, model, model_acl
    )
    for kind, child in (
        ("run", ids.run),
        ("trace", ids.trace),
        ("logged_model", ids.logged_model),
        ("experiment_name", ids.experiment_name),
        ("scorer", ids.scorer),
        ("label_schema", ids.label_schema),
        ("issue", ids.issue),
        ("review_queue", ids.review_queue),
    ):
        data.children[(kind, child)] = (EXPERIMENT, exp)
    data.versions[(model, "1")] = VersionFacts("None")


@pytest.fixture(scope="session")
def world(dynalite_endpoint: str, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("simulate-agreement")
    policies = root / "policies"
    shutil.copytree(REPO / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    store_uri = f"dynamodb://{dynalite_endpoint.removeprefix('http://')}/simulate_agreement"
    table = DynamoTable.from_uri(store_uri)
    table.ensure_table()
    data = BindingsData()
    columns = matrix_columns()
    subjects = [pid(user_of(i, c)[0]) for i, _, c in columns]
    remember_user(table, Principal(pid(KNOWN), KNOWN))  # someone to ask about
    # the `open` experiment and model: everyone may read and edit (other-family references)
    _seed(
        table,
        data,
        OPEN,
        {"users": dict.fromkeys(subjects, "editor"), "groups": {}, "private": False},
        subjects,
    )
    for index, _rtype, column in columns:
        _seed(table, data, ids_of(index), _acl(index, column), subjects)
    echo = EchoUpstream()
    port = free_port()
    with ServerThread(echo.app()) as upstream:
        config = gateway_config(
            upstream.url, port, root, store_uri, policies_dir=policies,
            audit_path=root / "audit.jsonl", admin_groups=ADMINS,
        )  # fmt: skip
        app = create_app(config)
        idp = DevIdentityProvider(root / "devidp", config.dev_issuer)
        with ServerThread(app, port) as gateway:
            yield {
                "url": gateway.url,
                "idp": idp,
                "echo": echo,
                "data": data,
                "bundle": load_policies(policies),
                "columns": columns,
                "audit": root / "audit.jsonl",
                "store_uri": store_uri,
            }


def idless_dataset_search() -> Sample:
    """A dataset search naming no experiment: decided on the workspace, its answer filtered."""
    path = "/api/3.0/mlflow/datasets/search"
    return Sample(match_route("GET", path).route, "GET", path, "", {}, b"")


def idless_issue_search() -> Sample:
    """An issue search naming no experiment: decided on the workspace, its answer filtered."""
    path = "/api/3.0/mlflow/issues/search"
    json_body = {"Content-Type": "application/json"}
    return Sample(match_route("POST", path).route, "POST", path, "", json_body, b"{}")


def special(action: str, ids: Ids) -> Sample | None:
    """Calls that are a second check inside another call, not a route of their own."""
    from sample_requests import all_routes

    def route(method: str, path: str):
        return next(r for r in all_routes() if r.method == method and r.path == path)

    if action == "GetMetrics":  # the gateway's own call: answered, never forwarded
        return Sample(METRICS_ROUTE, "GET", METRICS_ROUTE.path, "", {}, b"")
    if action == "GraphQL":  # a query MLflow can run (an empty one is refused as malformed)
        query = 'query { mlflowGetExperiment(input: {experimentId: "0"}) { experiment { name } } }'
        body = json.dumps({"query": query}).encode()
        headers = {"content-type": "application/json"}
        return Sample(route("POST", "/graphql"), "POST", "/graphql", "", headers, body)
    if action == "SetArtifactLocation":
        body = {"name": f"new-{secrets.token_hex(4)}", "artifact_location": "s3://bucket/x"}
        r = route("POST", "/api/2.0/mlflow/experiments/create")
    elif action == "RegisterExternalSource":
        body = {"name": OPEN.model, "source": "s3://bucket/model"}
        r = route("POST", "/api/2.0/mlflow/model-versions/create")
    elif action in ("GetExperimentPermissions", "GetRegisteredModelPermissions"):
        kind = "experiment" if action.startswith("GetExp") else "registered_model"
        rid = ids.experiment if kind == "experiment" else ids.model
        query = f"resource_type={kind}&resource_id={rid}"
        return Sample(None, "GET", "/api/3.0/cedarflow/permissions/list", query, {}, b"")
    elif action == "GetUserPermissions":  # another user's role on what the caller only edits
        query = f"resource_type=experiment&resource_id={OPEN.experiment}&username={KNOWN}"
        return Sample(None, "GET", "/api/3.0/cedarflow/permissions/effective", query, {}, b"")
    elif action in ("UpdateExperimentPermissions", "UpdateRegisteredModelPermissions"):
        kind = "experiment" if action.startswith("UpdateExp") else "registered_model"
        rid = ids.experiment if kind == "experiment" else ids.model
        body = {
            "resource_type": kind,
            "resource_id": rid,
            "role": "reader",
            "subject": pid("someone-else"),
        }
        return Sample(
            None,
            "POST",
            "/api/3.0/cedarflow/permissions/grant",
            "",
            {"content-type": "application/json"},
            json.dumps(body).encode(),
        )
    else:
        return None
    return Sample(
        r, "POST", r.path, "", {"content-type": "application/json"}, json.dumps(body).encode()
    )


_TOKENS: dict[tuple, str] = {}


def token_of(world, user: str, groups: tuple[str, ...]) -> str:
    key = (user, groups)
    if key not in _TOKENS:
        _TOKENS[key] = world["idp"].mint(user, groups)
    return _TOKENS[key]


def send(world, sample: Sample, user: str, groups: tuple[str, ...]) -> tuple[str, int]:
    """Send one request with a probe header; (probe, status)."""
    probe = uuid.uuid4().hex
    client = getattr(_CLIENTS, "client", None)
    if client is None:  # one pooled client per worker thread
        client = _CLIENTS.client = httpx.Client(timeout=60)
    response = client.request(
        sample.method,
        world["url"] + sample.target,
        headers={
            **sample.headers,
            "Authorization": f"Bearer {token_of(world, user, groups)}",
            PROBE: probe,
        },
        content=sample.body,
    )
    return probe, response.status_code


def gateway_decisions(world, jobs: list[tuple[Sample, str, tuple[str, ...]]]) -> list[bool]:
    """Forwarded to the handler tier (or, for the permissions API, answered) = allowed.

    Each user's calls go one after the other (a call that changes a resource drops its
    cached bindings); different users' calls run side by side.
    """
    lanes: dict[str, list[int]] = {}
    for n, (_sample, user, _groups) in enumerate(jobs):
        lanes.setdefault(user, []).append(n)
    sent: list = [None] * len(jobs)

    def run_lane(indexes: list[int]) -> None:
        for n in indexes:
            sent[n] = send(world, *jobs[n])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(run_lane, lanes.values()))
    forwarded = {
        value
        for request in world["echo"].received
        for name, value in request["headers"]
        if name == PROBE
    }
    out = []
    for (sample, _user_name, _groups), (probe, status) in zip(jobs, sent, strict=True):
        if sample.route is None or sample.route.serve == ANSWER:  # answered by the gateway
            answered = ANSWERED_STATUS.get(sample.route.action, 200) if sample.route else 200
            assert status in (answered, 403), (sample.target, status)
            out.append(status == answered)
        else:
            assert probe in forwarded or status in (200, 403), (sample.target, status)
            out.append(probe in forwarded)
    return out


def simulate(bundle, source, sample, user: str, groups):
    """The simulator's answer to one sampled request, as the gateway would see that caller."""
    return simulate_request(
        bundle,
        source,
        pid(user),
        groups,
        sample.method,
        sample.target,
        sample.body,
        ADMINS,
        sample.headers,
    )
