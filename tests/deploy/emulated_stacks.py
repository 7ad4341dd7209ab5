"""The data and identity stacks deployed into the AWS emulator, and what they output.

`deploy_data_and_identity` returns the stack outputs, which are the configuration of
`cedarflow serve` (TableUri, ArtifactsUri, Issuer, JwksUrl, the app client ids).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from deploy_support import AWS_DIR

REGION = "us-east-1"
PUBLIC_URL = "https://mlflow.example.test"
_STACK_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class DeployedStacks:
    """Outputs of the data and identity stacks: what `cedarflow serve` is configured with."""

    endpoint: str
    name: str
    data: dict[str, str]
    identity: dict[str, str]

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 2}),
        )

    def emulated(self, url: str) -> str:
        """An AWS URL of the pool (JWKS, discovery) as the emulator serves it."""
        return self.endpoint + urlsplit(url).path


def deploy_data_and_identity(endpoint: str, name: str, domain_prefix: str) -> DeployedStacks:
    """Deploy data.yaml, then identity.yaml, as deploy.sh does; return their outputs."""
    stacks = DeployedStacks(endpoint, name, {}, {})
    cloudformation = stacks.client("cloudformation")
    data = _deploy(cloudformation, f"{name}-data", "data.yaml", {"Name": name})
    identity = _deploy(
        cloudformation,
        f"{name}-identity",
        "identity.yaml",
        {"Name": name, "PublicUrl": PUBLIC_URL, "DomainPrefix": domain_prefix},
    )
    return DeployedStacks(endpoint, name, data, identity)


def _deploy(cloudformation, stack: str, template: str, parameters: dict[str, str]) -> dict:
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=(AWS_DIR / template).read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    deadline = time.monotonic() + _STACK_TIMEOUT_SECONDS
    while True:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        if not described["StackStatus"].endswith("_IN_PROGRESS"):
            break
        assert time.monotonic() < deadline, f"{stack} still {described['StackStatus']}"
        time.sleep(0.3)
    if described["StackStatus"] != "CREATE_COMPLETE":
        events = cloudformation.describe_stack_events(StackName=stack)["StackEvents"]
        reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events]
        raise AssertionError(f"{stack} {described['StackStatus']}: {reasons[:8]}")
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
