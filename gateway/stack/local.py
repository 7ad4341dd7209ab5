"""`cedarflow up`: the local DynamoDB, the handler tier and the gateway, run as one stack.

The gateway runs in this process; the other two are children in their own process groups that
get SIGTERM if this process dies (even by SIGKILL). Start order: check how users sign in, lock
the data directory, bind the gateway's port, then the children, so that a stack that cannot
start fails before it spawns anything and leaves nothing behind.

The dev identity provider signs anyone in as anyone: it runs only on a loopback `--host` and only
when no `--issuer` is given; a non-loopback `--host` without `--issuer` is refused at start.
The local DynamoDB answers only requests signed with the data directory's key, which the
handler tier and the gateway get in their environment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gateway.config import BodyLimits, GatewayConfig, IssuerConfig, ServiceClient
from gateway.devidp.provider import is_loopback_host
from gateway.stack.datadir import DEFAULT_DATA_DIR, DataDir
from gateway.stack.dynamodb_server import DynamoServer, FileLock
from gateway.stack.handler_tier import HandlerTierSettings
from gateway.stack.processes import StackError
from gateway.stack.tiers import Tiers

TABLE_NAME = "cedarflow"


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path = DEFAULT_DATA_DIR
    host: str = "127.0.0.1"
    port: int = 8080
    issuers: tuple[IssuerConfig, ...] = ()
    dev_idp: bool = True  # False: --no-dev-idp; the provider is off with any issuer anyway
    service_clients: tuple[ServiceClient, ...] = ()
    policies_dir: Path | None = None  # set = every call decided by these Cedar policies
    body_limits: BodyLimits = BodyLimits()
    webhook_networks: tuple[str, ...] = ()  # CIDRs webhooks may be delivered to beyond public
    workers: int = 2  # handler tier processes

    @property
    def runs_dev_idp(self) -> bool:
        """The dev identity provider runs only when no outside issuer is trusted."""
        return self.dev_idp and not self.issuers

    def sign_in_problem(self) -> str | None:
        """Why users could not sign in, or could sign in as anyone from afar; None when fine."""
        if not self.issuers and not self.dev_idp:
            return "--no-dev-idp needs at least one --issuer: nobody could sign in"
        if self.runs_dev_idp and not is_loopback_host(self.host):
            shown = self.host or "''"
            return (
                f"--host {shown} is not a loopback address, and the dev identity "
                "provider would let anyone who reaches it sign in as anyone: give an --issuer "
                "(your identity provider) or use --host 127.0.0.1"
            )
        return None

    @property
    def public_url(self) -> str:
        """The gateway's URL as clients on this machine reach it (and the dev issuer's base)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


