"""The local DynamoDB: dynalite (npm, LevelDB on disk), or moto in memory where Node.js is missing.

    with DynamoServer(Path("DATA/dynamodb"), log_path=Path("DATA/logs/dynamodb.log")) as db:
        db.url   # "http://127.0.0.1:PORT"

dynalite is installed once with npm into a cache directory and reused. A data directory is
locked (flock) so that two servers never open the same LevelDB (the second one would answer a
few requests and then fail). Readiness is a DescribeTable of a table that does not exist: its
ResourceNotFoundException comes only once the server reads its data and has checked the
request's key. Not ListTables: dynalite reads every key of its database to answer it (seconds on a
data directory of 100k runs, past the probe's timeout), and such a server asked for it again and
again at start crashed ("Iterator is not open").

With `credentials`, dynalite answers only requests signed (SigV4) with that key: the port is on
loopback, but every local user can reach it. The key reaches the launcher in its environment,
never on its command line (which `ps` shows to everyone). moto's server checks no key.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from gateway.stack import processes
from gateway.stack.processes import StackError

DYNALITE_VERSION = "4.0.0"
NODE_MIN_MAJOR = 20
_LAUNCHER = Path(__file__).with_name("dynalite_launch.js")
_START_ATTEMPTS = 3
_READY_TIMEOUT = 30.0
_PROBE_TABLE = "cedarflow-readiness-probe"  # never created: asking for it proves the server is up


# The launcher reads the key from these; clients use boto3's own AWS_ACCESS_KEY_ID/SECRET.
_KEY_ID_ENV = "CEDARFLOW_DYNAMODB_ACCESS_KEY_ID"
_SECRET_ENV = "CEDARFLOW_DYNAMODB_SECRET_ACCESS_KEY"  # noqa: S105 - a variable's name
_PORT_ENV = "CEDARFLOW_DYNAMODB_PORT"  # set on a restart: clients keep the URL they were given
# Session credentials of the user's own AWS account must not ride along to the local server.
_FOREIGN_CREDENTIALS = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


@dataclass(frozen=True)
class LocalCredentials:
    """The key pair the local DynamoDB accepts (kept in the data directory's secrets/)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)  # never in a log or a traceback

    def apply_to(self, env: MutableMapping[str, str]) -> None:
        """Make boto3's default chain in a process with this environment sign with this key."""
        for name in _FOREIGN_CREDENTIALS:
            env.pop(name, None)
        env["AWS_ACCESS_KEY_ID"] = self.access_key_id
        env["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key


def cache_dir() -> Path:
    """Where Cedarflow keeps what it downloads (XDG cache convention)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cedarflow"


def dynalite_dir() -> Path:
    """The npm prefix holding the pinned dynalite; its node_modules is what the launcher loads."""
    return cache_dir() / f"dynalite-{DYNALITE_VERSION}"


def node_problem() -> str | None:
    """Why Node.js cannot run dynalite here, or None when it can."""
    node = shutil.which("node")
    if node is None:
        return "Node.js is not installed"
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return "Node.js does not run"
    if major < NODE_MIN_MAJOR:
        return f"Node.js {version} is too old (dynalite needs {NODE_MIN_MAJOR} or later)"
    return None


def install_dynalite() -> Path:
    """Install dynalite@DYNALITE_VERSION with npm unless present; returns its node_modules dir.

    Installs into a temporary sibling and renames it into place, under a lock, so that two
    concurrent first starts neither race nor leave a half-installed directory behind.
    """
    target = dynalite_dir()
    modules = target / "node_modules"
    if _installed_version(modules) == DYNALITE_VERSION:
        return modules
    npm = shutil.which("npm")
    if npm is None:
        raise StackError(f"npm is not installed: cannot install dynalite {DYNALITE_VERSION}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".dynalite-{DYNALITE_VERSION}.install.lock", wait=True):
        if _installed_version(modules) == DYNALITE_VERSION:
            return modules
        staging = Path(tempfile.mkdtemp(prefix=".dynalite-", dir=target.parent))
        try:
            result = subprocess.run(
                [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund",
                 "--no-save", "--loglevel=error", f"dynalite@{DYNALITE_VERSION}"],
                capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            if result.returncode != 0:
                detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
                raise StackError(f"npm install dynalite@{DYNALITE_VERSION} failed: {detail}")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return modules


def _installed_version(modules: Path) -> str | None:
    try:
        return json.loads((modules / "dynalite" / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


class FileLock:
    """flock on a file: held until exit; fails at once (wait=False) when another holds it."""

    def __init__(self, path: Path, *, wait: bool) -> None:
        self.path = path
        self.wait = wait
        self.file: IO | None = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        self.file = open(self.path, "a")  # noqa: SIM115 - held for the lock's lifetime
        flags = fcntl.LOCK_EX if self.wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(self.file, flags)
        except BlockingIOError:
            self.file.close()
            self.file = None
            raise

    def release(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class DynamoServer:
    """One local DynamoDB process. `data_path=None` keeps everything in memory.

    `allow_moto`: where Node.js is missing, start moto's in-memory server instead (with a loud
    warning on stderr when data was meant to be kept) rather than fail.
    `credentials`: the only key dynalite accepts; None = any key (test servers).
    """

    def __init__(
        self,
        data_path: Path | None = None,
        *,
        log_path: Path | None = None,
        allow_moto: bool = True,
        warn: IO | None = None,
        credentials: LocalCredentials | None = None,
    ) -> None:
        self.data_path = data_path
        self.log_path = log_path
        self.allow_moto = allow_moto
        self.credentials = credentials
        self.warn = warn if warn is not None else sys.stderr
        self.kind = ""
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self._lock: FileLock | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def persistent(self) -> bool:
        return self.kind == "dynalite" and self.data_path is not None

    def __enter__(self) -> DynamoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server and wait until it answers requests; returns its URL."""
        try:
            argv = self._command()
            if self.data_path is not None and self.kind == "dynalite":
                self._lock_data_dir()
            self._spawn_until_ready(argv)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        self._stop_process()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _stop_process(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None

    def _command(self) -> list[str]:
        problem = node_problem()
        if problem is None:
            modules = install_dynalite()
            self.kind = "dynalite"
            argv = [shutil.which("node") or "node", str(_LAUNCHER), str(modules)]
            if self.data_path is not None:
                self.data_path.mkdir(parents=True, exist_ok=True)
                argv.append(str(self.data_path))
            return argv
        if not self.allow_moto or not _moto_available():
            raise StackError(f"{problem} and moto is not installed: no local DynamoDB can start")
        self.kind = "moto"
        if self.data_path is not None:
            bar = "!" * 78
            print(
                f"{bar}\n!! WARNING: {problem}: using moto's IN-MEMORY DynamoDB instead of\n"
                f"!! dynalite. NOTHING IS KEPT: every experiment, run and model is lost when\n"
                f"!! the stack stops. Install Node.js {NODE_MIN_MAJOR}+ to keep data in "
                f"{self.data_path}.\n"
                "!! moto checks no key: any local user can read and change its table.\n"
                f"{bar}",
                file=self.warn,
                flush=True,
            )
        return [sys.executable, "-m", "gateway.stack.moto_launch"]

    def _lock_data_dir(self) -> None:
        assert self.data_path is not None
        lock = FileLock(self.data_path.parent / f"{self.data_path.name}.lock", wait=False)
        try:
            lock.acquire()
        except BlockingIOError:
            raise StackError(
                f"{self.data_path} is in use by another DynamoDB server (locked)"
            ) from None
        self._lock = lock

    def restart(self, stopping: threading.Event) -> None:
        """Start again on the same port and data (the tiers keep its URL); StackError if not."""
        self._stop_process()
        argv = self._command()
        port = int(self.url.rsplit(":", 1)[1])
        problem = self._spawn_once(argv, self._environment() | {_PORT_ENV: str(port)})
        if problem is not None:
            raise StackError(self._why_not(problem))

    def _spawn_until_ready(self, argv: list[str]) -> None:
        problem = "no attempt"
        env = self._environment()
        for _ in range(_START_ATTEMPTS):
            problem = self._spawn_once(argv, env)
            if problem is None:
                return
            # A previous server on the same directory may still be closing its LevelDB.
            time.sleep(0.5)
        raise StackError(self._why_not(problem))

    def _spawn_once(self, argv: list[str], env: dict[str, str]) -> str | None:
        """One start: None once it answers requests, else why not (nothing left running)."""
        self.proc = processes.spawn(argv, env=env, log_path=self.log_path, stdout=subprocess.PIPE)
        deadline = time.monotonic() + _READY_TIMEOUT
        port = processes.read_json_line(self.proc, deadline).get("port")
        problem = "it did not report a port"
        if port:
            self.url = f"http://127.0.0.1:{port}"
            problem = _wait_for_answers(self.url, self.proc, deadline, self.credentials)
        if problem is not None:
            self._stop_process()
        return problem

    def _why_not(self, problem: str) -> str:
        where = f" (see {self.log_path})" if self.log_path else ""
        tail = processes.last_line(self.log_path) if self.log_path else ""
        return f"local DynamoDB ({self.kind}) did not start: {tail or problem}{where}"

    def _environment(self) -> dict[str, str]:
        """The server's environment: the key it accepts, and none inherited by mistake."""
        env = {
            k: v for k, v in os.environ.items() if k not in (_KEY_ID_ENV, _SECRET_ENV, _PORT_ENV)
        }
        if self.credentials is not None:
            env[_KEY_ID_ENV] = self.credentials.access_key_id
            env[_SECRET_ENV] = self.credentials.secret_access_key
        return env


def _moto_available() -> bool:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


def _wait_for_answers(
    url: str, proc: subprocess.Popen, deadline: float, credentials: LocalCredentials | None
) -> str | None:
    """Ask for a table that does not exist until the server says so (or, should someone have
    made that table, describes it); returns why not when the deadline passes."""
    import botocore.session
    from botocore.config import Config

    key = credentials or LocalCredentials("local", "local")  # an open server takes any key
    client = botocore.session.get_session().create_client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )
    problem = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"it exited with code {proc.returncode}"
        try:
            client.describe_table(TableName=_PROBE_TABLE)
            return None
        except client.exceptions.ResourceNotFoundException:
            return None
        except Exception as exc:  # any other failure means "not ready yet"
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        time.sleep(0.05)
    return problem


def main(argv: list[str] | None = None) -> int:
    """`python -m gateway.stack.dynamodb_server --install`: fetch dynalite ahead of first use."""
    args = argv if argv is not None else sys.argv[1:]
    if args != ["--install"]:
        print("usage: python -m gateway.stack.dynamodb_server --install", file=sys.stderr)
        return 2
    problem = node_problem()
    if problem:
        print(f"{problem}: cedarflow will fall back to moto (in memory)", file=sys.stderr)
        return 0
    try:
        print(install_dynalite())
    except StackError as exc:
        print(f"cedarflow: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
