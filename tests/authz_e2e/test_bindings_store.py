"""Role bindings on the resource's own item: written with it, changed one UpdateItem at a time."""

from __future__ import annotations

import uuid

import pytest

from store.bindings import (
    BindingStore,
    DefaultBindingRules,
    UnknownResource,
    creation_bindings,
    find_principals,
    remember_user,
)
from store.handler.identity import Principal, bind_principal
from store.registry import DynamoRegistryStore
from store.tracking import DynamoTrackingStore
from store.vocabulary import EXPERIMENT, REGISTERED_MODEL

ALICE = Principal("sub-alice", "alice", groups=("admins", "vision", "ml"))


@pytest.fixture
def stores(dynalite_endpoint, tmp_path):
    uri = f"dynamodb://{dynalite_endpoint.removeprefix('http://')}/b{uuid.uuid4().hex[:8]}"
    tracking = DynamoTrackingStore(uri, str(tmp_path / "artifacts"))
    return tracking, DynamoRegistryStore(uri), BindingStore(tracking.table)


def test_creator_and_first_non_admin_group_are_bound_in_the_creating_put(stores):
    tracking, registry, bindings = stores
    table = tracking.table
    with bind_principal(ALICE):
        table.round_trips.reset()
        experiment_id = tracking.create_experiment("e1")
        puts = table.round_trips.by_operation().get("PutItem", 0)
        registry.create_registered_model("m1")
    assert puts == 2  # the name claim and the experiment item (with its bindings): no extra write
    experiment = bindings.read(EXPERIMENT, experiment_id)
    assert experiment.users == {"sub-alice": "manager"}
    assert experiment.groups == {"vision": "editor"}  # "admins" never counts as the team
    assert experiment.private is False
    model = bindings.read(REGISTERED_MODEL, "m1")
    assert model.users == {"sub-alice": "manager"} and model.groups == {"vision": "reader"}


def test_without_a_caller_nothing_is_bound(stores):
    tracking, _, bindings = stores
    experiment_id = tracking.create_experiment("nobody")
    assert bindings.read(EXPERIMENT, experiment_id).users == {}


def test_grant_revoke_and_private_are_one_update_each(stores):
    tracking, registry, bindings = stores
    with bind_principal(ALICE):
        experiment_id = tracking.create_experiment("e2")
    table = tracking.table
    table.round_trips.reset()
    bindings.grant(EXPERIMENT, experiment_id, "reader", user="sub-bob")
    bindings.grant(EXPERIMENT, experiment_id, "manager", group="nlp")
    bindings.revoke(EXPERIMENT, experiment_id, group="vision")
    data = bindings.set_private(experiment_id, True)
    assert table.round_trips.by_operation() == {"UpdateItem": 4}
    assert data.users == {"sub-alice": "manager", "sub-bob": "reader"}
    assert data.groups == {"nlp": "manager"} and data.private is True


def test_grant_on_an_item_created_before_bindings_existed(stores):
    tracking, _, bindings = stores
    data = bindings.grant(EXPERIMENT, "0", "reader", group="everyone")  # the default experiment
    assert data.groups == {"everyone": "reader"}


def test_unknown_resources_and_roles(stores):
    _, _, bindings = stores
    with pytest.raises(UnknownResource):
        bindings.grant(EXPERIMENT, "999999", "reader", user="x")
    with pytest.raises(UnknownResource):
        bindings.grant(REGISTERED_MODEL, "no-such-model", "reader", user="x")
    with pytest.raises(ValueError):
        bindings.grant(EXPERIMENT, "0", "owner", user="x")


def test_bindings_move_with_a_renamed_model(stores):
    _, registry, bindings = stores
    with bind_principal(ALICE):
        registry.create_registered_model("before")
    bindings.grant(REGISTERED_MODEL, "before", "editor", user="sub-carol")
    registry.rename_registered_model("before", "after")
    assert bindings.read(REGISTERED_MODEL, "after").users["sub-carol"] == "editor"


def test_default_rules_are_configurable():
    rules = DefaultBindingRules.from_env(
        {"CEDARFLOW_EXPERIMENT_GROUP_ROLE": "reader", "CEDARFLOW_CREATOR_GROUP_IGNORE": "vision"}
    )
    attrs = creation_bindings(EXPERIMENT, ALICE, rules)
    assert attrs["acl_groups"] == {"ml": "reader"}
    with pytest.raises(ValueError):
        DefaultBindingRules.from_env({"CEDARFLOW_MODEL_GROUP_ROLE": "owner"})


def test_the_user_directory_keeps_every_principal_of_a_name(stores):
    tracking, _, _ = stores
    table = tracking.table
    alice = Principal("dev:sub-1", "alice", groups=("vision",))
    others = [
        Principal("eu-west-1_Pool:sub-1", "alice", groups=("nlp",)),  # another issuer, same sub
        Principal("service:alice", "alice", kind="service"),
    ]
    remember_user(table, alice)
    assert [e.principal for e in find_principals(table, "alice")] == ["dev:sub-1"]
    for other in others:
        remember_user(table, other)  # a later sign-in adds itself, takes nothing over
    remember_user(table, alice)
    found = {e.principal: e for e in find_principals(table, "alice")}
    assert set(found) == {"dev:sub-1", "eu-west-1_Pool:sub-1", "service:alice"}
    assert found["dev:sub-1"].groups == ("vision",) and found["service:alice"].kind == "service"
    assert [e.principal for e in find_principals(table, "alice@dev")] == ["dev:sub-1"]
    assert [e.principal for e in find_principals(table, "alice@service")] == ["service:alice"]
    assert find_principals(table, "alice@elsewhere") == ()
    # a user whose name looks qualified is never silently preferred over the one it imitates
    remember_user(table, Principal("eu-west-1_Pool:sub-9", "alice@dev"))
    assert {e.principal for e in find_principals(table, "alice@dev")} == {
        "dev:sub-1",
        "eu-west-1_Pool:sub-9",
    }
