"""data.yaml and identity.yaml deployed into an AWS emulator: the table serves the store, the
bucket is locked down, and people and machines sign in with tokens the gateway accepts.

The emulator (ministack) creates a GlobalTable as a single-region table and applies neither its
point-in-time recovery, deletion protection nor TTL; test_data_stack.py checks those settings
in the template.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import uuid
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx
import mlflow  # noqa: F401 - import MLflow fully before the store (its plugin registry)
import pytest
from deploy_support import index_definition, store_table_definition
from emulated_stacks import PUBLIC_URL, REGION, DeployedStacks, deploy_data_and_identity

from gateway.authn.bearer import Authenticator
from gateway.authn.browser import CALLBACK_PATH
from gateway.client.login_command import CALLBACK_PATH as CLI_CALLBACK_PATH
from gateway.config import BrowserLoginConfig, GatewayConfig, IssuerConfig, ServiceClient
from store.tracking import DynamoTrackingStore

pytestmark = pytest.mark.slow

PASSWORD = "Correct-Horse-42"


@pytest.fixture(scope="module")
def deployed(ministack_endpoint: str) -> DeployedStacks:
    suffix = uuid.uuid4().hex[:6]
    return deploy_data_and_identity(ministack_endpoint, f"cf{suffix}", f"cedarflow-{suffix}")


@pytest.fixture(scope="module")
def member(deployed: DeployedStacks) -> str:
    """A user of the pool in the admin group, with a permanent password."""
    cognito = deployed.client("cognito-idp")
    pool = deployed.identity["UserPoolId"]
    cognito.admin_create_user(
        UserPoolId=pool,
        Username="alice",
        UserAttributes=[
            {"Name": "email", "Value": "alice@example.test"},
            {"Name": "email_verified", "Value": "true"},
        ],
        MessageAction="SUPPRESS",
    )
    cognito.admin_set_user_password(
        UserPoolId=pool, Username="alice", Password=PASSWORD, Permanent=True
    )
    cognito.admin_add_user_to_group(
        UserPoolId=pool, Username="alice", GroupName=deployed.identity["AdminGroup"]
    )
    return "alice"


# ---- data ---------------------------------------------------------------------------------------


def test_deployed_table_has_the_stores_keys_index_and_stream(deployed):
    table = deployed.client("dynamodb").describe_table(TableName=deployed.data["TableName"])[
        "Table"
    ]
    expected = store_table_definition()
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == (
        expected.attributes
    )
    assert tuple((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]) == (
        expected.key_schema
    )
    indexes = {index_definition(i) for i in table["GlobalSecondaryIndexes"]}
    assert indexes == expected.indexes
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": expected.stream_view_type,
    }
    assert table["BillingModeSummary"]["BillingMode"] == expected.billing_mode
    assert deployed.data["TableUri"] == f"dynamodb://{REGION}/{deployed.data['TableName']}"


def test_tracking_store_works_on_the_deployed_table(deployed):
    host_port = deployed.endpoint.removeprefix("http://")
    store = DynamoTrackingStore(
        f"dynamodb://{host_port}/{deployed.data['TableName']}", "mlflow-artifacts:/"
    )
    experiment_id = store.create_experiment("deployed-table")
    run = store.create_run(experiment_id, "alice", 0, [], "first")
    found = store.search_runs([experiment_id], "", 1)  # 1 = ViewType.ACTIVE_ONLY
    assert [r.info.run_id for r in found] == [run.info.run_id]


def test_artifact_bucket_is_versioned_private_and_tls_only(deployed):
    s3 = deployed.client("s3")
    bucket = deployed.data["ArtifactBucketName"]
    assert deployed.data["ArtifactsUri"] == f"s3://{bucket}/{deployed.data['ArtifactPrefix']}"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert set(
        s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values()
    ) == {True}
    (statement,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


# ---- identity -----------------------------------------------------------------------------------


def test_discovery_names_the_issuer_the_outputs_give(deployed):
    issuer = deployed.identity["Issuer"]
    discovery = httpx.get(deployed.emulated(f"{issuer}/.well-known/openid-configuration")).json()
    assert discovery["issuer"] == issuer
    assert urlsplit(discovery["jwks_uri"]).path == urlsplit(deployed.identity["JwksUrl"]).path


def test_user_signs_in_to_the_ui_client_and_the_gateway_accepts_the_tokens(deployed, member):
    ui = deployed.identity["UiClientId"]
    secret = deployed.client("secretsmanager").get_secret_value(
        SecretId=deployed.identity["UiClientSecretArn"]
    )["SecretString"]
    # The gateway's browser sign-in sends this redirect URI.
    tokens, nonce = sign_in(deployed, ui, f"{PUBLIC_URL}{CALLBACK_PATH}", member, secret=secret)

    async def verify() -> tuple:
        async with httpx.AsyncClient() as http:
            authenticator = gateway_authenticator(deployed, http)
            caller = await authenticator.verify_token(tokens["access_token"])
        signed_in = await authenticator.verify_id_token(
            tokens["id_token"], client_id=ui, nonce=nonce
        )
        return caller.principal, signed_in

    caller, (signed_in, claims) = asyncio.run(verify())
    assert (caller.kind, caller.username) == ("user", member)
    assert deployed.identity["AdminGroup"] in caller.groups
    assert signed_in.principal.subject == caller.subject
    assert claims["email"] == "alice@example.test"


def test_cli_signs_in_on_its_loopback_callback_without_a_secret(deployed, member):
    cli = deployed.identity["CliClientId"]
    # `cedarflow login`'s redirect with a Cognito pool, on the port serve advertises.
    host = BrowserLoginConfig.cognito(REGION, "pool", "domain", cli).cli_loopback_host
    callback = f"http://{host}:{deployed.identity['CliLoopbackPort']}{CLI_CALLBACK_PATH}"
    tokens, _ = sign_in(deployed, cli, callback, member, secret=None)
    caller = verified(deployed, tokens["access_token"])
    assert (caller.client_id, caller.principal.username) == (cli, member)


def test_callbacks_other_than_the_registered_ones_are_refused(deployed):
    cli = deployed.identity["CliClientId"]
    port = int(deployed.identity["CliLoopbackPort"])
    for stray in (f"http://localhost:{port + 1}/callback", f"{PUBLIC_URL}/oauth2/callback"):
        response = httpx.get(
            f"{deployed.endpoint}/oauth2/authorize",
            params={**authorization_query(cli, stray, "state", pkce_pair()[1]), "nonce": "n"},
        )
        assert response.status_code == 400, stray


def test_machine_client_gets_a_token_for_its_service_principal(deployed):
    machine = deployed.identity["MachineClientId"]
    secret = deployed.client("cognito-idp").describe_user_pool_client(
        UserPoolId=deployed.identity["UserPoolId"], ClientId=machine
    )["UserPoolClient"]["ClientSecret"]
    response = httpx.post(
        f"{deployed.endpoint}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": deployed.identity["MachineScope"]},
        auth=(machine, secret),
    )
    assert response.status_code == 200, response.text
    service = ServiceClient(client_id=machine, name="automation", groups=("ci",))
    caller = verified(deployed, response.json()["access_token"], service_clients=(service,))
    assert (caller.principal.kind, caller.principal.username) == ("service", "automation")


# ---- helpers ------------------------------------------------------------------------------------


def gateway_authenticator(
    deployed: DeployedStacks,
    http: httpx.AsyncClient,
    service_clients: tuple[ServiceClient, ...] = (),
) -> Authenticator:
    """The gateway's own token verification, configured from the stack outputs as serve is."""
    outputs = deployed.identity
    issuer = IssuerConfig(
        issuer=outputs["Issuer"],
        jwks_url=deployed.emulated(outputs["JwksUrl"]),
        client_ids=(outputs["UiClientId"], outputs["CliClientId"], outputs["MachineClientId"]),
    )
    config = GatewayConfig(
        upstream_url="http://127.0.0.1:1",
        identity_secret=b"s" * 32,
        public_url=PUBLIC_URL,
        issuers=(issuer,),
        service_clients=service_clients,
        admin_groups=(outputs["AdminGroup"],),
    )
    return Authenticator(config, (issuer,), http)


