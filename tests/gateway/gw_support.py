"""Servers and constants shared by the gateway tests."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.config import GatewayConfig, ServiceClient
from gateway.stack.handler_tier import HandlerTier, HandlerTierSettings
from store.dynamo.table import DynamoTable

SECRET = b"0123456789abcdef0123456789abcdef"
POLICIES = Path(__file__).resolve().parents[2] / "policies"  # the shipped roles
# Artifact uploads: the one kind of call whose body has no size limit and streams through;
# downloads from the same place stream back.
ARTIFACT_UPLOAD = "/api/2.0/mlflow-artifacts/artifacts"
SLOW = "/version"  # answered after five seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerThread:
    """An ASGI app served by uvicorn on 127.0.0.1 in a daemon thread."""

    def __init__(self, app, port: int | None = None, *, proxy_headers: bool = True) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            proxy_headers=proxy_headers,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                break
            self.thread.join(0.02)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class EchoUpstream:
    """A stand-in handler tier that records what it receives: every call is answered, artifact
    downloads of `?size=N` bytes stream, `SLOW` is slow."""

    received: list[dict] = field(default_factory=list)
    # Streaming probes: set by the upstream when the first request chunk arrives, and awaited
    # (by the upstream) before it sends the rest of a streamed response.
    first_chunk_seen: threading.Event = field(default_factory=threading.Event)
    client_read_first_chunk: threading.Event = field(default_factory=threading.Event)

    def record(self, request: Request, body: bytes) -> None:
        self.received.append(
            {
                "method": request.method,
                "path": request.scope["path"],
                "raw_path": request.scope["raw_path"],
                "query": request.scope["query_string"],
                "headers": [(k.decode(), v.decode()) for k, v in request.scope["headers"]],
                "body": body,
            }
        )

    def app(self) -> Starlette:
        async def echo(request: Request) -> Response:
            self.record(request, await request.body())
            return JSONResponse({"ok": True}, headers={"set-cookie": "a=1"})

        async def upload(request: Request) -> Response:
            total = 0
            async for chunk in request.stream():
                if chunk and not self.first_chunk_seen.is_set():
                    self.first_chunk_seen.set()
                total += len(chunk)
            return JSONResponse({"received": total})

        async def artifact_upload(request: Request) -> Response:
            response = await upload(request)
            self.record(request, b"")  # streamed and counted, not kept
            return response

        async def download(request: Request) -> Response:
            self.record(request, b"")
            size = int(request.query_params.get("size", "0"))
            chunk = b"x" * 65536

            async def body():
                yield chunk[:size]
                if size <= len(chunk):
                    return
                # The rest only after the client has the first chunk: proves nothing buffers.
                await asyncio.to_thread(self.client_read_first_chunk.wait, 30)
                sent = len(chunk)
                while sent < size:
                    yield chunk
                    sent += len(chunk)

            return StreamingResponse(body(), media_type="application/octet-stream")

        async def slow(request: Request) -> Response:
            self.record(request, b"")
            await asyncio.sleep(5)
            return JSONResponse({"late": True})

        return Starlette(
            routes=[
                Route(ARTIFACT_UPLOAD + "/{path:path}", artifact_upload, methods=["PUT"]),
                Route(ARTIFACT_UPLOAD + "/{path:path}", download, methods=["GET"]),
                Route(SLOW, slow, methods=["GET"]),
                Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
            ]
        )


MACHINE = ServiceClient(client_id="trainer-client", name="svc-trainer", groups=("ml-jobs",))


def table_on(dynalite_endpoint: str, name: str) -> str:
    """A table on the tests' dynalite (created if missing): its store URI."""
    uri = f"dynamodb://{dynalite_endpoint.removeprefix('http://')}/{name}"
    DynamoTable.from_uri(uri).ensure_table()
    return uri


@contextlib.contextmanager
def handler_tier(store_uri: str, root: Path, **overrides) -> Iterator[str]:
    """MLflow's handler tier on `store_uri`, trusting identities signed with SECRET: its URL."""
    settings = HandlerTierSettings(
        store_uri=store_uri,
        artifacts_dir=root / "artifacts",
        identity_secret=SECRET.hex(),
        page_token_secret=secrets.token_hex(32),
        log_path=root / "handler.log",
        **overrides,
    )
    with HandlerTier(settings) as tier:
        yield tier.url


def gateway_config(
    upstream_url: str, port: int, root: Path, store_uri: str, **overrides
) -> GatewayConfig:
    """A gateway on 127.0.0.1:`port` with the dev identity provider (its key under `root`),
    deciding with the shipped policies on the table `store_uri`, auditing under `root`."""
    options = {
        "upstream_url": upstream_url,
        "identity_secret": SECRET,
        "public_url": f"http://127.0.0.1:{port}",
        "dev_idp_dir": root / "devidp",
        "service_clients": (MACHINE,),
        "policies_dir": POLICIES,
        "store_uri": store_uri,
        "audit_path": root / f"audit-{port}.jsonl",
    }
    return GatewayConfig(**(options | overrides))


@contextlib.contextmanager
def gateway_stack(dynalite_endpoint: str, root: Path, table: str) -> Iterator[tuple[str, object]]:
    """A handler tier and a gateway with the dev identity provider on a table of the local
    DynamoDB: the gateway's URL and its identity provider."""
    from gateway.app import create_app

    store_uri = table_on(dynalite_endpoint, table)
    with handler_tier(store_uri, root) as handler_url:
        port = free_port()
        app = create_app(gateway_config(handler_url, port, root, store_uri))
        with ServerThread(app, port=port, proxy_headers=False) as server:
            yield server.url, app.state.dev_idp
