"""deploy.sh and teardown.sh agree with the templates: stacks in order, parameters that exist,
outputs that exist, the table checked (never created) before the service starts on it.

`aws`, `docker` and `cedarflow` are recording stand-ins (fake_cli.py); the scripts run unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import AWS_DIR, ROOT, load_template

REQUIRED = [
    "--region",
    "eu-west-1",
    "--public-url",
    "https://mlflow.example.com",
    "--certificate-arn",
    "arn:aws:acm:eu-west-1:123456789012:certificate/0f0e0d0c",
    "--domain-prefix",
    "example-mlflow",
]


def run_script(tmp_path: Path, script: str, *args: str) -> tuple[subprocess.CompletedProcess, list]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = Path(__file__).with_name("fake_cli.py")
    for program in ("aws", "docker", "cedarflow"):
        wrapper = bin_dir / program
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" {program} "$@"\n')
        wrapper.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.write_text("")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_CLI_LOG": str(log),
    }
    result = subprocess.run(
        ["bash", str(AWS_DIR / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return result, calls


def stack_deployments(calls: list) -> list[tuple[str, str, str, dict[str, str]]]:
    """(stack, template file, region, parameters) of each `aws cloudformation deploy`."""
    deployments = []
    for call in calls:
        if call[:3] != ["aws", "cloudformation", "deploy"]:
            continue
        option = {call[i]: call[i + 1] for i in range(3, len(call) - 1) if call[i].startswith("--")}
        start = call.index("--parameter-overrides") + 1
        parameters = dict(pair.split("=", 1) for pair in call[start:])
        deployments.append(
            (option["--stack-name"], option["--template-file"], option["--region"], parameters)
        )
    return deployments


def outputs_read(calls: list) -> list[tuple[str, str]]:
    read = []
    for call in calls:
        if call[:3] == ["aws", "cloudformation", "describe-stacks"] and "--query" in call:
            query = call[call.index("--query") + 1]
            key = query.split("OutputKey=='")[1].split("'")[0]
            read.append((call[call.index("--stack-name") + 1], key))
    return read


def program_steps(calls: list) -> list[str]:
    """The deployment's steps in order: stacks by name, then `docker build`, `table check`."""
    steps = []
    for call in calls:
        if call[:3] == ["aws", "cloudformation", "deploy"]:
            steps.append(call[call.index("--stack-name") + 1])
        elif call[:2] == ["docker", "build"]:
            steps.append("docker build")
        elif call[:2] == ["docker", "push"]:
            steps.append("docker push")
        elif call[0] == "cedarflow":
            steps.append(" ".join(call[:3]))
    return steps


@pytest.fixture(scope="module")
def full_deploy(tmp_path_factory) -> tuple[subprocess.CompletedProcess, list]:
    tmp = tmp_path_factory.mktemp("deploy")
    return run_script(tmp, "deploy.sh", *REQUIRED, "--cedarflow", str(tmp / "bin" / "cedarflow"))


def test_stacks_image_and_table_check_come_in_order(full_deploy):
    result, calls = full_deploy
    assert result.returncode == 0, result.stderr
    assert program_steps(calls) == [
        "cedarflow-network",
        "cedarflow-data",
        "cedarflow-identity",
        "cedarflow-registry",
        "docker build",
        "docker push",
        "cedarflow table check",
        "cedarflow-service",
    ]


def test_table_is_checked_where_the_service_will_use_it_and_never_created(full_deploy):
    _, calls = full_deploy
    cedarflow = [call for call in calls if call[0] == "cedarflow"]
    assert cedarflow == [
        ["cedarflow", "table", "check", "--table", "dynamodb://eu-west-1/cedarflow"]
    ]
    assert ("cedarflow-data", "TableName") in outputs_read(calls)
    (service,) = [d for d in stack_deployments(calls) if d[0] == "cedarflow-service"]
    assert service[3]["TableName"] == "cedarflow"


def test_every_parameter_given_exists_and_every_required_one_is_given(full_deploy):
    _, calls = full_deploy
    for stack, template_file, _, parameters in stack_deployments(calls):
        declared = load_template(Path(template_file))["Parameters"]
        assert set(parameters) <= set(declared), (
            f"{stack}: unknown {set(parameters) - set(declared)}"
        )
        required = {name for name, p in declared.items() if "Default" not in p}
        assert required <= set(parameters), f"{stack}: missing {required - set(parameters)}"


