"""`cedarflow serve` configured with exactly the outputs of the data and identity stacks
deployed into the AWS emulator: a browser signs in through the pool's hosted UI and ends with a
session, and an MLflow client with a token from the pool works end to end.

The emulator stands in for AWS through the standard endpoint variables only
(AWS_ENDPOINT_URL_DYNAMODB, _S3 and _COGNITO_IDENTITY_PROVIDER)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from emulated_stacks import PUBLIC_URL, REGION, DeployedStacks, deploy_data_and_identity
from serve_support import ServeProcess, cedarflow_command, secret_env
from test_stacks_in_emulator import PASSWORD, HiddenInputs, sign_in

from gateway.client.login_command import CALLBACK_PATH as CLI_CALLBACK_PATH

pytestmark = pytest.mark.slow

CLIENT_SCRIPT = Path(__file__).resolve().parents[1] / "serve" / "client_script.py"
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def deployed(ministack_endpoint: str) -> DeployedStacks:
    suffix = uuid.uuid4().hex[:6]
    return deploy_data_and_identity(ministack_endpoint, f"sv{suffix}", f"serve-{suffix}")


@pytest.fixture(scope="module")
def user(deployed: DeployedStacks) -> str:
    """Someone the pool's administrator created, in the team group."""
    cognito = deployed.client("cognito-idp")
    pool = deployed.identity["UserPoolId"]
    cognito.admin_create_user(
        UserPoolId=pool,
        Username="dana",
        UserAttributes=[
            {"Name": "email", "Value": "dana@example.test"},
            {"Name": "email_verified", "Value": "true"},
        ],
        MessageAction="SUPPRESS",
    )
    cognito.admin_set_user_password(
        UserPoolId=pool, Username="dana", Password=PASSWORD, Permanent=True
    )
    cognito.admin_add_user_to_group(
        UserPoolId=pool, Username="dana", GroupName=deployed.identity["TeamGroup"]
    )
    return "dana"


