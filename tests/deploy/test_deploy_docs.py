"""deploy/README.md and deploy/RUNBOOK.md name only options, parameters and outputs that exist."""

from __future__ import annotations

import re
import subprocess

from deploy_support import AWS_DIR, ROOT, TEMPLATES, load_template

README = ROOT / "deploy" / "README.md"
RUNBOOK = ROOT / "deploy" / "RUNBOOK.md"


def deploy_options() -> set[str]:
    usage = subprocess.run(
        ["bash", str(AWS_DIR / "deploy.sh"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    return set(re.findall(r"(--[a-z-]+)", usage))


def template_names(section: str) -> set[str]:
    return {name for path in TEMPLATES for name in load_template(path).get(section, {})}


def test_every_deploy_option_in_the_readme_exists():
    documented = set(re.findall(r"^\| `(--[a-z-]+)", README.read_text(), re.MULTILINE))
    documented |= set(re.findall(r"deploy\.sh [^\n]*?(--[a-z-]+)", README.read_text()))
    assert documented
    assert documented <= deploy_options()


def test_every_deploy_option_in_the_runbook_exists():
    commands = re.findall(r"deploy/aws/deploy\.sh((?:[^\n]*\\\n)*[^\n]*)", RUNBOOK.read_text())
    used = {option for command in commands for option in re.findall(r"(--[a-z-]+)", command)}
    assert "--data-from-replica" in used
    assert used <= deploy_options()


def test_every_parameter_and_output_the_docs_use_exists():
    text = README.read_text() + RUNBOOK.read_text()
    parameters = set(re.findall(r"ParameterKey=(\w+)", text))
    for overrides in re.findall(r"--parameter-overrides((?: \w+=\S+)+)", text):
        parameters |= set(re.findall(r" (\w+)=", overrides))
    outputs = set(re.findall(r"OutputKey=='(\w+)'", text))
    assert {"TableName", "ManageTable"} <= parameters
    assert parameters <= template_names("Parameters")
    assert outputs <= template_names("Outputs")


def test_every_table_command_in_the_docs_parses():
    from gateway.cli import build_parser

    text = README.read_text() + RUNBOOK.read_text() + (ROOT / "README.md").read_text()
    mentions = re.findall(r"cedarflow table ((?:create|check|export|import)\b[^`\n]*)", text)
    commands = [mention for mention in mentions if "--" in mention]  # not a name in a sentence
    assert {c.split()[0] for c in commands} == {"create", "check", "export", "import"}
    for command in commands:
        command = command.split(" #")[0]  # a shell comment after the command
        words = re.sub(r"\$\([^)]*\)", "X", command).split()  # a shell substitution: one word
        build_parser().parse_args(["table", *words])
