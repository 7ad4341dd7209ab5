"""The two tiers every Cedarflow process runs: the handler tier as a child on a private loopback
port and the gateway in this process. `cedarflow up` (gateway/stack/local.py) and `cedarflow
serve` (gateway/stack/serve.py) both start them with `Tiers.run()`.

Start order: checks that need nothing running, bind the gateway's port, the backing services
(the local DynamoDB of `up`), the handler tier, then the gateway; so a process that cannot start
fails before it spawns anything and leaves nothing behind. On SIGTERM the gateway stops
accepting, lets the calls in flight finish (up to the drain grace), then the children stop.

A child that dies while serving is restarted on the same port after a backoff delay
(gateway/stack/supervise.py); the gateway answers 502/503 JSON meanwhile and /readyz says which
part is down. A child that never stays up stops the process with one line.
"""

from __future__ import annotations

import errno
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import IO

from gateway.config import GatewayConfig
from gateway.stack.handler_tier import HandlerTier, HandlerTierSettings
from gateway.stack.processes import StackError
from gateway.stack.supervise import Backoff, Death, Supervisor

_WATCH_INTERVAL = 1.0
_WATCHER_JOIN_SECONDS = 45.0  # a local DynamoDB start in progress waits up to 30 s
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequested(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: stop everything and exit cleanly."""


class Tiers:
    """Runs in the foreground until a signal; `run()` returns the exit code.

    Subclasses say what to check first, what to start before the handler tier, and how the
    gateway is configured once its port is bound.
    """

    prog = "cedarflow"
    drain_seconds: float | None = None  # None: wait for every call in flight
    logging_configured = False  # True: the command set up logging; uvicorn keeps its hands off
    backoff = Backoff()

    def __init__(self, err: IO = sys.stderr) -> None:
        self.err = err
        self._handler: HandlerTier | None = None
        self._server = None  # uvicorn.Server once the gateway is built
        self._failure: str | None = None
        self._stopping = threading.Event()  # set once the process stops: no more restarts
        self._watcher: threading.Thread | None = None

    # -- what a subclass provides --

    def check(self) -> None:
        """Refuse to start (StackError) before anything is bound or spawned."""

    def address(self) -> tuple[str, int]:
        raise NotImplementedError

    def start_backing(self, address: str, port: int) -> None:
        """Start what the handler tier needs, once the gateway's address is bound."""

    def handler_settings(self) -> HandlerTierSettings:
        raise NotImplementedError

    def gateway_config(self, port: int, handler_url: str) -> GatewayConfig:
        raise NotImplementedError

    def serving(self, port: int) -> None:
        """The gateway answers: tell the user."""

    def children(self) -> Iterator[tuple[str, object]]:
        """The children watched while serving, each with a name and a `proc`."""
        yield "handler tier", self._handler

    def report_restart(self, death: Death) -> None:
        """One line per restart: which child, how it ended, the delay before it starts again."""
        print(f"{self.prog}: {death.line}", file=self.err, flush=True)

    def restarted(self, name: str) -> None:
        """A child came back (on the same port): a subclass may update what it told the user."""

    def stop_backing(self) -> None:
        """Stop what `start_backing` started (the handler tier is already stopped)."""

    def unexpected(self, exc: Exception) -> str:
        """The one line shown for an error nobody foresaw (a subclass may log the traceback)."""
        return f"{type(exc).__name__}: {exc}".splitlines()[0]

    # -- the run --

    def run(self) -> int:
        previous = _install_stop_handlers()
        try:
            self._start_and_serve()
        except StopRequested:
            pass
        except StackError as exc:
            print(f"{self.prog}: {exc}", file=self.err, flush=True)
            return 1
        except Exception as exc:  # still one line for the user
            print(f"{self.prog}: {self.unexpected(exc)}", file=self.err, flush=True)
            return 1
        finally:
            self._stop_children()
            _restore_handlers(previous)
        if self._failure:
            print(f"{self.prog}: {self._failure}", file=self.err, flush=True)
            return 1
        return 0

    def _start_and_serve(self) -> None:
        self.check()
        host, port = self.address()
        sock = bind(host, port)
        try:
            address, port = sock.getsockname()[:2]
            self.start_backing(address, port)
            self._handler = HandlerTier(self.handler_settings())
            handler_url = self._handler.start()
            self._serve(self.gateway_config(port, handler_url), sock)
        finally:
            sock.close()

    def _serve(self, config: GatewayConfig, sock: socket.socket) -> None:
        import uvicorn

        from gateway.app import create_app

        app = create_app(config)
        options = {"log_config": None} if self.logging_configured else {}
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="auto",
                timeout_graceful_shutdown=self.drain_seconds,
                **options,
            )
        )
        port = sock.getsockname()[1]
        # The watcher spawns restarted children: it lives as long as they do (PDEATHSIG).
        self._watcher = threading.Thread(target=self._watch, args=(port,), daemon=True)
        self._watcher.start()
        self._server.run(sockets=[sock])
        if not self._server.started and not self._failure:
            raise StackError("the gateway did not start (see the messages above)")

    def _watch(self, port: int) -> None:
        """Announce once the gateway serves; restart a child that dies, within the backoff."""
        server = self._server
        stopping = self._stopping
        while not server.started and not server.should_exit:
            stopping.wait(0.05)
        if server.should_exit:
            return
        self.serving(port)
        supervisor = Supervisor(self.backoff, stopping, self.report_restart, self.restarted)
        # Alive until the children are stopped: a restarted child dies with this thread.
        while not stopping.is_set():
            for name, child in self.children():
                if server.should_exit:  # draining: the children stay as they are
                    break
                failure = supervisor.check(name, child)
                if failure and not stopping.is_set():
                    self._failure = failure
                    server.should_exit = True
            stopping.wait(_WATCH_INTERVAL)

    def _stop_children(self) -> None:
        # Signals during the stop must not interrupt it half way.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
        if self._server is not None:
            self._server.should_exit = True  # the watcher must not report this stop as a crash
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(_WATCHER_JOIN_SECONDS)  # a restart under way gives up first
        try:
            if self._handler:
                self._handler.stop()
            self.stop_backing()
        finally:
            _restore_handlers(previous)


def bind(host: str, port: int) -> socket.socket:
    """The gateway's listening socket, bound before anything is spawned."""
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


def _raise_stop(signum: int, frame: object) -> None:
    raise StopRequested(signal.Signals(signum).name)


def _install_stop_handlers() -> dict:
    return {sig: signal.signal(sig, _raise_stop) for sig in _STOP_SIGNALS}


def _restore_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
