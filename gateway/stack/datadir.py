"""The data directory of a local stack: what lives where, its secrets, and `stack.json`.

DATA/.lock                       held (flock) by the running stack
DATA/stack.json                  {"url", "dev_idp", "issuer", "pid", ...} while it runs
DATA/secrets/identity.secret     gateway <-> handler tier HMAC secret (0600)
DATA/secrets/page-token.secret   signs page tokens (0600)
DATA/secrets/dynamodb-*.secret   the key pair the local DynamoDB accepts (0600)
DATA/devidp/                     the dev identity provider's RSA key
DATA/dynamodb/                   dynalite's LevelDB
DATA/artifacts/                  artifacts (mlflow-artifacts:/)
DATA/logs/                       logs of the local DynamoDB and the handler tier
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from gateway.stack.dynamodb_server import LocalCredentials

DEFAULT_DATA_DIR = Path(".cedarflow")


@dataclass(frozen=True)
class DataDir:
    root: Path

    @classmethod
    def at(cls, path: Path | str) -> DataDir:
        return cls(Path(path).expanduser().absolute())

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def stack_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def devidp(self) -> Path:
        return self.root / "devidp"

    @property
    def dynamodb(self) -> Path:
        return self.root / "dynamodb"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def create(self) -> None:
        """Create the directory tree; everything but artifacts is private to the user."""
        for path in (self.root, self.secrets, self.logs):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.artifacts.mkdir(parents=True, exist_ok=True)

    def secret(self, name: str) -> str:
        """A hex secret generated once and kept in DATA/secrets/NAME.secret (mode 0600)."""
        path = self.secrets / f"{name}.secret"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            value = path.read_text().strip()
            if value:
                return value
            raise ValueError(f"{path} is empty: remove it to generate a new secret") from None
        value = secrets.token_hex(32)
        with os.fdopen(fd, "w") as file:
            file.write(value + "\n")
        return value

    def dynamodb_credentials(self) -> LocalCredentials:
        """The local DynamoDB's key pair, generated once: only this user can read it."""
        return LocalCredentials(
            access_key_id=self.secret("dynamodb-access-key-id"),
            secret_access_key=self.secret("dynamodb-secret-access-key"),
        )

    def write_stack_info(self, info: dict) -> None:
        """Write stack.json atomically (readers never see half a file)."""
        tmp = self.stack_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(self.stack_file)

    def read_stack_info(self) -> dict | None:
        try:
            return json.loads(self.stack_file.read_text())
        except (OSError, ValueError):
            return None

    def remove_stack_info(self) -> None:
        self.stack_file.unlink(missing_ok=True)


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"where the stack keeps its data (default ./{DEFAULT_DATA_DIR})",
    )
