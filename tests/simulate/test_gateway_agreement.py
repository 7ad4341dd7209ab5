"""The simulator and the running gateway agree on every cell of the roles × calls matrix.

A real gateway (dev-token authentication, route table, parsing, resolution from a local
DynamoDB, Cedar decisions, audit) runs in front of a recording stand-in for the handler
tier. For every column of the matrix a user holds exactly that standing on its own
experiment (with a run, a trace, a logged model) and its own registered model; for every
action one request built from the route table is sent with that user's token. A call
counts as allowed when the gateway forwards it. The same requests go through
`simulate request` with the same bindings, and the matrix's cells are compared as well.
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
from gateway.routing.tables.gateway import METRICS_PATH
from gateway.simulate.bindings import BindingsData, VersionFacts
from gateway.simulate.cells import COLUMNS, Column
from gateway.simulate.matrix import build_matrix
from gateway.simulate.request import simulate_request
from gateway.simulate.sources import FileSource
from store.bindings import remember_user
from store.dynamo.table import DynamoTable
from store.handler.identity import Principal
from store.vocabulary import EXPERIMENT, REGISTERED_MODEL, WORKSPACE

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "gateway"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gw_support import EchoUpstream, ServerThread, free_port, gateway_config  # noqa: E402
from sample_requests import Ids, Sample, build, requests_by_action  # noqa: E402

ADMINS = ("admins",)
METRICS_ROUTE = match_route("GET", METRICS_PATH).route
KNOWN = "known-user"
PROBE = "x-simulate-probe"
_CLIENTS = threading.local()
# trace ids as OTLP makes them (tr-<32 hex>), so that span exports can name them too
OPEN = Ids("900", "run-open", f"tr-{900:032x}", "m-open", "exp-open", "model-open")
# Calls the gateway decides differently from the policies alone, and why:
# - datasets: the gateway cannot resolve a dataset to its experiments, so it denies them;
# - GraphQL: the matrix shows the workspace decision; the gateway then decides each root
#   field of a non-administrator's query (gateway/pipeline.py), which `simulate request` does too.
DATASET_ACTIONS = {
    "AddDatasetToExperiments",
    "DeleteDataset",
    "DeleteDatasetRecords",
    "DeleteDatasetTag",
    "GetDataset",
    "GetDatasetExperimentIds",
    "GetDatasetRecords",
    "RemoveDatasetFromExperiments",
    "SetDatasetTags",
    "UpsertDatasetRecords",
}


def _columns() -> list[tuple[int, str, Column]]:
    out, seen = [], {}
    for rtype, columns in COLUMNS.items():
        for column in columns:
            key = (rtype, column.key)
            seen.setdefault(key, len(seen) + 1)
            out.append((seen[key], rtype, column))
    return out


def _pid(user: str) -> str:
    """The principal id the gateway gives a dev-token user."""
    return principal_id(DEV_TAG, subject_for(user))


def _user(index: int, column: Column) -> tuple[str, tuple[str, ...]]:
    return f"sim{index}", ADMINS if column.admin else (f"team{index}",)


def _ids(index: int) -> Ids:
    trace = f"tr-{index:032x}"
    return Ids(str(index), f"run{index}", trace, f"m{index}", f"exp{index}", f"model{index}")


def _acl(index: int, column: Column) -> dict:
    user, groups = _user(index, column)
    users = {_pid(user): column.role} if column.role and not column.via_group else {}
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
    ):
        data.children[(kind, child)] = (EXPERIMENT, exp)
    data.versions[(model, "1")] = VersionFacts("None")


@pytest.fixture(scope="module")
def world(dynalite_endpoint: str, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("simulate-agreement")
    policies = root / "policies"
    shutil.copytree(REPO / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    store_uri = f"dynamodb://{dynalite_endpoint.removeprefix('http://')}/simulate_agreement"
    table = DynamoTable.from_uri(store_uri)
    table.ensure_table()
    data = BindingsData()
    columns = _columns()
    subjects = [_pid(_user(i, c)[0]) for i, _, c in columns]
    remember_user(table, Principal(_pid(KNOWN), KNOWN))  # someone to ask about
    # the `open` experiment and model: everyone may read and edit (other-family references)
    _seed(
        table,
        data,
        OPEN,
        {"users": dict.fromkeys(subjects, "editor"), "groups": {}, "private": False},
        subjects,
    )
    for index, _rtype, column in columns:
        _seed(table, data, _ids(index), _acl(index, column), subjects)
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


def _special(action: str, ids: Ids) -> Sample | None:
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
            "subject": _pid("someone-else"),
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


def _token(world, user: str, groups: tuple[str, ...]) -> str:
    key = (user, groups)
    if key not in _TOKENS:
        _TOKENS[key] = world["idp"].mint(user, groups)
    return _TOKENS[key]


def _send(world, sample: Sample, user: str, groups: tuple[str, ...]) -> tuple[str, int]:
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
            "Authorization": f"Bearer {_token(world, user, groups)}",
            PROBE: probe,
        },
        content=sample.body,
    )
    return probe, response.status_code


def _gateway_decisions(world, jobs: list[tuple[Sample, str, tuple[str, ...]]]) -> list[bool]:
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
            sent[n] = _send(world, *jobs[n])

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
        if sample.route in (None, METRICS_ROUTE):  # answered by the gateway itself
            assert status in (200, 403), (sample.target, status)
            out.append(status == 200)
        else:
            assert probe in forwarded or status in (200, 403), (sample.target, status)
            out.append(probe in forwarded)
    return out


def test_simulator_and_gateway_agree_on_every_cell(world):
    bundle = world["bundle"]
    matrix = build_matrix(bundle, ADMINS)
    source = FileSource(world["data"])
    cells, jobs = [], []
    for index, rtype, column in world["columns"]:
        ids = _ids(index)
        user, groups = _user(index, column)
        samples = requests_by_action(ids, OPEN)
        for action in matrix.actions[rtype]:
            sample = _special(action, ids) or samples.get(action)
            assert sample is not None, f"no request reaches {action}"
            cells.append((rtype, column, action))
            jobs.append((sample, user, groups))
    decisions = _gateway_decisions(world, jobs)
    against_matrix, differences = [], []
    for (rtype, column, action), (sample, user, groups), gateway in zip(
        cells, jobs, decisions, strict=True
    ):
        if sample.route is not None:
            simulated = _simulate(bundle, source, sample, user, groups).forwarded
            if simulated != gateway:
                differences.append((rtype, column.key, action, "request", simulated, gateway))
        cell = matrix.cells[(rtype, action, column.key)]
        if action in DATASET_ACTIONS or (action == "GraphQL" and not column.admin):
            against_matrix.append((column.key, action, gateway))
        elif cell.allowed != gateway:
            differences.append((rtype, column.key, action, "matrix", cell.outcome, gateway))
    assert not differences, differences[:20]
    assert len(cells) == sum(len(matrix.actions[t]) * len(COLUMNS[t]) for t in matrix.actions)
    # the known exceptions are denials by the gateway, never an allow the matrix lacks
    assert against_matrix and not any(allowed for _, _, allowed in against_matrix)


def test_every_cell_was_audited_with_the_decision_fields_replay_reads(world):
    lines = [json.loads(x) for x in world["audit"].read_text().splitlines() if x]
    decisions = [x for x in lines if x.get("type") == "decision"]
    assert decisions
    needed = {
        "time",
        "request_id",
        "principal",
        "username",
        "groups",
        "action",
        "resource",
        "decided_on",
        "decision",
        "policies",
        "policy_revision",
    }
    assert all(needed <= set(x) for x in decisions)


def test_a_private_group_member_is_denied_by_the_gateway_and_the_simulator(world):
    index, rtype, column = next(
        (i, t, c) for i, t, c in world["columns"] if c.key == "private:group:manager"
    )
    assert rtype == EXPERIMENT and column.via_group
    user, groups = _user(index, column)
    sample = build(
        next(
            r
            for r in __import__("gateway.routing", fromlist=["all_routes"]).all_routes()
            if r.path == "/api/2.0/mlflow/runs/get" and r.method == "GET"
        ),
        _ids(index),
        OPEN,
    )
    assert _gateway_decisions(world, [(sample, user, groups)]) == [False]
    result = simulate_request(
        world["bundle"],
        FileSource(world["data"]),
        _pid(user),
        groups,
        sample.method,
        sample.target,
    )
    assert not result.allowed and "experiment-private" in result.result.decision.policy_ids
    assert WORKSPACE in COLUMNS


def test_replaying_the_gateway_audit_log_finds_what_a_narrowed_policy_flips(world, tmp_path):
    from gateway.simulate.cli import main

    experiment_columns = [(i, c) for i, t, c in world["columns"] if t == EXPERIMENT]
    jobs = []
    for index, column in experiment_columns:
        sample = requests_by_action(_ids(index), OPEN)["LogMetric"]
        jobs.append((sample, *_user(index, column)))
    allowed = _gateway_decisions(world, jobs)
    narrowed = tmp_path / "policies"
    shutil.copytree(world["bundle"].directory, narrowed)
    editor = narrowed / "11_experiment_editor.cedar"
    editor.write_text(editor.read_text().replace('    Action::"LogMetric",\n', ""))
    lines = [json.loads(x) for x in world["audit"].read_text().splitlines() if x]
    expected = {
        x["request_id"]
        for x in lines
        if x.get("type") == "decision"
        and x["action"] == "LogMetric"
        and x["decision"] == "allow"
        and "admins" not in x["groups"]
    }
    assert len(expected) >= sum(allowed) - 1  # every editor-like column, all but the admin

    from gateway.simulate.replay import read_audit, replay
    from gateway.simulate.sources import TableSource

    report = replay(
        read_audit(world["audit"]), load_policies(narrowed), TableSource(world["store_uri"]), ADMINS
    )
    assert {f.line.request_id for f in report.flips} == expected
    assert all(f.line.action == "LogMetric" and not f.now_allowed for f in report.flips)
    code = main(
        [
            "replay",
            str(world["audit"]),
            "--policies",
            str(narrowed),
            "--table",
            world["store_uri"],
            "--admin-groups",
            "admins",
        ]
    )
    assert code == 1
    unchanged = main(
        [
            "replay",
            str(world["audit"]),
            "--policies",
            str(world["bundle"].directory),
            "--table",
            world["store_uri"],
            "--admin-groups",
            "admins",
        ]
    )
    assert unchanged == 0


def test_check_and_request_read_bindings_from_the_live_table(world, capsys):
    from gateway.simulate.cli import main

    index, column = next((i, c) for i, t, c in world["columns"] if c.key == "group:reader")
    user, groups = _user(index, column)
    _gateway_decisions(world, [(requests_by_action(_ids(index), OPEN)["GetRun"], user, groups)])
    table = ["--table", world["store_uri"]]
    # the gateway recorded the user name, so --user may name the user as people know it
    args = ["check", "--user", user, "--groups", groups[0], "--action", "LogMetric"]
    assert main([*args, "--resource", f"run:{_ids(index).run}", *table]) == 1
    out = capsys.readouterr().out
    assert f"{user} is reader through group {groups[0]} on experiment {index}" in out
    assert out.rstrip().count("editors may LogMetric") == 1
    target = f"/api/2.0/mlflow/runs/get?run_id={_ids(index).run}"
    assert main(["request", "--user", user, "--groups", groups[0], *table, "GET", target]) == 0
    assert f"run {_ids(index).run} → Experiment::'{index}': allow" in capsys.readouterr().out


def _graphql_samples(reader: Ids) -> list[Sample]:
    """GraphQL calls naming the reader's resources, the open ones, unknown ones, or refused."""
    from gateway.routing import all_routes

    post = next(r for r in all_routes() if r.method == "POST" and r.path == "/graphql")
    get = next(r for r in all_routes() if r.method == "GET" and r.path == "/graphql")
    run_fields = "{ run { info { runId } } }"
    queries = [
        {"query": f'{{ mlflowGetExperiment(input: {{experimentId: "{reader.experiment}"}}) '
                  "{ experiment { name } } }"},
        {"query": f'{{ mlflowGetRun(input: {{runId: "{reader.run}"}}) {run_fields} }}'},
        {"query": f'{{ a: mlflowGetRun(input: {{runId: "{OPEN.run}"}}) {run_fields} '
                  f'b: mlflowGetRun(input: {{runId: "{reader.run}"}}) {run_fields} }}'},
        {"query": "query Q($ids: [String]) { mlflowSearchRuns(input: {experimentIds: $ids}) "
                  "{ runs { info { runId } } } }",
         "variables": {"ids": [OPEN.experiment, reader.experiment]}},
        {"query": f'{{ mlflowGetRun(input: {{runId: "{OPEN.run}"}}) {run_fields} }}'},
        {"query": '{ mlflowGetRun(input: {runId: "ghost-run"}) { run { info { runId } } } }'},
        {"query": "{ __typename }"},
        {"query": 'mutation { mlflowDeleteRun(input: {runId: "x"}) { __typename } }'},
        {"query": f'{{ mlflowGetRun(input: {{runId: "{OPEN.run}"}}) '
                  "{ run { modelVersions { name } } } }"},
        {"query": "{ mlflowSearchExperiments { __typename } }"},
    ]  # fmt: skip
    headers = {"content-type": "application/json"}
    samples = [
        Sample(post, "POST", "/graphql", "", headers, json.dumps(q).encode()) for q in queries
    ]
    samples.append(Sample(post, "POST", "/graphql", "", headers, b"{not json"))
    query = queries[1]["query"]
    samples.append(Sample(get, "GET", "/graphql", f"query={query}", {}, b""))
    return samples


