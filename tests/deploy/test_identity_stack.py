"""identity.yaml: the app clients' URLs are the ones the gateway and `cedarflow login` use."""

from __future__ import annotations

import re

import pytest
from deploy_support import branches, only_resource, resources_of_type, sub_text, template

from gateway.authn.browser import CALLBACK_PATH, SIGNED_OUT_PATH
from gateway.client.login_command import CALLBACK_PATH as CLI_CALLBACK_PATH
from gateway.config import BrowserLoginConfig, GatewayConfig, IssuerConfig


@pytest.fixture(scope="module")
def identity() -> dict:
    return template("identity.yaml")


def client(identity: dict, name: str) -> dict:
    return identity["Resources"][name]["Properties"]


def test_browser_client_calls_back_to_the_gateway(identity):
    ui = client(identity, "UiClient")
    assert [sub_text(url) for url in ui["CallbackURLs"]] == [f"${{PublicUrl}}{CALLBACK_PATH}"]
    assert [sub_text(url) for url in ui["LogoutURLs"]] == [f"${{PublicUrl}}{SIGNED_OUT_PATH}"]
    assert ui["AllowedOAuthFlows"] == ["code"]
    assert ui["AllowedOAuthFlowsUserPoolClient"] is True
    assert ui["GenerateSecret"] is True
    assert set(ui["AllowedOAuthScopes"]) == set(BrowserLoginConfig("i", "c").scopes)


def test_cli_client_is_public_with_the_loopback_callback(identity):
    cli = client(identity, "CliClient")
    # The host `cedarflow login` uses with a Cognito pool; the port is the parameter serve reports.
    host = BrowserLoginConfig.cognito("eu-west-1", "eu-west-1_x", "d", "c").cli_loopback_host
    assert [sub_text(url) for url in cli["CallbackURLs"]] == [
        f"http://{host}:${{CliLoopbackPort}}{CLI_CALLBACK_PATH}"
    ]
    assert cli["GenerateSecret"] is False
    assert cli["AllowedOAuthFlows"] == ["code"]
    assert identity["Parameters"]["CliLoopbackPort"]["Type"] == "Number"


def test_machine_client_uses_client_credentials_with_the_resource_servers_scope(identity):
    machine = client(identity, "MachineClient")
    server = only_resource(identity, "AWS::Cognito::UserPoolResourceServer")["Properties"]
    scopes = [scope["ScopeName"] for scope in server["Scopes"]]
    assert machine["AllowedOAuthFlows"] == ["client_credentials"]
    assert machine["GenerateSecret"] is True
    assert [sub_text(s) for s in machine["AllowedOAuthScopes"]] == [f"${{Name}}/{scopes[0]}"]
    assert server["Identifier"] == {"Ref": "Name"}
    assert identity["Resources"]["MachineClient"]["DependsOn"] == "ResourceServer"


def test_no_client_signs_in_with_a_plain_password(identity):
    for props in (
        p["Properties"]
        for p in resources_of_type(identity, "AWS::Cognito::UserPoolClient").values()
    ):
        assert "ALLOW_USER_PASSWORD_AUTH" not in props["ExplicitAuthFlows"]


def test_admin_group_defaults_to_the_gateways(identity):
    assert identity["Resources"]["AdminGroupResource"]["Properties"]["GroupName"] == {
        "Ref": "AdminGroup"
    }
    gateway_default = GatewayConfig("http://u", b"s", "http://p").admin_groups
    assert (identity["Parameters"]["AdminGroup"]["Default"],) == gateway_default


def test_issuer_output_is_the_pools_token_issuer(identity):
    # `!GetAtt UserPool.ProviderURL` is not used: AWS emulators do not offer it.
    issuer = sub_text(identity["Outputs"]["Issuer"]["Value"])
    jwks = sub_text(identity["Outputs"]["JwksUrl"]["Value"])
    expected = IssuerConfig.cognito("${AWS::Region}", "${UserPool}", ())
    assert (issuer, jwks) == (expected.issuer, expected.jwks_url)


def test_user_pool_survives_stack_deletion(identity):
    pool = identity["Resources"]["UserPool"]
    assert pool["DeletionPolicy"] == pool["UpdateReplacePolicy"] == "Retain"
    assert pool["Properties"]["DeletionProtection"] == "ACTIVE"


def test_federation_is_optional_and_offered_by_both_sign_in_clients(identity):
    provider = identity["Resources"]["FederatedProvider"]
    assert provider["Condition"] == "HasFederation"
    assert identity["Parameters"]["FederationType"]["AllowedValues"] == ["NONE", "SAML", "OIDC"]
    assert identity["Parameters"]["OidcClientSecret"]["NoEcho"] is True
    for name in ("UiClient", "CliClient"):
        with_federation, without = branches(client(identity, name)["SupportedIdentityProviders"])
        assert with_federation == ["COGNITO", {"Ref": "FederatedProvider"}]
        assert without == ["COGNITO"]


def test_ui_client_secret_goes_to_secrets_manager_never_to_an_output(identity):
    secret = identity["Resources"]["UiClientSecret"]["Properties"]
    assert secret["SecretString"] == {"Fn::GetAtt": ["UiClient", "ClientSecret"]}
    for output in identity["Outputs"].values():
        assert "ClientSecret" not in reads(output["Value"])


def reads(value) -> set[str]:
    """The attribute names a template value reads with Fn::GetAtt or ${X.Attr} in Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][1])
        if "Fn::Sub" in value:
            found |= {
                ref.split(".")[1] for ref in re.findall(r"\$\{([^}]+\.[^}]+)\}", sub_text(value))
            }
        for inner in value.values():
            found |= reads(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= reads(inner)
    return found