def _serve_env(deployed: DeployedStacks) -> dict[str, str]:
    """The task definition's environment, from the stack outputs (deploy/aws/service.yaml)."""
    data, identity = deployed.data, deployed.identity
    ui_secret = deployed.client("secretsmanager").get_secret_value(
        SecretId=identity["UiClientSecretArn"]
    )["SecretString"]
    clients = (identity["UiClientId"], identity["CliClientId"], identity["MachineClientId"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CEDARFLOW_", "AWS_"))}
    return (
        env
        | secret_env()
        | {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_DYNAMODB": deployed.endpoint,
            "AWS_ENDPOINT_URL_S3": deployed.endpoint,
            "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": deployed.endpoint,
            "CEDARFLOW_TABLE": data["TableUri"],
            "CEDARFLOW_ARTIFACTS": data["ArtifactsUri"],
            "CEDARFLOW_ISSUER": identity["Issuer"],
            "CEDARFLOW_JWKS_URL": identity["JwksUrl"],
            "CEDARFLOW_CLIENT_ID": ",".join(clients),
            "CEDARFLOW_SERVICE_CLIENT": f"{identity['MachineClientId']}=automation",
            "CEDARFLOW_PUBLIC_URL": PUBLIC_URL,
            "CEDARFLOW_UI_CLIENT_ID": identity["UiClientId"],
            "CEDARFLOW_UI_CLIENT_SECRET": ui_secret,
            "CEDARFLOW_CLI_CLIENT_ID": identity["CliClientId"],
            "CEDARFLOW_CLI_LOOPBACK_PORT": identity["CliLoopbackPort"],
            "CEDARFLOW_ADMIN_GROUP": identity["AdminGroup"],
            "CEDARFLOW_WORKERS": "1",
        }
    )


@pytest.fixture(scope="module")
def serve(deployed: DeployedStacks, tmp_path_factory) -> Iterator[ServeProcess]:
    env = _serve_env(deployed)
    # The emulator keeps neither TTL nor point-in-time recovery from the template: the
    # runbook's `table create` adds what is missing, then the table matches.
    created = subprocess.run(
        [*cedarflow_command(), "table", "create", "--table", env["CEDARFLOW_TABLE"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    log = tmp_path_factory.mktemp("serve-deployed") / "serve.log"
    instance = ServeProcess([], env, log).start()
    try:
        yield instance
    finally:
        assert instance.stop() == 0, instance.stderr
        instance.kill()


def _cookies(response: httpx.Response, jar: dict[str, str]) -> dict[str, str]:
    """Cookies the gateway set (Secure ones included: the load balancer speaks HTTPS)."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        jar[name.strip()] = rest.split(";", 1)[0]
    return jar


def _cookie_header(jar: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}


def test_readyz_with_the_deployed_pool_and_table(serve):
    ready = httpx.get(f"{serve.url}/readyz", timeout=60)
    assert ready.status_code == 200, ready.text


def test_cedarflow_login_is_told_the_cli_client_and_its_registered_port(serve, deployed):
    document = httpx.get(f"{serve.url}/.well-known/cedarflow", timeout=60).json()
    assert document["client_id"] == deployed.identity["CliClientId"]
    assert (document["redirect_host"], str(document["redirect_port"])) == (
        "localhost",
        deployed.identity["CliLoopbackPort"],
    )
    assert document["issuer"] == deployed.identity["Issuer"]
    assert document["authorization_endpoint"].startswith(deployed.endpoint)


def test_a_browser_signs_in_through_the_hosted_ui_and_gets_a_session(serve, deployed, user):
    jar: dict[str, str] = {}
    with httpx.Client(timeout=60, follow_redirects=False) as browser:
        # Not signed in: the gateway sends the browser to the pool's hosted UI.
        step = browser.get(f"{serve.url}/", headers=HTML)
        while step.status_code in (302, 303, 307) and step.headers["location"].startswith("/"):
            _cookies(step, jar)
            step = browser.get(
                f"{serve.url}{step.headers['location']}", headers=HTML | _cookie_header(jar)
            )
        _cookies(step, jar)
        assert step.status_code in (302, 303, 307), step.text[:500]
        authorize = urlsplit(step.headers["location"])
        assert f"{authorize.scheme}://{authorize.netloc}" == deployed.endpoint

        page = browser.get(step.headers["location"])
        assert page.status_code == 200, page.text[:500]
        answer = browser.post(
            f"{deployed.endpoint}/login",
            data={**HiddenInputs.of(page.text), "username": user, "password": PASSWORD},
        )
        assert answer.status_code == 302, answer.text[:500]
        callback = urlsplit(answer.headers["location"])
        assert f"{callback.scheme}://{callback.netloc}" == PUBLIC_URL
        assert "code" in parse_qs(callback.query)

        # The load balancer hands PUBLIC_URL's callback to an instance.
        back = browser.get(
            f"{serve.url}{callback.path}?{callback.query}", headers=HTML | _cookie_header(jar)
        )
        assert back.status_code in (302, 303), back.text[:500]
        _cookies(back, jar)

        home = browser.get(f"{serve.url}/", headers=HTML | _cookie_header(jar))
        assert home.status_code == 200 and "<html" in home.text.lower()
        search = browser.get(
            f"{serve.url}/ajax-api/2.0/mlflow/experiments/search",
            params={"max_results": 10},
            headers=_cookie_header(jar),
        )
        assert search.status_code == 200, search.text


def test_an_mlflow_client_with_a_pool_token_works_end_to_end(serve, deployed, user):
    # `cedarflow login`'s flow: the public CLI client, its registered loopback callback.
    port = deployed.identity["CliLoopbackPort"]
    callback = f"http://localhost:{port}{CLI_CALLBACK_PATH}"
    tokens, _ = sign_in(deployed, deployed.identity["CliClientId"], callback, user, secret=None)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env |= {"MLFLOW_TRACKING_URI": serve.url, "MLFLOW_TRACKING_TOKEN": tokens["access_token"]}

    def client(*args: str) -> dict:
        done = subprocess.run(
            [sys.executable, str(CLIENT_SCRIPT), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    written = client("write", f"deployed-{uuid.uuid4().hex[:6]}")
    read = client("read", written["run_id"], written["model_uri"])
    assert read["notes"] == "trained on the emulator"
    assert read["prediction"] == pytest.approx(7.0)
    bucket = deployed.data["ArtifactBucketName"]
    listed = deployed.client("s3").list_objects_v2(Bucket=bucket)
    assert any(o["Key"].endswith("docs/notes.txt") for o in listed.get("Contents", []))