def test_graphql_is_decided_alike_by_the_gateway_and_the_simulator(world):
    """The same GraphQL bodies for a reader, an outsider and an admin: equal answers."""
    by_key = {c.key: (i, c) for i, t, c in world["columns"] if t == EXPERIMENT}
    index, _ = by_key["reader"]
    reader_ids = _ids(index)
    callers = {
        "reader": _user(index, by_key["reader"][1]),
        "outsider": _user(*by_key["none"]),
        "admin": _user(*by_key["admin"]),
    }
    samples = _graphql_samples(reader_ids)
    jobs = [(sample, *callers[who]) for who in callers for sample in samples]
    statuses: list[int] = []
    probes: list[str] = []
    for sample, user, groups in jobs:  # one by one: the status tells refusal from denial
        probe, status = _send(world, sample, user, groups)
        probes.append(probe)
        statuses.append(status)
    forwarded = {
        value for r in world["echo"].received for name, value in r["headers"] if name == PROBE
    }
    source = FileSource(world["data"])
    gateway, simulated = [], []
    for (sample, user, groups), probe, status in zip(jobs, probes, statuses, strict=True):
        gateway.append((probe in forwarded, status))
        r = _simulate(world["bundle"], source, sample, user, groups)
        status = r.refusal.status_code if r.refusal else (200 if r.forwarded else 403)
        simulated.append((r.forwarded, status))
    differences = [
        (user, sample.target, sample.body[:80], g, s)
        for (sample, user, _), g, s in zip(jobs, gateway, simulated, strict=True)
        if g != s
    ]
    assert not differences, differences
    n = len(samples)
    reader, outsider, admin = (gateway[k * n : (k + 1) * n] for k in range(3))
    # experiment, run, open + own run, search, open run, unknown run, __typename,
    # mutation, nested modelVersions, other root field, bad JSON, GET
    assert [f for f, _ in reader] == [True] * 5 + [False, True] + [False] * 5
    assert [f for f, _ in outsider] == [False] * 4 + [True, False, True] + [False] * 5
    # not checked per field (MLflow answers), but a body MLflow cannot read is refused
    assert [f for f, _ in admin] == [True] * (n - 2) + [False] * 2
    assert [s for _, s in outsider][7:11] == [403, 403, 403, 400]


