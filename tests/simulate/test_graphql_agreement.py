"""The simulator and the running gateway agree on GraphQL queries decided per root field, on
searches narrowed to nothing, and on the Production guard (matrix_world.py sets both up)."""

from __future__ import annotations

import json
import shutil

from matrix_world import (
    ADMINS,
    OPEN,
    PROBE,
    Ids,
    Sample,
    gateway_decisions,
    ids_of,
    pid,
    send,
    simulate,
    user_of,
)

from gateway.authz.entities import Bindings
from gateway.authz.policies import load_policies
from gateway.simulate.bindings import BindingsData, VersionFacts
from gateway.simulate.sources import FileSource
from store.dynamo.table import DynamoTable
from store.vocabulary import EXPERIMENT, REGISTERED_MODEL


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
                  "{ run { modelVersions { version } } } }"},
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
    reader_ids = ids_of(index)
    callers = {
        "reader": user_of(index, by_key["reader"][1]),
        "outsider": user_of(*by_key["none"]),
        "admin": user_of(*by_key["admin"]),
    }
    samples = _graphql_samples(reader_ids)
    jobs = [(sample, *callers[who]) for who in callers for sample in samples]
    statuses: list[int] = []
    probes: list[str] = []
    for sample, user, groups in jobs:  # one by one: the status tells refusal from denial
        probe, status = send(world, sample, user, groups)
        probes.append(probe)
        statuses.append(status)
    forwarded = {
        value for r in world["echo"].received for name, value in r["headers"] if name == PROBE
    }
    source = FileSource(world["data"])
    gateway, simulated = [], []
    for (sample, user, groups), probe, status in zip(jobs, probes, statuses, strict=True):
        gateway.append((probe in forwarded, status))
        r = simulate(world["bundle"], source, sample, user, groups)
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
    outsider, _ = user_of(*by_key["none"])
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

    groups = user_of(*by_key["none"])[1]
    empty = [search(unreadable), search([OPEN.experiment, *unreadable])]
    assert gateway_decisions(world, [(s, outsider, groups) for s in empty]) == [False, True]
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


GUARDED = "guarded-model"
GUARD_VERSIONS = {"1": "Staging", "2": "None", "3": "Production", "4": "Production"}
GUARD_ALIASES = {"champion": "3", "candidate": "2"}


def _guarded_model(world) -> BindingsData:
    """A model with versions in Production and aliases, in the table and as a bindings file."""
    table = DynamoTable.from_uri(world["store_uri"])
    users = {pid("guard-editor"): "editor", pid("guard-manager"): "manager"}
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
    gateway = gateway_decisions(world, jobs)
    source = FileSource(data)
    simulated = [
        simulate(world["bundle"], source, sample, user, groups).forwarded
        for sample, user, groups in jobs
    ]
    assert gateway == simulated
    n = len(samples)
    assert gateway[:n] == [allowed for _, allowed in calls]  # the editor
    assert gateway[n:] == [True] * n  # the manager