class Stack(Tiers):
    """Runs the whole stack in the foreground until a signal; `run()` returns the exit code."""

    def __init__(self, config: StackConfig, out: IO = sys.stdout, err: IO = sys.stderr) -> None:
        super().__init__(err)
        self.config = config
        self.data = DataDir.at(config.data_dir)
        self.out = out
        self._lock = FileLock(self.data.lock, wait=False)
        self._dynamo: DynamoServer | None = None
        self._gateway_config: GatewayConfig | None = None
        self._bound: StackConfig = config
        self._store_uri = ""

    def unexpected(self, exc: Exception) -> str:
        message = super().unexpected(exc)
        log = self.data.logs / "cedarflow.log"
        try:
            with open(log, "a") as file:
                traceback.print_exception(exc, file=file)
        except OSError:
            return message
        return f"{message} (details in {log})"

    def check(self) -> None:
        problem = self.config.sign_in_problem()
        if problem:
            raise StackError(problem)
        try:
            self.data.create()
        except OSError as exc:
            raise StackError(f"cannot create {self.data.root}: {exc.strerror}") from None
        self._lock_data_dir()

    def address(self) -> tuple[str, int]:
        return self.config.host, self.config.port

    def _lock_data_dir(self) -> None:
        try:
            self._lock.acquire()
        except BlockingIOError:
            info = self.data.read_stack_info() or {}
            owner = f" (pid {info['pid']}, {info.get('url')})" if "pid" in info else ""
            raise StackError(
                f"{self.data.root} is in use by another cedarflow stack{owner}"
            ) from None

    def start_backing(self, address: str, port: int) -> None:
        # A name such as localhost may resolve elsewhere: what was bound is what counts.
        if self.config.runs_dev_idp and not is_loopback_host(address):
            raise StackError(
                f"--host {self.config.host} is {address}, not a loopback address: the dev "
                "identity provider runs on loopback only (give an --issuer instead)"
            )
        self._bound = dataclasses.replace(self.config, port=port)
        credentials = self.data.dynamodb_credentials()
        self._dynamo = DynamoServer(
            self.data.dynamodb, log_path=self.data.logs / "dynamodb.log", credentials=credentials
        )
        self._dynamo.start()
        endpoint = self._dynamo.url.removeprefix("http://")
        self._store_uri = f"dynamodb://{endpoint}/{TABLE_NAME}"
        # The gateway runs in this process: its table client reads the key from here too.
        credentials.apply_to(os.environ)
        _ensure_table(self._store_uri)

    def handler_settings(self) -> HandlerTierSettings:
        return HandlerTierSettings(
            store_uri=self._store_uri,
            artifacts_dir=self.data.artifacts,
            identity_secret=self.data.secret("identity"),
            page_token_secret=self.data.secret("page-token"),
            log_path=self.data.logs / "handler.log",
            dynamodb_credentials=self.data.dynamodb_credentials(),
            webhook_networks=self.config.webhook_networks,
            workers=self.config.workers,
        )

    def gateway_config(self, port: int, handler_url: str) -> GatewayConfig:
        config = self._bound
        self._gateway_config = GatewayConfig(
            upstream_url=handler_url,
            identity_secret=bytes.fromhex(self.data.secret("identity")),
            public_url=config.public_url,
            issuers=config.issuers,
            dev_idp_dir=self.data.devidp if config.runs_dev_idp else None,
            service_clients=config.service_clients,
            policies_dir=config.policies_dir.absolute() if config.policies_dir else None,
            store_uri=self._store_uri,
            audit_path=self.data.logs / "audit.jsonl",
            body_limits=config.body_limits,
        )
        return self._gateway_config

    def serving(self, port: int) -> None:
        self.data.write_stack_info(self._stack_info(self._bound))
        print(banner(self._bound, self.data, self._dynamo), file=self.out, flush=True)

    def restarted(self, name: str) -> None:
        if name == "local DynamoDB":  # moto's comes back empty: the tiers need their table
            with contextlib.suppress(StackError):
                _ensure_table(self._store_uri)
        self.data.write_stack_info(self._stack_info(self._bound))  # the new child pids

    def children(self) -> Iterator[tuple[str, object]]:
        yield "local DynamoDB", self._dynamo
        yield from super().children()

    def _stack_info(self, config: StackConfig) -> dict:
        return {
            "url": config.public_url,
            "dev_idp": config.runs_dev_idp,
            "issuer": self._gateway_config.dev_issuer if config.runs_dev_idp else None,
            "issuers": [issuer.issuer for issuer in config.issuers],
            "pid": os.getpid(),
            "handler_url": self._handler.url,
            "dynamodb_url": self._dynamo.url,
            "dynamodb": self._dynamo.kind,
            "child_pids": [self._dynamo.pid, self._handler.pid],
            "data_dir": str(self.data.root),
        }

    def stop_backing(self) -> None:
        self.data.remove_stack_info()
        if self._dynamo:
            self._dynamo.stop()
        self._lock.release()


def _ensure_table(store_uri: str) -> None:
    """Create the table before any tier uses it (both tiers read and write it)."""
    from store.dynamo.table import DynamoTable

    try:
        DynamoTable.from_uri(store_uri).ensure_table()
    except Exception as exc:  # botocore errors carry their own one-line reason
        raise StackError(f"cannot create the DynamoDB table: {exc}") from None


def banner(config: StackConfig, data: DataDir, dynamo: DynamoServer | None) -> str:
    """What a user needs to start working: the URL, the UI, the two export lines."""
    # the data directory spelled out: the training shell is rarely in the same directory
    token_cmd = [_cedarflow_command(), "token", f"--data-dir {shlex.quote(str(data.root))}"]
    lines = [
        "Cedarflow is running.",
        f"  MLflow tracking URI: {config.public_url}",
        f"  MLflow UI:           {config.public_url}/",
        f"  Data:                {data.root}",
    ]
    if dynamo is not None and not dynamo.persistent:
        lines.append("  WARNING: in-memory DynamoDB: nothing is kept after the stack stops")
    if config.policies_dir is not None:
        lines.append(f"  Policies:            {config.policies_dir.absolute()}")
    if config.runs_dev_idp:
        lines += [
            f"  Dev sign-in issuer:  {config.public_url}/devidp (the UI asks for any user name)",
            f"  WARNING: anyone who can reach port {config.port} can sign in as anyone "
            "(dev identity provider, no password)",
            "",
            "In another shell (pick any user name and groups):",
            f"  export MLFLOW_TRACKING_URI={config.public_url}",
            "  export MLFLOW_TRACKING_TOKEN=$(" + " ".join(token_cmd) + " --user alice"
            " --groups vision)",
        ]
    else:
        issuers = ", ".join(issuer.issuer for issuer in config.issuers)
        lines += [
            f"  Sign-in issuers:     {issuers} (no dev identity provider)",
            "",
            "In another shell (with a token from your identity provider):",
            f"  export MLFLOW_TRACKING_URI={config.public_url}",
            "  export MLFLOW_TRACKING_TOKEN=<access token>",
        ]
    lines += ["", "Stop with Ctrl-C."]
    return "\n".join(lines)


def _cedarflow_command() -> str:
    """How the user's shell can run this same `cedarflow` (it may not be on PATH)."""
    me = Path(sys.argv[0]).absolute()
    if me.name == "cedarflow":
        on_path = shutil.which("cedarflow")
        if on_path and Path(on_path).resolve() == me.resolve():
            return "cedarflow"
        return shlex.quote(str(me))
    return "cedarflow"
