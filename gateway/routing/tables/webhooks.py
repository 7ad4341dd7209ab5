"""Route rows for registry webhooks (`/api/2.0/mlflow/webhooks*`): administrators only (the
list is answered empty to others, so the UI's Settings page loads for everyone).

A webhook is not attached to a model: it receives the events of every registered model and
prompt of the deployment, so no per-model role can bound it. Every call is decided on the
workspace, where only administrators (or a group the policies name) are permitted.
"""

from __future__ import annotations

from gateway.routing.build import api, ref, rows
from gateway.routing.model import Route
from store.vocabulary import WORKSPACE

WORKSPACE_REF = ref(WORKSPACE)
BASE = "/mlflow/webhooks"


def webhook_routes() -> list[Route]:
    f = "webhooks"
    one = f"{BASE}/{{webhook_id}}"
    return [
        *rows("POST", api(2, BASE), f, "CreateWebhook", WORKSPACE_REF),
        # everyone may ask; the answer lists every webhook to administrators, none to others
        *rows("GET", api(2, BASE), f, "ListWebhooks", WORKSPACE_REF, filter="webhooks"),
        *rows("GET", api(2, one), f, "GetWebhook", WORKSPACE_REF),
        *rows("PATCH", api(2, one), f, "UpdateWebhook", WORKSPACE_REF),
        *rows("DELETE", api(2, one), f, "DeleteWebhook", WORKSPACE_REF),
        *rows("POST", api(2, f"{one}/test"), f, "TestWebhook", WORKSPACE_REF),
    ]
