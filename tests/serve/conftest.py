"""The AWS emulator `cedarflow serve` runs against in these tests, shared by the session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from serve_support import (
    AWS_TEST_ENV,
    UserPool,
    aws_client,
    create_table,
    secret_env,
    start_moto,
)

from gateway.stack import processes

GROUPS = ("vision", "nlp", "admins")


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> Iterator[str]:
    url, proc = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield url
    finally:
        processes.stop(proc)


@pytest.fixture(scope="session")
def user_pool(moto_endpoint) -> UserPool:
    return UserPool.create(moto_endpoint, GROUPS)


@pytest.fixture(scope="session")
def bucket(moto_endpoint) -> str:
    name = f"cedarflow-{uuid.uuid4().hex[:8]}"
    aws_client("s3", moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def table(moto_endpoint) -> str:
    """A fresh table on the emulator: its URI as serve takes it (boto3's endpoint variable)."""
    return create_table(moto_endpoint, f"cedarflow-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def serve_env(moto_endpoint) -> dict[str, str]:
    """What a container would get: AWS's standard variables and the two secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEDARFLOW_", "AWS_"))}
    env |= AWS_TEST_ENV
    env["AWS_ENDPOINT_URL_DYNAMODB"] = moto_endpoint
    env["AWS_ENDPOINT_URL_S3"] = moto_endpoint
    env |= secret_env()
    return env
