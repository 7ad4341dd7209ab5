"""The principals, resources and role files the decision tests decide with."""

from __future__ import annotations

import json
from pathlib import Path

import cedarpy

from gateway.authz.entities import Bindings
from gateway.routing.parse import ResourceRef
from store.handler.identity import Principal

POLICIES = Path(__file__).resolve().parents[3] / "policies"
LEVEL = {"reader": 1, "editor": 2, "manager": 3}
ROLE_FILES = {
    "experiment-reader": ("Experiment", 1),
    "experiment-editor": ("Experiment", 2),
    "experiment-manager": ("Experiment", 3),
    "model-reader": ("RegisteredModel", 1),
    "model-editor": ("RegisteredModel", 2),
    "model-manager": ("RegisteredModel", 3),
}


def role_file_actions() -> dict[str, tuple[str, int]]:
    """action → (resource type, lowest role level) as the policy files list them."""
    out: dict[str, tuple[str, int]] = {}
    for path in sorted(POLICIES.glob("*.cedar")):
        parsed = json.loads(cedarpy.policies_to_json_str(path.read_text()))
        for policy in parsed["staticPolicies"].values():
            pid = policy["annotations"]["id"]
            if pid in ROLE_FILES:
                for entity in policy["action"]["entities"]:
                    out[entity["id"]] = ROLE_FILES[pid]
    return out


def workspace_actions() -> set[str]:
    parsed = json.loads(cedarpy.policies_to_json_str((POLICIES / "00_workspace.cedar").read_text()))
    return {e["id"] for p in parsed["staticPolicies"].values() for e in p["action"]["entities"]}


ACTIONS = role_file_actions()
EVERYONE_ACTIONS = workspace_actions()
ADMIN_ONLY = {"SetArtifactLocation", "RegisterExternalSource", "GetUserPermissions"}
# calls the Production guard decides on facts; without them it fails closed: managers only
GUARDED = {
    "DeleteModelVersion",
    "TransitionModelVersionStage",
    "SetRegisteredModelAlias",
    "DeleteRegisteredModelAlias",
}

SHARED = Bindings.from_data(
    "experiment",
    "1",
    {
        "users": {"rita": "reader", "eddie": "editor", "mona": "manager"},
        "groups": {"vision": "editor"},
    },
)
PRIVATE = Bindings.from_data(
    "experiment",
    "2",
    {
        "users": {"mona": "manager", "pia": "reader"},
        "groups": {"vision": "editor"},
        "private": True,
    },
)
MODEL = Bindings.from_data(
    "registered_model",
    "churn",
    {
        "users": {"rita": "reader", "eddie": "editor", "mona": "manager"},
        "groups": {"vision": "reader"},
    },
)
RESOURCES = {
    ("experiment", "1"): SHARED,
    ("experiment", "2"): PRIVATE,
    ("registered_model", "churn"): MODEL,
}
# children resolve to their experiment or model, as the gateway's resolver does
CHILDREN = {("run", "run-1"): SHARED, ("run", "run-2"): PRIVATE, ("trace", "tr-1"): SHARED}
CHILDREN |= {("logged_model", "m-1"): SHARED, ("experiment_name", "shared"): SHARED}
CHILDREN |= {("dataset", "d-1"): SHARED}


def lookup(ref: ResourceRef) -> Bindings | None:
    return RESOURCES.get((ref.kind, ref.id)) or CHILDREN.get((ref.kind, ref.id))


# principal kind → (principal, role level on the shared experiment, private one, model)
PRINCIPALS = {
    "reader": (Principal("rita", "rita", groups=("nlp",)), 1, 0, 1),
    "editor": (Principal("eddie", "eddie", groups=("nlp",)), 2, 0, 2),
    "manager": (Principal("mona", "mona", groups=("nlp",)), 3, 3, 3),
    "group member": (Principal("gus", "gus", groups=("vision",)), 2, 0, 1),
    "private direct reader": (Principal("pia", "pia", groups=("vision",)), 2, 1, 1),
    "no grant": (Principal("bob", "bob", groups=("nlp",)), 0, 0, 0),
    "admin": (Principal("ada", "ada", groups=("admins",)), 9, 9, 9),
}


def cases():
    """(principal kind, action, resource, column, role level the action needs), every one."""
    for kind in PRINCIPALS:
        for action, (rtype, need) in sorted(ACTIONS.items()):
            if rtype == "Experiment":
                yield kind, action, ResourceRef("experiment", "1"), 1, need
                yield kind, action, ResourceRef("experiment", "2"), 2, need
            else:
                yield kind, action, ResourceRef("registered_model", "churn"), 3, need
