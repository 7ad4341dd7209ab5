"""Loading the policy set: validation with located errors, unique ids, hot reload."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import cedarpy
import pytest

from gateway.authz.decide import Authorizer
from gateway.authz.entities import Bindings
from gateway.authz.policies import PolicyLoadError, PolicyStore, load_policies
from gateway.routing import offered_actions, route_table
from gateway.routing.parse import ResourceRef
from store.handler.identity import Principal
from store.vocabulary import REGISTERED_MODEL, WORKSPACE

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    # a new mtime even on filesystems with coarse timestamps
    stamp = time.time_ns() + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def load_error(directory: Path) -> PolicyLoadError:
    with pytest.raises(PolicyLoadError) as info:
        load_policies(directory)
    return info.value


def test_shipped_policies_load_with_unique_ids():
    bundle = load_policies(POLICIES)
    assert len(bundle.policy_set) == len(bundle.sources) >= 10
    assert bundle.sources["experiment-private"].effect == "forbid"
    assert bundle.sources["experiment-private"].file.endswith("13_experiment_private.cedar")


def test_revision_is_a_content_hash(policy_dir):
    first = load_policies(policy_dir).revision
    assert load_policies(policy_dir).revision == first
    edit(policy_dir / "00_workspace.cedar", "// Calls", "// calls")
    assert load_policies(policy_dir).revision != first


def test_syntax_error_is_located_by_file_line_and_column(policy_dir):
    path = policy_dir / "21_model_editor.cedar"
    edit(
        path, "when { principal in resource.editors }", "when { principal in resource.editors && }"
    )
    (error,) = load_error(policy_dir).errors
    line = path.read_text().splitlines().index("when { principal in resource.editors && };") + 1
    assert (error.file, error.line, error.column) == (str(path), line, 42)
    assert "unexpected token" in error.message
    assert str(error).startswith(f"{path}:{line}:42: ")


def test_unknown_action_is_located_at_its_name(policy_dir):
    path = policy_dir / "20_model_reader.cedar"
    edit(path, 'Action::"GetLatestVersions"', 'Action::"GetLatestVersion"')
    errors = load_error(policy_dir).errors
    lines = path.read_text().splitlines()
    line = next(i for i, t in enumerate(lines, 1) if 'GetLatestVersion"' in t)
    assert any(e.line == line and e.column == 5 and "GetLatestVersion" in e.message for e in errors)


def test_unknown_attribute_is_located_at_its_use(policy_dir):
    path = policy_dir / "22_model_manager.cedar"
    edit(path, "resource.managers", "resource.manager")
    (error,) = load_error(policy_dir).errors
    text = path.read_text()
    offset = text.index("resource.manager") + len("resource.")
    assert error.line == text.count("\n", 0, offset) + 1
    assert error.column == offset - text.rfind("\n", 0, offset)


def test_schema_error_is_located(policy_dir):
    path = policy_dir / "schema.cedarschema"
    edit(path, "stage: String,", "stage: Strin,")
    (error,) = load_error(policy_dir).errors
    assert error.file == str(path)
    assert error.line == next(
        i for i, t in enumerate(path.read_text().splitlines(), 1) if "Strin," in t
    )


def test_duplicate_ids_are_refused(policy_dir):
    edit(policy_dir / "22_model_manager.cedar", '@id("model-manager")', '@id("model-editor")')
    (error,) = load_error(policy_dir).errors
    assert 'duplicate @id("model-editor")' in error.message
    assert "21_model_editor.cedar" in error.message


def test_policy_without_id_is_refused(policy_dir):
    edit(policy_dir / "01_admins.cedar", '@id("admin-all")\n', "")
    (error,) = load_error(policy_dir).errors
    assert "needs an @id" in error.message


def test_templates_are_refused(policy_dir):
    (policy_dir / "30_template.cedar").write_text(
        '@id("t")\npermit (principal == ?principal, action, resource);\n'
    )
    assert "templates" in load_error(policy_dir).errors[0].message


def test_missing_schema_is_refused(policy_dir):
    (policy_dir / "schema.cedarschema").unlink()
    assert "schema" in str(load_error(policy_dir))


def test_store_refuses_to_start_on_a_broken_set(policy_dir):
    edit(policy_dir / "00_workspace.cedar", "resource is Workspace\n);", "resource is Workspace\n")
    with pytest.raises(PolicyLoadError):
        PolicyStore(policy_dir)


CAROL = Principal("carol", "carol", groups=("vision",))
MODEL = Bindings.from_data(REGISTERED_MODEL, "churn", {"groups": {"vision": "reader"}})


def carol_may_tag(authorizer: Authorizer) -> bool:
    ref = ResourceRef(REGISTERED_MODEL, "churn")
    return authorizer.decide(CAROL, "SetRegisteredModelTag", [ref], lambda r: MODEL).allowed


def test_hot_reload_applies_an_edit_and_keeps_the_last_good_set(policy_dir, caplog):
    store = PolicyStore(policy_dir)
    authorizer = Authorizer(store)
    assert not carol_may_tag(authorizer)
    reader = policy_dir / "20_model_reader.cedar"

    # readers may set model tags: one line in the reader's file
    edit(
        reader,
        'Action::"GetRegisteredModel",',
        'Action::"GetRegisteredModel",\n    Action::"SetRegisteredModelTag",',
    )
    assert store.refresh()
    good = store.current.revision
    assert carol_may_tag(authorizer)

    # a broken edit is refused and logged; the last good set stays in force
    edit(reader, "resource is RegisteredModel", "resource is RegistredModel")
    with caplog.at_level(logging.ERROR, logger="cedarflow.policy"):
        assert not store.refresh()
    assert store.current.revision == good
    assert store.last_error is not None and "20_model_reader.cedar" in str(store.last_error)
    assert "20_model_reader.cedar" in caplog.text
    assert carol_may_tag(authorizer)

    # an unchanged directory is not reloaded
    assert not store.refresh()

    # fixing the file installs the new set again
    edit(reader, "resource is RegistredModel", "resource is RegisteredModel")
    edit(reader, '\n    Action::"SetRegisteredModelTag",', "")
    assert store.refresh()
    assert store.last_error is None
    assert not carol_may_tag(authorizer)


def test_watcher_thread_picks_up_an_edit(policy_dir):
    store = PolicyStore(policy_dir, poll_interval=0.05)
    authorizer = Authorizer(store)
    store.start()
    try:
        edit(
            policy_dir / "20_model_reader.cedar",
            'Action::"GetRegisteredModel",',
            'Action::"GetRegisteredModel",\n    Action::"SetRegisteredModelTag",',
        )
        for _ in range(200):  # bounded wait for the watcher
            if carol_may_tag(authorizer):
                break
            time.sleep(0.05)
        assert carol_may_tag(authorizer)
    finally:
        store.stop()


def test_deleting_a_role_file_is_a_change_too(policy_dir):
    store = PolicyStore(policy_dir)
    before = store.current.revision
    (policy_dir / "23_model_protect_production.cedar").unlink()
    assert store.refresh()
    assert store.current.revision != before
    assert "model-protect-production" not in store.current.sources


# ---- the schema and the route table agree ---------------------------------------------

_CEDAR_TYPE_OF_KIND = {
    "experiment": "Experiment",
    "experiment_name": "Experiment",
    "run": "Experiment",
    "trace": "Experiment",
    "logged_model": "Experiment",
    "dataset": "Experiment",
    "scorer": "Experiment",
    "artifact_path": "Experiment",
    "label_schema": "Experiment",
    "issue": "Experiment",
    "review_queue": "Experiment",
    REGISTERED_MODEL: "RegisteredModel",
    WORKSPACE: "Workspace",
}
PERMISSION_ACTIONS = {
    ("GetExperimentPermissions", "Experiment"),
    ("UpdateExperimentPermissions", "Experiment"),
    ("GetRegisteredModelPermissions", "RegisteredModel"),
    ("UpdateRegisteredModelPermissions", "RegisteredModel"),
    ("GetUserPermissions", "Workspace"),  # another user's effective role
    ("RegisterExternalSource", "Workspace"),  # a model-version source outside the store
    ("GetRun", "Experiment"),  # model-version sources resolve to these too
    ("GetLoggedModel", "Experiment"),
    ("GetModelVersion", "RegisteredModel"),
}


def _table_pairs() -> set[tuple[str, str]]:
    pairs = set()
    for route in route_table().routes:  # MLflow's rows and the gateway's own
        for spec in route.refs:
            if spec.source == "source":  # resolved at parse time to one of several kinds
                continue
            pairs.add((spec.action or route.action, _CEDAR_TYPE_OF_KIND[spec.kind]))
            if spec.kind == "dataset":  # a dataset linked to no experiment: the workspace
                pairs.add((spec.action or route.action, "Workspace"))
    return pairs


def test_every_action_of_the_table_is_declared_for_its_resource_type():
    schema = load_policies(POLICIES).schema
    pairs = sorted(_table_pairs() | PERMISSION_ACTIONS)
    text = "\n".join(
        f'@id("p{i}")\npermit (principal, action == Action::"{a}", resource is {t});'
        for i, (a, t) in enumerate(pairs)
    )
    result = cedarpy.validate_policies(text, schema)
    bad = [(pairs[int(e.policy_id.removeprefix("policy"))], e.error) for e in result.errors]
    assert result.validation_passed, bad


def test_schema_declares_no_action_the_gateway_never_asks_about():
    schema_text = str(load_policies(POLICIES).schema)
    declared = {
        line.split('"')[1] for line in schema_text.splitlines() if line.startswith("action ")
    }
    asked = offered_actions() | {a for a, _ in PERMISSION_ACTIONS}
    assert declared == asked


def test_reload_sees_an_edit_that_keeps_size_and_mtime(policy_dir):
    store = PolicyStore(policy_dir)
    path = policy_dir / "00_workspace.cedar"
    before = path.stat()
    path.write_text(path.read_text().replace("// Calls", "// CALLS"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    assert store.refresh()


def test_removed_policy_directory_keeps_the_last_good_set(policy_dir):
    store = PolicyStore(policy_dir)
    good = store.current.revision
    shutil.rmtree(policy_dir)
    assert not store.refresh()
    assert store.current.revision == good and store.last_error is not None
