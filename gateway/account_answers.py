"""The signed-in user's account calls the UI makes, answered by the gateway in the shape of
MLflow's basic-auth app:

    users/current/permissions  the caller's effective role on every experiment and registered
                               model it is bound to (directly or through a group), as the
                               policies decide it; the review page enables its controls on it
    users/roles/list           the caller's own bindings: one role of direct bindings and one
                               per group (the Account page); another user's are refused
    users/list                 the names users have signed in with (the reviewer picker)
    users/update-password      refused: passwords belong to the identity provider

Bindings are found by reading the experiment and registered-model indexes (store/bindings.py
`bound_resources`), at most `MAX_ROWS` of them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.authz.decide import Authorizer
from gateway.errors import GatewayError, forbidden
from gateway.permissions_api import PROBES
from gateway.routing.model import Endpoint
from gateway.routing.parse import ResourceRef
from gateway.routing.tables.ui import (
    CURRENT_PERMISSIONS_ACTION,
    LIST_USERS_ACTION,
    UPDATE_PASSWORD_ACTION,
    USER_ROLES_ACTION,
)
from gateway.ui_answers import PRINCIPAL_STATE, user_number
from store.bindings import bound_resources, user_names
from store.dynamo.table import DynamoTable
from store.handler.identity import Principal
from store.vocabulary import DEFAULT_WORKSPACE, EXPERIMENT, PERMISSION_OF_ROLE

MAX_ROWS = 1000  # resources (and user names) one answer lists at most
PASSWORDS_ELSEWHERE = "Passwords are managed by your identity provider."
_TYPE = {EXPERIMENT: "experiment"}  # MLflow's resource_type names; the rest: registered_model


@dataclass(frozen=True)
class AccountAnswers:
    authorizer: Authorizer
    resolver: object  # gateway/authz/resolver.py Resolver: `prefetch(refs)`
    table: DynamoTable

    def endpoints(self) -> dict[str, Endpoint]:
        return {
            CURRENT_PERMISSIONS_ACTION: self.current_permissions,
            USER_ROLES_ACTION: self.user_roles,
            LIST_USERS_ACTION: self.users,
            UPDATE_PASSWORD_ACTION: self.update_password,
        }

    async def current_permissions(self, request: Request) -> Response:
        principal: Principal = getattr(request.state, PRINCIPAL_STATE)
        number = user_number(principal)
        rows = []
        for kind, resource_id, _, _ in await self._bound(principal):
            role = await self._effective_role(principal, kind, resource_id)
            if role is not None:
                rows.append(_permission(number, f"__user_{number}__", kind, resource_id, role))
        is_admin = bool(set(principal.groups) & set(self.authorizer.admin_groups))
        return JSONResponse({"is_admin": is_admin, "permissions": rows})

    async def user_roles(self, request: Request) -> Response:
        principal: Principal = getattr(request.state, PRINCIPAL_STATE)
        username = request.query_params.get("username")
        if username not in (None, "", principal.username):
            raise forbidden("Only your own roles can be listed here.")
        number = user_number(principal)
        direct, by_group = [], {g: [] for g in principal.groups}
        for kind, resource_id, role, groups in await self._bound(principal):
            if role:
                direct.append(_permission(number, "", kind, resource_id, role, row=True))
            for group in groups:
                bindings = await self._group_role(kind, resource_id, group)
                if bindings:
                    by_group[group].append(
                        _permission(number, "", kind, resource_id, bindings, row=True)
                    )
        roles = [_role(number, f"__user_{number}__", direct)]
        roles += [
            _role(number + i + 1, f"group:{g}", rows)
            for i, (g, rows) in enumerate(sorted(by_group.items()))
            if rows
        ]
        return JSONResponse({"roles": roles})

    async def users(self, request: Request) -> Response:
        names = await asyncio.to_thread(user_names, self.table, MAX_ROWS)
        return JSONResponse(
            {"users": [{"id": _name_number(n), "username": n, "is_admin": False} for n in names]}
        )

    async def update_password(self, request: Request) -> Response:
        raise GatewayError(400, "INVALID_PARAMETER_VALUE", PASSWORDS_ELSEWHERE)

    # ---- helpers ------------------------------------------------------------------------

    async def _bound(self, principal: Principal):
        return await asyncio.to_thread(
            bound_resources, self.table, principal.subject, tuple(principal.groups), MAX_ROWS
        )

    async def _effective_role(self, principal: Principal, kind: str, resource_id: str):
        """The highest role whose probe call the policies allow (the permissions API's rule)."""
        ref = ResourceRef(kind, resource_id)
        lookup = await self.resolver.prefetch([ref])
        role = None
        for probe_role, action in PROBES[kind]:
            if self.authorizer.decide(principal, action, [ref], lookup).allowed:
                role = probe_role
        return role

    async def _group_role(self, kind: str, resource_id: str, group: str) -> str | None:
        ref = ResourceRef(kind, resource_id)
        found = (await self.resolver.prefetch([ref]))(ref)
        return dict(getattr(found, "groups", {}) or {}).get(group)


def _permission(
    number: int, role_name: str, kind: str, resource_id: str, role: str, *, row: bool = False
) -> dict:
    """One grant as MLflow's basic-auth lists it (`row`: inside a role's `permissions`)."""
    shape = {
        "role_id": number,
        "resource_type": _TYPE.get(kind, "registered_model"),
        "resource_pattern": resource_id,
        "permission": PERMISSION_OF_ROLE[role],
    }
    if row:
        return {"id": _name_number(f"{kind}:{resource_id}"), **shape}
    return {**shape, "role_name": role_name, "workspace": DEFAULT_WORKSPACE}


def _role(number: int, name: str, permissions: list[dict]) -> dict:
    return {
        "id": number,
        "name": name,
        "workspace": DEFAULT_WORKSPACE,
        "description": "",
        "permissions": [{**p, "role_id": number} for p in permissions],
    }


def _name_number(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")
