"""`cedarflow serve`: the production process. The gateway on --host/--port and the handler tier
as a child on a private loopback port (gateway/stack/tiers.py, as `cedarflow up` starts them),
on a table and an artifact store that already exist, trusting only the configured issuers.

No local DynamoDB, no dev identity provider and no table creation, ever. AWS is reached through
boto3's default chain; AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL_S3 move the endpoints.
Before anything is bound or spawned it checks the secrets, the policy set and the table.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from gateway.config import (
    BodyLimits,
    BrowserLoginConfig,
    GatewayConfig,
    IssuerConfig,
    ServiceClient,
    SessionSettings,
)
from gateway.observe.jsonlog import log_line
from gateway.stack.handler_tier import HandlerTierSettings
from gateway.stack.processes import StackError
from gateway.stack.supervise import Death
from gateway.stack.tiers import Tiers

IDENTITY_SECRET_ENV = "CEDARFLOW_IDENTITY_SECRET"  # noqa: S105 (a variable name)
SESSION_SECRET_ENV = "CEDARFLOW_SESSION_SECRET"  # noqa: S105 (a variable name)
UI_CLIENT_SECRET_ENV = "CEDARFLOW_UI_CLIENT_SECRET"  # noqa: S105 (a variable name)
COGNITO_ENDPOINT_ENV = "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"
MIN_SECRET_LENGTH = 32
# How long an instance trusts role bindings it read: a grant or revoke made through another
# instance applies here within this many seconds (README, "Run in production").
BINDINGS_TTL_SECONDS = 5.0


@dataclass(frozen=True)
class Secrets:
    identity: str
    session: str
    ui_client: str | None = None

    @classmethod
    def from_environment(cls, environ: dict[str, str]) -> Secrets:
        values = {}
        for name in (IDENTITY_SECRET_ENV, SESSION_SECRET_ENV):
            value = environ.get(name, "").strip()
            if not value:
                raise StackError(
                    f"{name} is not set: serve takes its secrets from the environment only "
                    "(the same values on every instance)"
                )
            if len(value) < MIN_SECRET_LENGTH:
                raise StackError(f"{name} is shorter than {MIN_SECRET_LENGTH} characters")
            values[name] = value
        return cls(
            identity=values[IDENTITY_SECRET_ENV],
            session=values[SESSION_SECRET_ENV],
            ui_client=environ.get(UI_CLIENT_SECRET_ENV) or None,
        )


@dataclass(frozen=True)
class ServeConfig:
    table: str  # dynamodb://...
    artifacts: str  # s3://bucket/prefix or a folder
    issuers: tuple[IssuerConfig, ...]
    policies_dir: Path
    host: str = "0.0.0.0"
    port: int = 8080
    public_url: str | None = None
    service_clients: tuple[ServiceClient, ...] = ()
    ui_client_id: str | None = None
    cli_client_id: str | None = None
    cli_loopback_port: int = 47318
    admin_groups: tuple[str, ...] = ("admins",)
    audit_log: str = "-"
    workers: int = 2
    drain_seconds: float = 30.0
    body_limits: BodyLimits = BodyLimits()
    webhook_networks: tuple[str, ...] = ()  # where registry webhooks may go besides the internet

    def url_for(self, port: int) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def browser_login(
        self, ui_client_secret: str | None, environ: Mapping[str, str] | None = None
    ) -> BrowserLoginConfig | None:
        """Browser sign-in with the UI app client of the first issuer; endpoints discovered."""
        if not self.ui_client_id:
            return None
        issuer = self.issuers[0].issuer
        discovery = f"{issuer}/.well-known/openid-configuration"
        return BrowserLoginConfig(
            issuer=issuer,
            discovery_url=cognito_endpoint(discovery, environ or {}),
            client_id=self.ui_client_id,
            client_secret=ui_client_secret,
            logout_style="cognito" if _is_cognito(issuer) else "oidc",
            cli_client_id=self.cli_client_id,
            # Cognito matches callback URLs exactly: plain http is allowed on localhost only.
            cli_loopback_host="localhost",
            cli_loopback_port=self.cli_loopback_port,
        )


class Service(Tiers):
    """`cedarflow serve` in the foreground; `run()` returns the exit code."""

    prog = "cedarflow serve"
    logging_configured = True

    def __init__(
        self,
        config: ServeConfig,
        environ: dict[str, str],
        err: IO = sys.stderr,
        check_table: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__(err)
        self.config = config
        self.environ = environ
        self.drain_seconds = config.drain_seconds
        self._check_table = check_table or table_problem
        self._secrets: Secrets | None = None

    def check(self) -> None:
        self._secrets = Secrets.from_environment(self.environ)
        _check_policies(self.config.policies_dir)
        problem = self._check_table(self.config.table)
        if problem:
            raise StackError(problem)

    def address(self) -> tuple[str, int]:
        return self.config.host, self.config.port

    def handler_settings(self) -> HandlerTierSettings:
        return HandlerTierSettings(
            store_uri=self.config.table,
            artifacts_dir=self.config.artifacts,
            identity_secret=self._secrets.identity,
            page_token_secret="",  # derived from the identity secret: every instance agrees
            log_to_stderr=True,
            workers=self.config.workers,
            webhook_networks=self.config.webhook_networks,
        )

    def gateway_config(self, port: int, handler_url: str) -> GatewayConfig:
        from store.handler.identity import parse_secret

        config = self.config
        audit = None if config.audit_log == "-" else Path(config.audit_log)
        return GatewayConfig(
            upstream_url=handler_url,
            identity_secret=parse_secret(self._secrets.identity),
            public_url=config.url_for(port),
            issuers=tuple(
                replace(i, jwks_url=cognito_endpoint(i.jwks_url, self.environ))
                for i in config.issuers
            ),
            service_clients=config.service_clients,
            admin_groups=config.admin_groups,
            browser_login=config.browser_login(self._secrets.ui_client, self.environ),
            session=SessionSettings(secret=self._secrets.session.encode()),
            policies_dir=config.policies_dir.absolute(),
            store_uri=config.table,
            bindings_ttl_seconds=BINDINGS_TTL_SECONDS,
            audit_path=audit,
            body_limits=config.body_limits,
        )

    def serving(self, port: int) -> None:
        line = log_line(
            "info",
            "cedarflow.serve",
            "serving",
            url=self.config.url_for(port),
            port=port,
            table=self.config.table,
            issuers=[issuer.issuer for issuer in self.config.issuers],
            policies=str(self.config.policies_dir.absolute()),
        )
        print(line, file=self.err, flush=True)

    def report_restart(self, death: Death) -> None:
        line = log_line(
            "warning",
            "cedarflow.serve",
            death.line,
            child=death.name,
            ended=death.how,
            delay_seconds=death.delay_seconds,
            failed_starts=death.failures,
        )
        print(line, file=self.err, flush=True)


def table_problem(uri: str) -> str | None:
    """Why serve cannot use the table at `uri`, in one line; None when it matches the schema.
    Serve never creates a table: `cedarflow table create` does."""
    from botocore.exceptions import BotoCoreError, ClientError

    from store.dynamo.check import check_table
    from store.dynamo.errors import StoreUnavailable, error_code
    from store.dynamo.uri import InvalidStoreUri

    try:
        report = check_table(uri)
    except InvalidStoreUri as exc:
        return f"--table: {exc}"
    except ClientError as exc:
        return f"cannot read table {uri}: {error_code(exc)}: {exc.response['Error'].get('Message')}"
    except (BotoCoreError, StoreUnavailable) as exc:  # unreachable after botocore's retries
        return f"cannot reach table {uri}: {exc}"
    return None if report.matches else report.summary


def _check_policies(directory: Path) -> None:
    from gateway.authz.policies import PolicyLoadError, load_policies

    if not directory.is_dir():
        raise StackError(f"--policies {directory} is not a directory")
    try:
        load_policies(directory)
    except PolicyLoadError as exc:
        first = exc.errors[0] if exc.errors else exc
        more = f" (and {len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
        raise StackError(f"the policy set in {directory} is refused: {first}{more}") from None


def _is_cognito(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host.startswith("cognito-idp.") and host.endswith(".amazonaws.com")


def cognito_endpoint(url: str, environ: Mapping[str, str]) -> str:
    """A Cognito user pool URL (its keys, its discovery document) at the endpoint that
    AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER names, as boto3 would reach the service there."""
    endpoint = environ.get(COGNITO_ENDPOINT_ENV, "").strip().rstrip("/")
    if not endpoint or not _is_cognito(url):
        return url
    parts = urlsplit(url)
    return endpoint + parts.path + (f"?{parts.query}" if parts.query else "")


def with_principal_claim(issuers: tuple[IssuerConfig, ...], claim: str) -> tuple[IssuerConfig, ...]:
    return tuple(replace(issuer, principal_claim=claim) for issuer in issuers)
