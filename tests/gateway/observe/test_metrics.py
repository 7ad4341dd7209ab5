"""`GET /metrics` is a call like MLflow's: authenticated, decided as `GetMetrics`, audited.

A gateway with the shipped policies (plus the documented example that lets a monitoring
group scrape, here the machine client's group) runs in front of a stand-in handler tier,
with role bindings in a local DynamoDB.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from gw_support import MACHINE
from sign_in import NAVIGATE, sign_in_on_dev_page

from gateway.routing.tables.gateway import METRICS_ACTION

REPO = Path(__file__).resolve().parents[3]
SCRAPERS = MACHINE.groups[0]  # the machine client's group is allowed to scrape


def _policies_with_scrapers(target: Path) -> Path:
    """The shipped policies, with the commented `workspace-metrics` example switched on."""
    shutil.copytree(REPO / "policies", target, ignore=shutil.ignore_patterns("tests"))
    workspace = target / "00_workspace.cedar"
    text = workspace.read_text()
    example = re.search(r"^// @id\(\"workspace-metrics\"\).*?^// \);$", text, re.M | re.S)
    assert example is not None, "00_workspace.cedar documents a metrics example"
    enabled = re.sub(r"^// ", "", example.group(0), flags=re.M)
    enabled = enabled.replace('Group::"monitoring"', f'Group::"{SCRAPERS}"')
    workspace.write_text(text + "\n" + enabled + "\n")
    return target


@pytest.fixture
def metrics_gateway(start_gateway, echo_upstream, dynalite_endpoint, tmp_path):
    store_uri = f"dynamodb://{dynalite_endpoint.removeprefix('http://')}/metrics_access"
    from store.dynamo.table import DynamoTable

    DynamoTable.from_uri(store_uri).ensure_table()
    gateway = start_gateway(
        echo_upstream[1],
        policies_dir=_policies_with_scrapers(tmp_path / "policies"),
        store_uri=store_uri,
        audit_path=tmp_path / "audit.jsonl",
    )
    yield gateway


def _audit(gateway) -> list[dict]:
    text = Path(gateway.config.audit_path).read_text()
    return [json.loads(line) for line in text.splitlines() if line]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_metrics_without_a_token_is_401_like_every_call(metrics_gateway):
    with metrics_gateway.client() as client:
        response = client.get("/metrics")
        forged = client.get("/metrics", headers={"X-Forwarded-User": "admin"})
    for answer in (response, forged):
        assert answer.status_code == 401
        assert answer.json()["error_code"] == "UNAUTHENTICATED"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "cedarflow_decisions_total" not in answer.text


def test_an_ordinary_user_is_denied_and_an_administrator_scrapes(metrics_gateway):
    idp = metrics_gateway.idp
    with metrics_gateway.client() as client:
        user = client.get("/metrics", headers=_bearer(idp.mint("uma", ("vision",))))
        admin = client.get("/metrics", headers=_bearer(idp.mint("ada", ("admins",))))
    assert user.status_code == 403
    assert user.json() == {
        "error_code": "PERMISSION_DENIED",
        "message": "Permission denied: GetMetrics on workspace 'default'.",
    }
    assert admin.status_code == 200
    assert admin.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'cedarflow_decisions_total{action="GetMetrics",outcome="deny"} 1' in admin.text
    lines = [x for x in _audit(metrics_gateway) if x.get("action") == METRICS_ACTION]
    assert [(x["username"], x["decision"], x["policies"]) for x in lines] == [
        ("uma", "deny", []),
        ("ada", "allow", ["admin-all"]),
    ]
    assert all(x["decided_on"] == ["Workspace", "default"] for x in lines)
    assert all(x["method"] == "GET" and x["path"] == "/metrics" for x in lines)


def test_a_machine_client_in_a_permitted_group_scrapes(metrics_gateway):
    token = metrics_gateway.idp.mint(MACHINE.client_id, machine_client_id=MACHINE.client_id)
    with metrics_gateway.client() as client:
        response = client.get("/metrics", headers=_bearer(token))
        posted = client.post("/metrics", headers=_bearer(token))
    assert response.status_code == 200, response.text
    assert "cedarflow_dynamodb_reads_total" in response.text
    assert posted.status_code == 403  # only GET /metrics is the metrics call
    [line] = [x for x in _audit(metrics_gateway) if x.get("action") == METRICS_ACTION]
    assert line["username"] == MACHINE.name and line["groups"] == [SCRAPERS]
    assert line["policies"] == ["workspace-metrics"]


def test_a_browser_signs_in_first_and_its_session_counts(metrics_gateway):
    with metrics_gateway.client(follow_redirects=False) as client:
        start = client.get("/metrics", headers=NAVIGATE)
        assert start.status_code == 302 and "/oauth2/login" in start.headers["location"]
        to_idp = client.get(start.headers["location"])
        back = sign_in_on_dev_page(client, to_idp.headers["location"], "ada", "admins")
        landed = client.get(back.headers["location"])
        assert landed.status_code == 303 and landed.headers["location"] == "/metrics"
        scraped = client.get("/metrics")
    assert scraped.status_code == 200 and "cedarflow_decide_seconds" in scraped.text