def test_a_search_narrowed_to_nothing_is_audited_as_a_deny_and_replayed(world, tmp_path):
    from gateway.simulate.replay import read_audit, replay
    from gateway.simulate.sources import TableSource

    by_key = {c.key: (i, c) for i, t, c in world["columns"] if t == EXPERIMENT}
    outsider, _ = _user(*by_key["none"])
    unreadable = [str(by_key["none"][0]), str(by_key["reader"][0])]
    route = next(
        r
        for r in __import__("gateway.routing", fromlist=["all_routes"]).all_routes()
        if r.method == "POST" and r.path == "/api/2.0/mlflow/runs/search"
    )
    headers = {"content-type": "application/json"}

    def search(ids: list[str]) -> Sample:
        body = json.dumps({"experiment_ids": ids}).encode()
        return Sample(route, "POST", route.path, "", headers, body)

    groups = _user(*by_key["none"])[1]
    empty = [search(unreadable), search([OPEN.experiment, *unreadable])]
    assert _gateway_decisions(world, [(s, outsider, groups) for s in empty]) == [False, True]
    lines = [json.loads(x) for x in world["audit"].read_text().splitlines() if x]
    searches = [
        x for x in lines if x.get("username") == outsider and x.get("action") == "SearchRuns"
    ]
    nothing, partly = searches[-2:]
    assert nothing["decision"] == "deny" and nothing["answered"] == "empty"
    assert nothing["narrowed_from"] == unreadable and nothing["dropped"] == unreadable
    assert nothing["kept"] == [] and nothing["decided_on"] == ["Experiment", unreadable[-1]]
    assert partly["decision"] == "allow" and "answered" not in partly
    assert partly["kept"] == [OPEN.experiment] and partly["dropped"] == unreadable
    assert partly["policies"] == ["experiment-reader"]  # editors of `open` are readers

    # policies that let everyone search every experiment: each dropped id flips, once per line
    opened = tmp_path / "policies"
    shutil.copytree(world["bundle"].directory, opened)
    (opened / "99_search_all.cedar").write_text(
        '@id("search-all")\n'
        'permit (principal, action == Action::"SearchRuns", resource is Experiment);\n'
    )
    audit = tmp_path / "audit.jsonl"
    audit.write_text("".join(json.dumps(x) + "\n" for x in (nothing, partly)))
    source = TableSource(world["store_uri"])
    report = replay(read_audit(audit), load_policies(opened), source, ADMINS)
    flipped = sorted((f.line.request_id, f.line.resource.id) for f in report.flips)
    assert flipped == sorted((x["request_id"], i) for x in (nothing, partly) for i in unreadable)
    assert all(f.now_allowed for f in report.flips) and report.replayed == 5
    unchanged = replay(read_audit(audit), world["bundle"], source, ADMINS)
    assert unchanged.flips == () and unchanged.replayed == 5


