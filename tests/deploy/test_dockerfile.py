"""deploy/container/Dockerfile: a pinned base, the cedarflow wheel, non-root, `cedarflow serve`."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass

import pytest
from deploy_support import DOCKERFILE, ROOT, only_resource, template

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int  # index of the FROM this instruction follows (-1: before the first FROM)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order, line continuations joined, comments and blank lines dropped."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
    return instructions


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(instructions) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.arguments)
    assert isinstance(value, list), f"{instruction.keyword} is not in exec form"
    return value


def copy_sources(instruction: Instruction) -> list[str]:
    """The sources of a COPY (its last word is the destination; --flags dropped)."""
    words = [w for w in instruction.arguments.split() if not w.startswith("--")]
    return [w.rstrip("/") for w in words[:-1]]


def one(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def test_every_base_image_is_pinned_by_digest(instructions):
    arguments = dict(
        i.arguments.split("=", 1) for i in instructions if i.keyword == "ARG" and "=" in i.arguments
    )
    bases = [i.arguments.split()[0] for i in instructions if i.keyword == "FROM"]
    assert len(bases) >= 2, "a multi-stage build: the build tools stay out of the image"
    stages = {
        i.arguments.split()[-1]
        for i in instructions
        if i.keyword == "FROM" and " AS " in i.arguments
    }
    for base in bases:
        image = re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], base)
        if image in stages:
            continue
        assert image.startswith("python:3.11-slim@"), image
        assert DIGEST.search(image), f"{image} is not pinned by digest"


def test_the_cedarflow_wheel_is_built_and_installed(instructions):
    build = [i.arguments for i in instructions if i.keyword == "RUN" and i.stage == 0]
    assert any("pip wheel" in run and "--no-deps" in run for run in build)
    assert any(re.search(r"pip install \S*cedarflow-\*\.whl", run) for run in build)
    copied = {
        source
        for i in instructions
        if i.keyword == "COPY" and i.stage == 0
        for source in copy_sources(i)
    }
    assert copied >= wheel_inputs(), "the wheel build needs these files in the build stage"


def wheel_inputs() -> set[str]:
    """What pyproject.toml builds the wheel from: itself, its readme, the package folders and
    the folders their links point into (the packaged policies)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    folders = {p.rstrip("*") for p in packages}
    assert all((ROOT / folder / "__init__.py").is_file() for folder in folders)
    linked = {
        path.resolve().relative_to(ROOT.resolve()).parts[0]
        for folder in folders
        for path in (ROOT / folder).rglob("*")
        if path.is_symlink()
    }
    return {"pyproject.toml", project["project"]["readme"], *folders, *linked}


def test_build_context_keeps_what_the_image_copies(instructions):
    patterns = [
        line.strip()
        for line in (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = {
        source
        for i in instructions
        if i.keyword == "COPY" and not i.arguments.startswith("--from")
        for source in copy_sources(i)
    }
    for source in sources:
        excluded = False
        for pattern in patterns:  # the last matching pattern decides, as Docker does
            negated = pattern.startswith("!")
            if fnmatch.fnmatch(source, pattern.lstrip("!")):
                excluded = not negated
        assert not excluded, f"{source} is left out of the build context"


def test_runs_as_a_user_other_than_root(runtime):
    user = one(runtime, "USER").arguments.split(":")[0]
    assert user not in ("root", "0")


def test_entry_point_is_cedarflow_serve(runtime):
    command = exec_form(one(runtime, "ENTRYPOINT")) + exec_form(one(runtime, "CMD"))
    assert command[:2] == ["cedarflow", "serve"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "cedarflow" in project["project"]["scripts"]


def test_health_check_asks_the_path_the_load_balancer_asks(runtime):
    health = one(runtime, "HEALTHCHECK").arguments
    group = only_resource(template("service.yaml"), "AWS::ElasticLoadBalancingV2::TargetGroup")
    path = group["Properties"]["HealthCheckPath"]
    assert path == "/healthz"
    assert f"http://127.0.0.1:{{port}}{path}" in health
    assert "os.environ.get('CEDARFLOW_PORT', '8080')" in health


def test_policies_are_in_the_image_and_serve_reads_them_there(runtime):
    (destination,) = [
        i.arguments.split()[-1]
        for i in runtime
        if i.keyword == "COPY" and "policies" in copy_sources(i)
    ]
    environment = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    assert f"CEDARFLOW_POLICIES={destination.rstrip('/')}" in environment
    assert (ROOT / "policies" / "schema.cedarschema").is_file()


def test_the_image_policies_are_what_serve_reads_and_a_mount_or_flag_overrides_them(runtime):
    from gateway.stack.serve_command import environment_variable, serve_flags

    environment = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    (setting,) = re.findall(r"(CEDARFLOW_POLICIES)=(\S+)", environment)
    assert setting[0] in {environment_variable(flag) for flag in serve_flags()}
    # Not inside the installed package: a directory mounted there replaces the policies.
    assert not setting[1].startswith("/opt/cedarflow")


def test_the_user_exists_with_a_uid_other_than_0(runtime):
    user = one(runtime, "USER").arguments.split(":")[0]
    created = " ".join(i.arguments for i in runtime if i.keyword == "RUN")
    uid = re.search(rf"useradd .*--uid (\d+) .*{user}", created)
    assert uid and int(uid.group(1)) != 0
    entry = [i.keyword for i in runtime].index("ENTRYPOINT")
    assert [i.keyword for i in runtime].index("USER") < entry
