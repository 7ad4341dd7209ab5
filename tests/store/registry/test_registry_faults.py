"""Registry writes of several requests, each request failed in turn (dynalite).

After a failure a call is either fully done, not done at all, or completed by repeating it (as
MLflow's client does on TEMPORARILY_UNAVAILABLE); never left half done.
"""

from __future__ import annotations

import pytest
from fault_support import RequestFaults, fails_unavailable, requests_of
from mlflow.entities.model_registry import ModelVersionTag
from mlflow.exceptions import MlflowException

from store.registry import DynamoRegistryStore

_TAGS = [ModelVersionTag("stage", "candidate"), ModelVersionTag("team", "vision")]


def versions_of(reg: DynamoRegistryStore, name: str) -> list[int]:
    found = reg.search_model_versions(f"name = '{name}'", max_results=1000)
    return sorted(int(mv.version) for mv in found)


def assert_whole_model(reg: DynamoRegistryStore, name: str) -> list[int]:
    """Dense version numbers, every version with its tags, the latest one named latest."""
    versions = versions_of(reg, name)
    assert versions == list(range(1, len(versions) + 1))
    for version in versions:
        assert reg.get_model_version(name, version).tags == {t.key: t.value for t in _TAGS}
    latest = reg.get_latest_versions(name, ["None"])
    assert [int(mv.version) for mv in latest] == versions[-1:]
    return versions


def test_version_creation_failing_at_any_request_leaves_no_gap(live_reg):
    faults = RequestFaults(live_reg.table)
    live_reg.create_registered_model("probe")
    sent = requests_of(faults, lambda: live_reg.create_model_version("probe", "s3://b", tags=_TAGS))
    assert len(sent) >= 2
    for fail_at in range(1, len(sent) + 1):
        name = f"model-{fail_at}"
        live_reg.create_registered_model(name)
        live_reg.create_model_version(name, "s3://b", tags=_TAGS)
        create = lambda n=name: live_reg.create_model_version(n, "s3://b", tags=_TAGS)  # noqa: E731
        fails_unavailable(faults, fail_at, create)
        assert len(assert_whole_model(live_reg, name)) in (1, 2), fail_at
        created = create()  # the client's retry
        versions = assert_whole_model(live_reg, name)
        assert int(created.version) == versions[-1], fail_at


def test_alias_failing_at_any_request_is_whole_or_absent(live_reg):
    faults = RequestFaults(live_reg.table)
    live_reg.create_registered_model("aliased")
    live_reg.create_model_version("aliased", "s3://b", tags=_TAGS)
    live_reg.create_model_version("aliased", "s3://b", tags=_TAGS)
    set_alias = lambda: live_reg.set_registered_model_alias("aliased", "champion", 2)  # noqa: E731
    sent = requests_of(
        faults, lambda: live_reg.set_registered_model_alias("aliased", "champion", 1)
    )
    for fail_at in range(1, len(sent) + 1):
        live_reg.set_registered_model_alias("aliased", "champion", 1)
        fails_unavailable(faults, fail_at, set_alias)
        held = live_reg.get_model_version_by_alias("aliased", "champion").version
        assert live_reg.get_registered_model("aliased").aliases == {"champion": held}
        assert int(held) in (1, 2)
        set_alias()
        assert live_reg.get_registered_model("aliased").aliases["champion"] == 2


def model_with_versions(reg: DynamoRegistryStore, name: str) -> None:
    reg.create_registered_model(name)
    for _ in range(3):
        reg.create_model_version(name, "s3://b", tags=_TAGS)


def test_rename_failing_at_any_request_is_finished_by_repeating_it(live_reg):
    faults = RequestFaults(live_reg.table)
    model_with_versions(live_reg, "probe")
    sent = requests_of(faults, lambda: live_reg.rename_registered_model("probe", "probed"))
    assert len(sent) >= 5
    for fail_at in range(1, len(sent) + 1):
        old, new = f"old-{fail_at}", f"new-{fail_at}"
        model_with_versions(live_reg, old)
        fails_unavailable(
            faults, fail_at, lambda o=old, n=new: live_reg.rename_registered_model(o, n)
        )
        live_reg.rename_registered_model(old, new)  # the client's retry
        names = {m.name for m in live_reg.search_registered_models(f"name LIKE '%-{fail_at}'")}
        assert names == {new}, fail_at
        assert live_reg.get_registered_model(new).name == new
        assert assert_whole_model(live_reg, new) == [1, 2, 3]
        with pytest.raises(MlflowException, match="not found"):
            live_reg.get_registered_model(old)


def test_model_deletion_failing_at_any_request_is_finished_by_repeating_it(live_reg):
    faults = RequestFaults(live_reg.table)
    model_with_versions(live_reg, "probe")
    sent = requests_of(faults, lambda: live_reg.delete_registered_model("probe"))
    for fail_at in range(1, len(sent) + 1):
        name = f"gone-{fail_at}"
        model_with_versions(live_reg, name)
        fails_unavailable(faults, fail_at, lambda n=name: live_reg.delete_registered_model(n))
        if {m.name for m in live_reg.search_registered_models(f"name = '{name}'")}:
            assert assert_whole_model(live_reg, name) == [1, 2, 3]  # not started: all there
            live_reg.delete_registered_model(name)
        assert not live_reg.search_registered_models(f"name = '{name}'")
        assert not live_reg.search_model_versions(f"name = '{name}'")
        # The name is free again, and nothing of the old model comes back with it.
        live_reg.create_registered_model(name)
        assert versions_of(live_reg, name) == []
        assert live_reg.get_latest_versions(name) == []