def _simulate(bundle, source, sample, user: str, groups):
    """The simulator's answer to one sampled request, as the gateway would see that caller."""
    return simulate_request(
        bundle,
        source,
        _pid(user),
        groups,
        sample.method,
        sample.target,
        sample.body,
        ADMINS,
        sample.headers,
    )


GUARDED = "guarded-model"
GUARD_VERSIONS = {"1": "Staging", "2": "None", "3": "Production", "4": "Production"}
GUARD_ALIASES = {"champion": "3", "candidate": "2"}


def _guarded_model(world) -> BindingsData:
    """A model with versions in Production and aliases, in the table and as a bindings file."""
    table = DynamoTable.from_uri(world["store_uri"])
    users = {_pid("guard-editor"): "editor", _pid("guard-manager"): "manager"}
    table.put(
        {
            "pk": f"RMNAME#{GUARDED}",
            "sk": "RM",
            "rid": "r-guarded",
            "name": GUARDED,
            "acl_users": users,
            "acl_groups": {},
            "aliases": {a: int(v) for a, v in GUARD_ALIASES.items()},
        }
    )
    data = BindingsData()
    data.resources[(REGISTERED_MODEL, GUARDED)] = Bindings.from_data(
        REGISTERED_MODEL, GUARDED, {"users": users}
    )
    for version, stage in GUARD_VERSIONS.items():
        table.put({"pk": "RM#r-guarded", "sk": f"MV#{int(version):010d}", "stage": stage})
        aliases = tuple(a for a, v in GUARD_ALIASES.items() if v == version)
        data.versions[(GUARDED, version)] = VersionFacts(stage, aliases)
    return data


