"""Every CloudFormation template passes cfn-lint (errors, warnings and informational checks)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file
from deploy_support import TEMPLATES, load_template

# Where the stacks are expected to run; each region has its own resource and property specs.
LINT_REGIONS = ["us-east-1", "eu-west-1", "eu-central-1"]
EXPECTED_TEMPLATES = {
    "data.yaml",
    "identity.yaml",
    "network.yaml",
    "registry.yaml",
    "replica-bucket.yaml",
    "service.yaml",
}


def test_every_stack_has_its_template():
    assert {path.name for path in TEMPLATES} == EXPECTED_TEMPLATES


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_has_no_lint_findings(path: Path):
    matches = lint_file(path, ManualArgs(include_checks=["I"], regions=LINT_REGIONS))
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_suppressed_check_says_why(path: Path):
    """A check switched off in template or resource metadata names its reason beside it."""
    template = load_template(path)
    holders = {"template": template, **template["Resources"]}
    for where, holder in holders.items():
        metadata = holder.get("Metadata", {})
        ignored = metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        reasons = metadata.get("cfn-lint-reasons", {})
        for check in ignored:
            assert str(reasons.get(check, "")).strip(), (
                f"{path.name} {where}: {check} is suppressed without a reason in "
                "Metadata.cfn-lint-reasons"
            )