def verified(deployed: DeployedStacks, token: str, service_clients: tuple[ServiceClient, ...] = ()):
    """The caller the gateway makes of a bearer token."""

    async def verify():
        async with httpx.AsyncClient() as http:
            authenticator = gateway_authenticator(deployed, http, service_clients)
            return await authenticator.verify_token(token)

    return asyncio.run(verify())


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorization_query(client_id: str, redirect_uri: str, state: str, challenge: str) -> dict:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid email profile",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


def sign_in(
    deployed: DeployedStacks, client_id: str, redirect_uri: str, user: str, *, secret: str | None
) -> tuple[dict, str]:
    """Authorization code + PKCE through the hosted sign-in form, as a browser goes through it."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    with httpx.Client(base_url=deployed.endpoint, follow_redirects=False) as browser:
        page = browser.get(
            "/oauth2/authorize",
            params={
                **authorization_query(client_id, redirect_uri, state, challenge),
                "nonce": nonce,
            },
        )
        assert page.status_code == 200, page.text
        form = HiddenInputs.of(page.text)
        answer = browser.post("/login", data={**form, "username": user, "password": PASSWORD})
        assert answer.status_code == 302, answer.text
        location = urlsplit(answer.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == redirect_uri
        query = parse_qs(location.query)
        assert query["state"] == [state]
        form = {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        if secret is None:
            tokens = browser.post("/oauth2/token", data={**form, "client_id": client_id})
        else:
            tokens = browser.post("/oauth2/token", data=form, auth=(client_id, secret))
        assert tokens.status_code == 200, tokens.text
        return tokens.json(), nonce


class HiddenInputs(HTMLParser):
    """The hidden fields of the sign-in form, which a browser sends back."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[values["name"]] = values.get("value") or ""

    @classmethod
    def of(cls, page: str) -> dict[str, str]:
        parser = cls()
        parser.feed(page)
        return parser.fields
