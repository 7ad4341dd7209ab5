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

import dataclasses
import errno
import os
import shlex
import shutil
import signal
import socket
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gateway.config import BodyLimits, GatewayConfig, IssuerConfig, ServiceClient
from gateway.devidp.provider import is_loopback_host
from gateway.stack.datadir import DEFAULT_DATA_DIR, DataDir
from gateway.stack.dynamodb_server import DynamoServer, FileLock
from gateway.stack.handler_tier import HandlerTier, HandlerTierSettings
from gateway.stack.processes import StackError

TABLE_NAME = "cedarflow"
_WATCH_INTERVAL = 1.0


class StopRequested(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: stop everything and exit cleanly."""


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


class Stack:
    """Runs the whole stack in the foreground until a signal; `run()` returns the exit code."""

    def __init__(self, config: StackConfig, out: IO = sys.stdout, err: IO = sys.stderr) -> None:
        self.config = config
        self.data = DataDir.at(config.data_dir)
        self.out = out
        self.err = err
        self._lock = FileLock(self.data.lock, wait=False)
        self._dynamo: DynamoServer | None = None
        self._handler: HandlerTier | None = None
        self._server = None  # uvicorn.Server once the gateway is built
        self._gateway_config: GatewayConfig | None = None
        self._store_uri = ""
        self._failure: str | None = None

    def run(self) -> int:
        previous = _install_stop_handlers()
        try:
            self._start_and_serve()
        except StopRequested:
            pass
        except StackError as exc:
            print(f"cedarflow: {exc}", file=self.err, flush=True)
            return 1
        except Exception as exc:  # still one line for the user; the traceback goes to a log
            print(f"cedarflow: {self._log_unexpected(exc)}", file=self.err, flush=True)
            return 1
        finally:
            self._stop_children()
            _restore_handlers(previous)
        if self._failure:
            print(f"cedarflow: {self._failure}", file=self.err, flush=True)
            return 1
        return 0

    def _log_unexpected(self, exc: Exception) -> str:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        log = self.data.logs / "cedarflow.log"
        try:
            with open(log, "a") as file:
                traceback.print_exception(exc, file=file)
        except OSError:
            return message
        return f"{message} (details in {log})"

    def _start_and_serve(self) -> None:
        problem = self.config.sign_in_problem()
        if problem:
            raise StackError(problem)
        try:
            self.data.create()
        except OSError as exc:
            raise StackError(f"cannot create {self.data.root}: {exc.strerror}") from None
        self._lock_data_dir()
        sock = _bind(self.config.host, self.config.port)
        try:
            config = self._with_bound_port(sock)
            self._start_children()
            self._serve(config, sock)
        finally:
            sock.close()

    def _lock_data_dir(self) -> None:
        try:
            self._lock.acquire()
        except BlockingIOError:
            info = self.data.read_stack_info() or {}
            owner = f" (pid {info['pid']}, {info.get('url')})" if "pid" in info else ""
            raise StackError(
                f"{self.data.root} is in use by another cedarflow stack{owner}"
            ) from None

    def _with_bound_port(self, sock: socket.socket) -> StackConfig:
        address, port = sock.getsockname()[:2]
        # A name such as localhost may resolve elsewhere: what was bound is what counts.
        if self.config.runs_dev_idp and not is_loopback_host(address):
            raise StackError(
                f"--host {self.config.host} is {address}, not a loopback address: the dev "
                "identity provider runs on loopback only (give an --issuer instead)"
            )
        return dataclasses.replace(self.config, port=port)

    def _start_children(self) -> None:
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
        self._handler = HandlerTier(
            HandlerTierSettings(
                store_uri=self._store_uri,
                artifacts_dir=self.data.artifacts,
                identity_secret=self.data.secret("identity"),
                page_token_secret=self.data.secret("page-token"),
                log_path=self.data.logs / "handler.log",
                dynamodb_credentials=credentials,
                webhook_networks=self.config.webhook_networks,
            )
        )
        self._handler.start()

    def _serve(self, config: StackConfig, sock: socket.socket) -> None:
        import uvicorn

        from gateway.app import create_app

        gateway_config = GatewayConfig(
            upstream_url=self._handler.url,
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
        self._gateway_config = gateway_config
        app = create_app(gateway_config)
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="auto")
        )
        watcher = threading.Thread(target=self._watch, args=(config,), daemon=True)
        watcher.start()
        try:
            self._server.run(sockets=[sock])
        finally:
            self.data.remove_stack_info()
        if not self._server.started and not self._failure:
            raise StackError("the gateway did not start (see the messages above)")

    def _watch(self, config: StackConfig) -> None:
        """Announce the stack once the gateway serves; stop it if a child dies."""
        server = self._server
        stopped = threading.Event()
        while not server.started and not server.should_exit:
            stopped.wait(0.05)
        if server.should_exit:
            return
        self.data.write_stack_info(self._stack_info(config))
        print(banner(config, self.data, self._dynamo), file=self.out, flush=True)
        while not server.should_exit:
            for name, child in (("local DynamoDB", self._dynamo), ("handler tier", self._handler)):
                code = child.proc.poll() if child and child.proc else None
                if code is not None:
                    self._failure = f"the {name} exited with code {code}; stopping"
                    server.should_exit = True
            stopped.wait(_WATCH_INTERVAL)

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

    def _stop_children(self) -> None:
        # Signals during the stop must not interrupt it half way.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
        if self._server is not None:
            self._server.should_exit = True  # the watcher must not report this stop as a crash
        try:
            if self._handler:
                self._handler.stop()
            if self._dynamo:
                self._dynamo.stop()
            self._lock.release()
        finally:
            _restore_handlers(previous)


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


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(False)
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise StackError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_stop(signum: int, frame: object) -> None:
    raise StopRequested(signal.Signals(signum).name)


def _install_stop_handlers() -> dict:
    return {sig: signal.signal(sig, _raise_stop) for sig in _STOP_SIGNALS}


def _restore_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
