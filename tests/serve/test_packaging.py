"""The wheel is the product: installed into a fresh virtual environment (not editable, no
checkout anywhere on sys.path), it serves, creates tables, simulates with the policies inside
it, signs in and plugs into MLflow's client. What the code imports, the wheel declares."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from serve_support import AWS_TEST_ENV, ServeProcess, secret_env

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Modules only `cedarflow up` on a laptop imports, each with the extra that brings it.
LAPTOP_ONLY = {"moto": "local"}
TEST_ONLY = {"pytest", "moto", "ministack", "hypothesis", "ruff", "cfn-lint", "respx"}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_every_imported_module_is_a_declared_dependency():
    declared = {_name(r) for r in PROJECT["dependencies"]}
    extras = {
        extra: {_name(r) for r in requirements}
        for extra, requirements in PROJECT["optional-dependencies"].items()
    }
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for package in ("gateway", "store"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for module in set(_imports(path)):
                if module in sys.stdlib_module_names or module in ("gateway", "store"):
                    continue
                names = {_name(d) for d in distributions.get(module, [module])}
                if module in LAPTOP_ONLY:
                    if not names & extras[LAPTOP_ONLY[module]]:
                        missing.append(f"{path.relative_to(ROOT)}: {module} (extra)")
                elif not names & declared:
                    missing.append(f"{path.relative_to(ROOT)}: {module}")
    assert missing == []


def test_test_and_laptop_pieces_are_extras_only():
    declared = {_name(r) for r in PROJECT["dependencies"]}
    assert not declared & TEST_ONLY
    assert "moto" in {_name(r) for r in PROJECT["optional-dependencies"]["local"]}


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    cwd: Path  # a folder that is no checkout

    def run(self, *args: str, env: dict | None = None, timeout: float = 300):
        return subprocess.run(
            [*args],
            cwd=self.cwd,
            env=env or _clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


def _clean_env() -> dict[str, str]:
    """No variable that could put the checkout or the test environment on sys.path."""
    drop = ("PYTHON", "VIRTUAL_ENV", "CEDARFLOW_", "MLFLOW_", "AWS_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    # A copy of what the wheel is built from, so that the build leaves nothing in the checkout.
    source = root / "source"
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for folder in ("gateway", "store", "policies"):
        shutil.copytree(
            ROOT / folder,
            source / folder,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(root),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = root.glob("cedarflow-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", str(wheel)],
        capture_output=True, text=True, timeout=1800, cwd=root, env=_clean_env(),
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    cwd = root / "elsewhere"
    cwd.mkdir()
    return Installed(wheel, venv / "bin", cwd)


@pytest.mark.slow
def test_the_wheel_holds_the_default_policies(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    shipped = {p.name for p in (ROOT / "policies").glob("*.cedar")} | {"schema.cedarschema"}
    assert {f"gateway/policies/{name}" for name in shipped} <= names
    assert "gateway/policies/tests/default_roles.yaml" in names


@pytest.mark.slow
def test_installed_code_comes_from_the_wheel_not_the_checkout(installed):
    done = installed.run(
        str(installed.bin / "python"),
        "-c",
        "import gateway, store, json, sys; "
        "print(json.dumps([gateway.__file__, store.__file__, sys.path]))",
    )
    assert done.returncode == 0, done.stderr
    gateway_file, store_file, path = json.loads(done.stdout)
    site = str(installed.bin.parent)
    assert gateway_file.startswith(site) and store_file.startswith(site)
    assert not [p for p in path if p.startswith(str(ROOT))]


@pytest.mark.slow
def test_simulate_uses_the_packaged_policies(installed):
    site_policies = installed.run(
        str(installed.bin / "python"),
        "-c",
        "from gateway.authz.policies import PACKAGED_POLICIES as p; print(p)",
    ).stdout.strip()
    matrix = installed.run(str(installed.bin / "cedarflow"), "simulate", "matrix")
    assert matrix.returncode == 0, matrix.stderr
    assert "CreateExperiment" in matrix.stdout
    cases = installed.run(
        str(installed.bin / "cedarflow"),
        "simulate",
        "test",
        f"{site_policies}/tests/default_roles.yaml",
    )
    assert cases.returncode == 0, cases.stdout + cases.stderr


@pytest.mark.slow
def test_login_and_the_mlflow_plugins_are_installed(installed):
    login = installed.run(str(installed.bin / "cedarflow"), "login", "--help")
    assert login.returncode == 0 and "usage: cedarflow login" in login.stdout
    plugins = installed.run(
        str(installed.bin / "python"),
        "-c",
        "from importlib.metadata import entry_points as e; "
        "print(e(group='mlflow.request_auth_provider')['cedarflow'].load().__name__); "
        "print(e(group='mlflow.tracking_store')['dynamodb'].load().__name__); "
        "print(e(group='mlflow.model_registry_store')['dynamodb'].load().__name__)",
    )
    assert plugins.returncode == 0, plugins.stderr
    assert plugins.stdout.split() == [
        "CedarflowAuthProvider",
        "DynamoTrackingStore",
        "DynamoRegistryStore",
    ]


@pytest.mark.slow
def test_table_create_and_serve_from_the_wheel(installed, moto_endpoint, user_pool, bucket):
    env = _clean_env() | AWS_TEST_ENV | secret_env()
    env |= {"AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint, "AWS_ENDPOINT_URL_S3": moto_endpoint}
    table = f"dynamodb:///wheel-{uuid.uuid4().hex[:8]}"
    cedarflow = str(installed.bin / "cedarflow")
    for action in ("create", "check"):
        done = installed.run(cedarflow, "table", action, "--table", table, env=env)
        assert done.returncode == 0, done.stdout + done.stderr

    password = user_pool.add_user(f"wheel-{table[-8:]}", ["vision"])
    token = user_pool.sign_in(f"wheel-{table[-8:]}", password)
    args = ["--table", table, "--artifacts", f"s3://{bucket}/wheel", "--workers", "1"]
    serve = ServeProcess(
        [*args, *user_pool.serve_args()],
        env,
        installed.cwd / "serve.log",
        command=[cedarflow],
        cwd=installed.cwd,
    ).start()
    try:
        assert httpx.get(f"{serve.url}/readyz", timeout=30).status_code == 200
        created = httpx.post(
            f"{serve.url}/api/2.0/mlflow/experiments/create",
            json={"name": f"from-the-wheel-{table[-8:]}"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert created.status_code == 200, created.text
        serving = [line for line in serve.log_lines() if line.get("message") == "serving"]
        assert serving[0]["policies"].startswith(str(installed.bin.parent))
    finally:
        assert serve.stop() == 0, serve.stderr
