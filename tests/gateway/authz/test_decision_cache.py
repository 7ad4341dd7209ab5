"""Cedar's answers are reused only when everything that goes into them is the same."""

from __future__ import annotations

from pathlib import Path

import cedarpy
import pytest

from gateway.authz.decide import Authorizer, model_version_context
from gateway.authz.entities import Bindings
from gateway.authz.policies import load_policies
from gateway.routing.parse import ResourceRef
from store.handler.identity import Principal

POLICIES = Path(__file__).resolve().parents[3] / "policies"
RUN = ResourceRef("run", "r" * 32)
VERSION = ResourceRef("registered_model", "m")


@pytest.fixture
def cedar_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = cedarpy.is_authorized_batch

    def counting(requests, *args, **kwargs):
        calls.append(len(requests))
        return real(requests, *args, **kwargs)

    monkeypatch.setattr(cedarpy, "is_authorized_batch", counting)
    return calls


def test_a_repeated_call_is_decided_without_cedar(cedar_calls):
    authz = Authorizer(load_policies(POLICIES))
    editor = Bindings.from_data("experiment", "1", {"users": {"u-cache-1": "editor"}})
    caller = Principal("u-cache-1", "carol")
    for _ in range(3):
        assert authz.decide(caller, "LogMetric", [RUN], lambda ref: editor).allowed
    assert cedar_calls == [1]


def test_any_change_of_an_input_asks_cedar_again(cedar_calls):
    authz = Authorizer(load_policies(POLICIES))
    editor = Bindings.from_data("experiment", "1", {"users": {"u-cache-2": "editor"}})
    reader = Bindings.from_data("experiment", "1", {"users": {"u-cache-2": "reader"}})
    caller = Principal("u-cache-2", "carol")
    assert authz.decide(caller, "LogMetric", [RUN], lambda ref: editor).allowed
    assert not authz.decide(caller, "LogMetric", [RUN], lambda ref: reader).allowed  # bindings
    assert authz.decide(caller, "GetRun", [RUN], lambda ref: reader).allowed  # action
    grouped = Principal("u-cache-2", "carol", groups=("admins",))
    assert authz.decide(grouped, "LogMetric", [RUN], lambda ref: reader).allowed  # groups
    assert len(cedar_calls) == 4


def test_the_model_version_context_is_part_of_the_answer(cedar_calls):
    authz = Authorizer(load_policies(POLICIES))
    editor = Bindings.from_data("registered_model", "m", {"users": {"u-cache-3": "editor"}})
    caller = Principal("u-cache-3", "dave")
    staging = model_version_context("1", "Staging")
    production = model_version_context("1", "Production")
    action = "DeleteModelVersion"
    assert authz.decide(caller, action, [VERSION], lambda ref: editor, staging).allowed
    assert not authz.decide(caller, action, [VERSION], lambda ref: editor, production).allowed
    assert authz.decide(caller, action, [VERSION], lambda ref: editor, staging).allowed
    assert len(cedar_calls) == 2


def test_an_edited_policy_set_is_never_answered_from_the_old_one(tmp_path, cedar_calls):
    edited = tmp_path / "policies"
    edited.mkdir()
    for source in POLICIES.iterdir():
        if source.is_file():
            (edited / source.name).write_text(source.read_text())
    reader = Bindings.from_data("experiment", "1", {"users": {"u-cache-4": "reader"}})
    caller = Principal("u-cache-4", "erin")
    assert (
        not Authorizer(load_policies(edited))
        .decide(caller, "LogMetric", [RUN], lambda ref: reader)
        .allowed
    )
    (edited / "11_experiment_editor.cedar").write_text(
        (edited / "11_experiment_editor.cedar")
        .read_text()
        .replace("principal in resource.editors", "principal in resource.readers")
    )
    assert (
        Authorizer(load_policies(edited))
        .decide(caller, "LogMetric", [RUN], lambda ref: reader)
        .allowed
    )
    assert len(cedar_calls) == 2
