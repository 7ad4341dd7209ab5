"""The entity graph built from role bindings."""

from __future__ import annotations

import pytest

from gateway.authz.entities import Bindings, build_entities, cached_entities, role_uid


def by_uid(entities):
    return {(e["uid"]["type"], e["uid"]["id"]): e for e in entities}


def test_bindings_are_a_value_made_from_plain_data():
    data = {"users": {"alice": "manager"}, "groups": {"vision": "editor"}, "private": True}
    bindings = Bindings.from_data("experiment", "7", data)
    assert (bindings.users, bindings.groups, bindings.private) == (
        (("alice", "manager"),),
        (("vision", "editor"),),
        True,
    )
    assert bindings == Bindings.from_data("experiment", 7, dict(data))  # a value, hashable
    assert hash(bindings) == hash(Bindings.from_data("experiment", "7", data))


def test_unknown_roles_and_kinds_are_refused():
    with pytest.raises(ValueError):
        Bindings.from_data("experiment", "1", {"users": {"a": "owner"}})
    with pytest.raises(ValueError):
        Bindings.from_data("run", "1", {})


def test_role_chain_manager_in_editor_in_reader():
    target = Bindings.from_data("registered_model", "m", {})
    ents = by_uid(build_entities("u", (), [target]))
    manager = ents[("Role", role_uid("registered_model", "m", "manager")["id"])]
    editor = ents[("Role", role_uid("registered_model", "m", "editor")["id"])]
    assert manager["parents"] == [role_uid("registered_model", "m", "editor")]
    assert editor["parents"] == [role_uid("registered_model", "m", "reader")]


def test_experiments_keep_group_bindings_on_their_own_chain():
    target = Bindings.from_data(
        "experiment", "1", {"users": {"u": "reader"}, "groups": {"g": "editor"}}
    )
    ents = by_uid(build_entities("u", ("g",), [target]))
    assert role_uid("experiment", "1", "reader") in ents[("User", "u")]["parents"]
    assert ents[("Group", "g")]["parents"] == [role_uid("experiment", "1", "editor", group=True)]
    attrs = ents[("Experiment", "1")]["attrs"]
    assert attrs["private"] is False
    assert attrs["groupEditors"] == {"__entity": role_uid("experiment", "1", "editor", group=True)}


def test_only_the_callers_bindings_enter_the_graph():
    target = Bindings.from_data(
        "experiment",
        "1",
        {"users": {f"user{i}": "reader" for i in range(100)}, "groups": {"other": "manager"}},
    )
    ents = by_uid(build_entities("user3", ("mine",), [target]))
    assert ("User", "user4") not in ents and ("Group", "other") not in ents
    assert len(ents) <= 12


def test_admin_groups_link_to_the_admin_role():
    ents = by_uid(build_entities("u", ("admins", "x"), [], admin_groups=("admins",)))
    assert ents[("Group", "admins")]["parents"] == [{"type": "AdminRole", "id": "admin"}]
    assert ents[("Group", "x")]["parents"] == []


def test_resource_ids_cannot_collide_through_slashes():
    a = role_uid("registered_model", "a", "editor", group=True)["id"]
    b = role_uid("registered_model", "a/group-editor", "reader")["id"]
    c = role_uid("registered_model", "a/group", "editor")["id"]
    assert len({a, b, c}) == 3


def test_entities_are_cached_per_caller_and_bindings():
    target = Bindings.from_data("experiment", "1", {"users": {"u": "reader"}})
    first = cached_entities("u", ("g",), (target,), ())
    assert cached_entities("u", ("g",), (target,), ()) is first
    changed = Bindings.from_data("experiment", "1", {"users": {"u": "editor"}})
    assert cached_entities("u", ("g",), (changed,), ()) is not first