def test_every_output_read_exists(full_deploy):
    _, calls = full_deploy
    templates = {stack: Path(file) for stack, file, _, _ in stack_deployments(calls)}
    for stack, key in outputs_read(calls):
        assert key in load_template(templates[stack])["Outputs"], f"{stack} has no output {key}"


def test_image_is_built_from_the_dockerfile_at_the_repository_root(full_deploy):
    _, calls = full_deploy
    (build,) = [call for call in calls if call[:2] == ["docker", "build"]]
    assert build[build.index("-f") + 1] == str(ROOT / "deploy" / "container" / "Dockerfile")
    assert build[-1] == str(ROOT)
    tag = build[build.index("-t") + 1]
    (service,) = [d for d in stack_deployments(calls) if d[0] == "cedarflow-service"]
    assert tag.rsplit(":", 1)[1] == service[3]["ImageTag"]


def test_prints_the_url(full_deploy):
    result, _ = full_deploy
    assert "URL:             https://mlflow.example.com" in result.stdout


def test_existing_vpc_replaces_the_network_stack(tmp_path):
    result, calls = run_script(
        tmp_path,
        "deploy.sh",
        *REQUIRED,
        "--vpc-id",
        "vpc-1",
        "--subnet-ids",
        "subnet-1,subnet-2",
        "--assign-public-ip",
        "DISABLED",
        "--image-tag",
        "v1",
        "--cedarflow",
        str(tmp_path / "bin" / "cedarflow"),
    )
    assert result.returncode == 0, result.stderr
    deployments = {stack: params for stack, _, _, params in stack_deployments(calls)}
    assert "cedarflow-network" not in deployments
    assert not [call for call in calls if call[0] == "docker"]
    service = deployments["cedarflow-service"]
    assert (service["VpcId"], service["SubnetIds"], service["AssignPublicIp"]) == (
        "vpc-1",
        "subnet-1,subnet-2",
        "DISABLED",
    )
    assert service["ImageTag"] == "v1"


def test_replica_region_gets_its_bucket_before_the_data_stack_names_it(tmp_path):
    result, calls = run_script(
        tmp_path,
        "deploy.sh",
        *REQUIRED,
        "--replica-region",
        "eu-central-1",
        "--image-tag",
        "v1",
        "--cedarflow",
        str(tmp_path / "bin" / "cedarflow"),
    )
    assert result.returncode == 0, result.stderr
    deployments = stack_deployments(calls)
    names = [d[0] for d in deployments]
    assert names.index("cedarflow-replica-bucket") < names.index("cedarflow-data")
    replica = deployments[names.index("cedarflow-replica-bucket")]
    assert (Path(replica[1]).name, replica[2]) == ("replica-bucket.yaml", "eu-central-1")
    assert deployments[names.index("cedarflow-data")][3]["ReplicaRegion"] == "eu-central-1"


def test_failover_runs_on_the_replicated_data_of_the_second_region(tmp_path):
    result, calls = run_script(
        tmp_path,
        "deploy.sh",
        *REQUIRED[2:],
        "--region",
        "eu-central-1",
        "--data-from-replica",
        "--image-tag",
        "v1",
        "--cedarflow",
        str(tmp_path / "bin" / "cedarflow"),
    )
    assert result.returncode == 0, result.stderr
    deployments = {stack: (region, params) for stack, _, region, params in stack_deployments(calls)}
    assert "cedarflow-data" not in deployments
    region, service = deployments["cedarflow-service"]
    assert region == "eu-central-1"
    # The global table keeps its name in every region; the bucket is the replica's.
    assert ("cedarflow-replica-bucket", "ArtifactBucketName") in outputs_read(calls)
    assert (service["TableName"], service["ArtifactBucketName"]) == (
        "cedarflow",
        "ArtifactBucketName-value",
    )
    assert ["cedarflow", "table", "check", "--table", "dynamodb://eu-central-1/cedarflow"] in calls


def test_teardown_stops_the_service_and_keeps_the_data(tmp_path):
    result, calls = run_script(tmp_path, "teardown.sh", "--region", "eu-west-1")
    assert result.returncode == 0, result.stderr
    deleted = [call[call.index("--stack-name") + 1] for call in calls if "delete-stack" in call]
    assert deleted == ["cedarflow-service", "cedarflow-network"]
    for kept in ("cedarflow-data", "cedarflow-identity", "cedarflow-registry"):
        assert kept in result.stdout
