"""The table `cedarflow up` creates is the one `cedarflow table check` expects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CEDARFLOW = str(Path(sys.executable).parent / "cedarflow")


def test_the_local_table_matches_the_schema(stack) -> None:
    secrets = stack.data_dir / "secrets"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": (secrets / "dynamodb-access-key-id.secret").read_text().strip(),
        "AWS_SECRET_ACCESS_KEY": (secrets / "dynamodb-secret-access-key.secret")
        .read_text()
        .strip(),
    }
    endpoint = stack.info["dynamodb_url"].removeprefix("http://")
    checked = subprocess.run(
        [CEDARFLOW, "table", "check", "--table", f"dynamodb://{endpoint}/cedarflow"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("DynamoDB table cedarflow matches the schema")
