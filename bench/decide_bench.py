"""Cost of an authorization decision: routing, parsing and cedarpy with the shipped policies.

Run:  .venv/bin/python bench/decide_bench.py
Prints the median microseconds per decision (7 repeats) in CPU time (robust when other
processes share the cores) and wall time, and decisions per second of CPU.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
import timeit
from pathlib import Path

import cedarpy

from gateway.authz.decide import Authorizer
from gateway.authz.entities import Bindings, build_entities, cached_entities
from gateway.authz.policies import load_policies
from gateway.routing.parse import ResourceRef, parse_request
from store.handler.identity import Principal

POLICIES = Path(__file__).resolve().parents[1] / "policies"
BUNDLE = load_policies(POLICIES)
AUTHORIZER = Authorizer(BUNDLE, admin_groups=("admins",))
CAROL = Principal("carol", "carol", groups=("vision", "mlflow-users", "analytics", "all-staff"))
EXP = Bindings.from_data(
    "experiment",
    "1",
    {"users": {"alice": "manager", "carol": "reader"}, "groups": {"vision": "editor"}},
)
RUN = ResourceRef("run", "r1")
LOOKUP = {("run", "r1"): EXP, ("experiment", "1"): EXP}.get
BODY = json.dumps({"run_id": "r1", "key": "loss", "value": 0.5, "timestamp": 1, "step": 3}).encode()
HEADERS = {"content-type": "application/json"}
MANY = [
    Bindings.from_data("experiment", str(i), {"groups": {"vision": "reader"}} if i % 2 else {})
    for i in range(50)
]
MANY_LOOKUP = {("experiment", b.id): b for b in MANY}.get
MANY_REFS = [ResourceRef("experiment", b.id) for b in MANY]
ENTITIES = cached_entities(CAROL.subject, CAROL.groups, (EXP,), ("admins",))
REQUEST = {
    "principal": {"type": "User", "id": "carol"},
    "action": {"type": "Action", "id": "LogMetric"},
    "resource": {"type": "Experiment", "id": "1"},
    "context": {},
}


def lookup(ref):
    return LOOKUP((ref.kind, ref.id))


def many_lookup(ref):
    return MANY_LOOKUP((ref.kind, ref.id))


def per_call_us(fn, number: int, per: int = 1, timer=time.process_time) -> float:
    times = timeit.Timer(fn, timer=timer).repeat(repeat=7, number=number)
    return statistics.median(times) / number / per * 1e6


def cold_decision():
    # a fresh bindings value each call: entity build + parse are not cached
    cold = Bindings.from_data("experiment", "1", {"users": {"carol": "editor"}})
    cached_entities.cache_clear()
    return AUTHORIZER.decide(CAROL, "LogMetric", [RUN], lambda r: cold)


def main() -> None:
    assert AUTHORIZER.decide(CAROL, "LogMetric", [RUN], lookup).allowed
    print(
        f"python {platform.python_version()}, cedarpy 4.12.2, {os.cpu_count()} cpus, "
        f"{len(BUNDLE.policy_set)} policies, revision {BUNDLE.revision}, "
        f"{len(build_entities(CAROL.subject, CAROL.groups, [EXP], ['admins']))} entities/decision"
    )
    rows = [
        (
            "cedarpy floor: is_authorized(PolicySet, Entities handle), no schema",
            lambda: cedarpy.is_authorized(REQUEST, BUNDLE.policy_set, ENTITIES),
            2000,
            1,
        ),
        (
            "cedarpy: is_authorized_batch([1], PolicySet, Entities, Schema handle)",
            lambda: cedarpy.is_authorized_batch(
                [REQUEST], BUNDLE.policy_set, ENTITIES, BUNDLE.schema
            ),
            2000,
            1,
        ),
        (
            "decide(): LogMetric on a run, warm entity cache",
            lambda: AUTHORIZER.decide(CAROL, "LogMetric", [RUN], lookup),
            2000,
            1,
        ),
        (
            "parse_request + decide(): POST runs/log-metric, warm",
            lambda: AUTHORIZER.decide(
                CAROL,
                "LogMetric",
                parse_request(
                    "POST", "/api/2.0/mlflow/runs/log-metric", "", HEADERS, BODY
                ).resources,
                lookup,
            ),
            2000,
            1,
        ),
        ("decide(): cold entity cache (build + parse entities)", cold_decision, 500, 1),
        (
            "decide_each(): 50 experiments of a search, per decision, warm",
            lambda: AUTHORIZER.decide_each(CAROL, "GetExperiment", MANY_REFS, many_lookup),
            50,
            50,
        ),
    ]
    print(f"{'':72s} {'cpu':>8s}    {'wall':>8s}")
    for label, fn, number, per in rows:
        cpu = per_call_us(fn, number, per)
        wall = per_call_us(fn, number, per, timer=time.perf_counter)
        print(f"{label:72s} {cpu:8.1f} us {wall:8.1f} us  {1e6 / cpu:9.0f} decisions/s")


if __name__ == "__main__":
    main()