def _registry_call(method: str, path: str, body: dict) -> Sample:
    from gateway.routing import all_routes

    route = next(r for r in all_routes() if r.method == method and r.path == path)
    headers = {"content-type": "application/json"}
    return Sample(route, method, path, "", headers, json.dumps({"name": GUARDED, **body}).encode())


def test_the_production_guard_is_decided_alike_by_the_gateway_and_the_simulator(world):
    data = _guarded_model(world)
    transition = "/api/2.0/mlflow/model-versions/transition-stage"
    alias = "/api/2.0/mlflow/registered-models/alias"
    calls = [  # (request, allowed for an editor)
        (("POST", transition, {"version": "3", "stage": "Archived"}), False),
        (("POST", transition, {"version": "1", "stage": "Archived"}), True),
        (("POST", transition, {"version": "1", "stage": "production"}), False),
        (("POST", transition, {"version": "1", "stage": "Staging",
                               "archive_existing_versions": True}), True),
        (("POST", transition, {"version": "2", "stage": "Production",
                               "archive_existing_versions": True}), False),
        (("DELETE", "/api/2.0/mlflow/model-versions/delete", {"version": "4"}), False),
        (("DELETE", "/api/2.0/mlflow/model-versions/delete", {"version": "2"}), True),
        (("POST", alias, {"alias": "champion", "version": "1"}), False),
        (("POST", alias, {"alias": "candidate", "version": "4"}), False),
        (("POST", alias, {"alias": "candidate", "version": "1"}), True),
        (("POST", alias, {"alias": "fresh", "version": "2"}), True),
        (("DELETE", alias, {"alias": "champion"}), False),
        (("DELETE", alias, {"alias": "candidate"}), True),
        (("PATCH", "/api/2.0/mlflow/model-versions/update",
          {"version": "3", "description": "d"}), True),
    ]  # fmt: skip
    samples = [_registry_call(*request) for request, _ in calls]
    callers = {"guard-editor": (), "guard-manager": ()}
    jobs = [(sample, user, groups) for user, groups in callers.items() for sample in samples]
    gateway = _gateway_decisions(world, jobs)
    source = FileSource(data)
    simulated = [
        _simulate(world["bundle"], source, sample, user, groups).forwarded
        for sample, user, groups in jobs
    ]
    assert gateway == simulated
    n = len(samples)
    assert gateway[:n] == [allowed for _, allowed in calls]  # the editor
    assert gateway[n:] == [True] * n  # the manager
