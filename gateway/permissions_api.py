"""The permissions API: role bindings read and changed through the gateway.

MLflow's own shape, so `mlflow.server.get_app_client("basic-auth", uri)` and its
`grant_user_permission` / `revoke_user_permission` / `get_user_permission` work:

    POST /api/3.0/mlflow/users/permissions/grant   {username, resource_type, resource_id,
                                                    permission}
    POST /api/3.0/mlflow/users/permissions/revoke  {username, resource_type, resource_id}
    GET  /api/3.0/mlflow/users/permissions/get     ?username&resource_type&resource_id
                                                   → {"allowed": bool, "permission": "EDIT"}

(`/ajax-api/...` too). `resource_type` is `experiment`, `registered_model` or `prompt`;
`permission` READ / EDIT / MANAGE ↔ roles reader / editor / manager. Cedarflow's own
calls add groups, listing, the caller's effective role and private experiments:

    POST /api/3.0/cedarflow/permissions/grant    {resource_type, resource_id, role|permission,
                                                  username | subject | group}
    POST /api/3.0/cedarflow/permissions/revoke   {resource_type, resource_id,
                                                  username | subject | group}
                                                 (subject: a principal id, `dev:1f3a...`)
    GET  /api/3.0/cedarflow/permissions/list     ?resource_type&resource_id → {"bindings": ...}
    GET  /api/3.0/cedarflow/permissions/effective ?resource_type&resource_id[&username]
                                                 → {"role", "permission", "decisions": [...]}
    POST /api/3.0/cedarflow/permissions/private  {experiment_id, private: true|false}

Changing bindings is decided by the policies like any call (`UpdateExperimentPermissions`,
`UpdateRegisteredModelPermissions`: managers and admins by default); listing them is
`Get...Permissions`. The effective role is what the policies answer for one representative
call per role, so an edited policy file shows here at once.

A user name is looked up in the user directory (store/bindings.py). A name several
principals signed in with (two issuers, a machine client) is refused as ambiguous, with the
`name@<issuer tag>` spellings that are not.

Asking about another user (`username` other than the caller's) is `GetUserPermissions` on
the workspace (administrators by default), answered with the policies' decisions but never
the ids of the policies behind them. Whoever may read the resource's bindings instead
(`Get...Permissions`, its managers) gets the role the user is bound to directly, as MLflow's
own `get_user_permission` answers: the same answer whether or not such a user exists.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.authz.decide import Authorizer
from gateway.authz.entities import Bindings
from gateway.errors import GatewayError, bad_request, not_found, permission_denied
from gateway.routing.parse import ResourceRef
from gateway.routing.tables.gateway import MLFLOW_PERMISSIONS
from gateway.routing.values import has_unpaired_surrogate
from store.bindings import BindingStore, UnknownResource, find_principals, remember_user
from store.handler.identity import Principal
from store.vocabulary import (
    DEFAULT_WORKSPACE,
    EXPERIMENT,
    PERMISSION_OF_ROLE,
    REGISTERED_MODEL,
    ROLE_OF_PERMISSION,
    ROLES,
    WORKSPACE,
)

_logger = logging.getLogger(__name__)
_KINDS = {
    "experiment": EXPERIMENT,
    "registered_model": REGISTERED_MODEL,
    "prompt": REGISTERED_MODEL,
}
_CHANGE = {
    EXPERIMENT: "UpdateExperimentPermissions",
    REGISTERED_MODEL: "UpdateRegisteredModelPermissions",
}
_READ = {EXPERIMENT: "GetExperimentPermissions", REGISTERED_MODEL: "GetRegisteredModelPermissions"}
ASK_ABOUT_USERS = "GetUserPermissions"  # another user's effective role, on the workspace
# one call each role adds (policies/1x_*.cedar, 2x_*.cedar): the effective role's probes
PROBES = {
    EXPERIMENT: (
        ("reader", "GetExperiment"),
        ("editor", "SetExperimentTag"),
        ("manager", "DeleteExperiment"),
    ),
    REGISTERED_MODEL: (
        ("reader", "GetRegisteredModel"),
        ("editor", "UpdateRegisteredModel"),
        ("manager", "DeleteRegisteredModel"),
    ),
}


class PermissionsApi:
    def __init__(self, authorizer: Authorizer, resolver, bindings: BindingStore, audit):
        self.authz = authorizer
        self.resolver = resolver
        self.bindings = bindings
        self.audit = audit
        self._known_users: set[tuple] = set()

    async def remember(self, principal: Principal) -> None:
        """Record user name → principal once per process, so that grants can name users."""
        key = (principal.username, principal.subject, principal.groups)
        if key in self._known_users or principal.kind == "anonymous":
            return
        try:
            await asyncio.to_thread(remember_user, self.bindings.table, principal)
        except Exception:  # the directory is a convenience; a failure must not block calls
            _logger.warning("could not record user %s (will retry)", principal.username)
            return
        self._known_users.add(key)

    async def handle(self, request: Request, principal: Principal, request_id: str) -> Response:
        path = request.scope["path"]
        mlflow_shape = MLFLOW_PERMISSIONS in path  # routed here by routing/tables/gateway.py
        call = path.rsplit("/", 1)[-1]
        method = "GET" if call in ("get", "list", "effective") else "POST"
        if request.method != method:
            raise GatewayError(405, "BAD_REQUEST", f"Use {method} for {call}.")
        params = await _params(request)
        handler = {
            "grant": self._grant,
            "revoke": self._revoke,
            "get": self._get,
            "list": self._list,
            "effective": self._effective,
            "private": self._private,
        }.get(call)
        if handler is None or (mlflow_shape and call not in ("grant", "revoke", "get")):
            raise not_found(f"No permissions call named '{call}'.")
        return JSONResponse(await handler(principal, params, request_id, mlflow_shape))

    # ---- calls --------------------------------------------------------------------------

    async def _grant(self, principal, params, request_id, mlflow_shape) -> dict:
        kind, resource_id = _resource(params)
        role = _role(params)
        await self._require(principal, _CHANGE[kind], kind, resource_id)
        user, group = await self._who(params, mlflow_shape)
        data = await self._change(
            self.bindings.grant, kind, resource_id, role, user=user, group=group
        )
        self.audit.binding_change(
            request_id, principal, change="grant", resource_kind=kind, resource_id=resource_id,
            user=user, group=group, role=role,
        )  # fmt: skip
        return {} if mlflow_shape else {"bindings": data.as_dict()}

    async def _revoke(self, principal, params, request_id, mlflow_shape) -> dict:
        kind, resource_id = _resource(params)
        await self._require(principal, _CHANGE[kind], kind, resource_id)
        user, group = await self._who(params, mlflow_shape)
        data = await self._change(self.bindings.revoke, kind, resource_id, user=user, group=group)
        self.audit.binding_change(
            request_id, principal, change="revoke", resource_kind=kind, resource_id=resource_id,
            user=user, group=group,
        )  # fmt: skip
        return {} if mlflow_shape else {"bindings": data.as_dict()}

    async def _private(self, principal, params, request_id, mlflow_shape) -> dict:
        experiment_id = _text(params, "experiment_id")
        private = params.get("private")
        if not isinstance(private, bool):
            raise bad_request("'private' must be true or false.")
        await self._require(principal, _CHANGE[EXPERIMENT], EXPERIMENT, experiment_id)
        data = await self._change(_set_private(self.bindings), EXPERIMENT, experiment_id, private)
        self.audit.binding_change(
            request_id, principal, change="private", resource_kind=EXPERIMENT,
            resource_id=experiment_id, private=private,
        )  # fmt: skip
        return {"bindings": data.as_dict()}

    async def _list(self, principal, params, request_id, mlflow_shape) -> dict:
        kind, resource_id = _resource(params)
        await self._require(principal, _READ[kind], kind, resource_id)
        try:
            data = await asyncio.to_thread(self.bindings.read, kind, resource_id)
        except UnknownResource as exc:
            raise GatewayError(404, "RESOURCE_DOES_NOT_EXIST", str(exc)) from None
        return {"bindings": data.as_dict()}

    async def _get(self, principal, params, request_id, mlflow_shape) -> dict:
        effective = await self._effective(principal, params, request_id, mlflow_shape)
        return {"allowed": effective["role"] is not None, "permission": effective["permission"]}

    async def _effective(self, principal, params, request_id, mlflow_shape) -> dict:
        kind, resource_id = _resource(params)
        username = params.get("username")
        if not username or _names_caller(str(username), principal):
            return await self._decided_role(principal, kind, resource_id, show_policies=True)
        username = _text(params, "username")
        if await self._allowed(
            principal, ASK_ABOUT_USERS, ResourceRef(WORKSPACE, DEFAULT_WORKSPACE)
        ):
            other = await self._principal_of(username)
            return await self._decided_role(other, kind, resource_id, show_policies=False)
        await self._require(principal, _READ[kind], kind, resource_id)
        return await self._bound_role(username, kind, resource_id)

    async def _decided_role(
        self, subject: Principal, kind: str, resource_id: str, *, show_policies: bool
    ) -> dict:
        """The role the policies give `subject`: the highest role whose probe is allowed."""
        ref = ResourceRef(kind, resource_id)
        lookup = await self.resolver.prefetch([ref])
        role, decisions = None, []
        for probe_role, action in PROBES[kind]:
            decision = self.authz.decide(subject, action, [ref], lookup)
            entry = {"action": action, "allowed": decision.allowed}
            if show_policies:  # another user's policies tell who is an administrator
                entry["policies"] = list(decision.policy_ids)
            decisions.append(entry)
            if decision.allowed:
                role = probe_role
        return {
            "role": role,
            "permission": PERMISSION_OF_ROLE.get(role or "", "NO_PERMISSIONS"),
            "decisions": decisions,
            "policy_revision": self.authz.policies.revision,
        }

    async def _bound_role(self, username: str, kind: str, resource_id: str) -> dict:
        """The role `username` is bound to directly on the resource (or none)."""
        ref = ResourceRef(kind, resource_id)
        lookup = await self.resolver.prefetch([ref])
        found = lookup(ref)
        bound = dict(found.users) if isinstance(found, Bindings) else {}
        named = await asyncio.to_thread(find_principals, self.bindings.table, username)
        matches = [e for e in named if e.principal in bound]
        if len(matches) > 1:
            raise _ambiguous(username, matches)
        role = bound[matches[0].principal] if matches else None
        return {
            "role": role,
            "permission": PERMISSION_OF_ROLE.get(role or "", "NO_PERMISSIONS"),
            "decisions": [],
            "bound_directly": True,
        }

    # ---- helpers ------------------------------------------------------------------------

    async def _require(
        self, principal: Principal, action: str, kind: str, resource_id: str
    ) -> None:
        if not await self._allowed(principal, action, ResourceRef(kind, resource_id)):
            raise permission_denied(action, f"{kind.replace('_', ' ')} '{resource_id}'")

    async def _allowed(self, principal: Principal, action: str, ref: ResourceRef) -> bool:
        """Decide (and audit) one call of the permissions API."""
        lookup = await self.resolver.prefetch([ref])
        decision = self.authz.decide(principal, action, [ref], lookup)
        self.audit.decision(
            "-", principal, decision, method="POST", path=f"permissions/{ref.kind}", latency_ms=0.0
        )
        return decision.allowed

    async def _change(self, change, kind: str, resource_id: str, *args, **kwargs):
        try:
            data = await asyncio.to_thread(change, kind, resource_id, *args, **kwargs)
        except UnknownResource as exc:
            raise GatewayError(404, "RESOURCE_DOES_NOT_EXIST", str(exc)) from None
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        finally:
            self.resolver.invalidate(kind, resource_id)
        return data

    async def _who(self, params: dict, mlflow_shape: bool) -> tuple[str | None, str | None]:
        """(principal id, group) a grant names: a user name, a principal id or a group."""
        group = None if mlflow_shape else params.get("group")
        subject = None if mlflow_shape else params.get("subject")
        username = params.get("username")
        if sum(bool(x) for x in (group, subject, username)) != 1:
            raise bad_request("Name one of username, subject or group.")
        if subject and not _is_principal_id(subject):
            raise bad_request(
                f"'{subject}' is not a principal id ('<issuer tag>:<subject>' or "
                "'service:<name>'); the permissions listing shows them.",
            )
        if username:
            subject = (await self._principal_of(_text(params, "username"))).subject
        return subject, group

    async def _principal_of(self, username: str) -> Principal:
        named = await asyncio.to_thread(find_principals, self.bindings.table, username)
        if not named:
            raise GatewayError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"User '{username}' has not signed in yet; grant by 'subject' instead.",
            )
        if len(named) > 1:
            raise _ambiguous(username, named)
        entry = named[0]
        return Principal(
            subject=entry.principal, username=entry.name, groups=entry.groups, kind=entry.kind
        )


def _ambiguous(username: str, entries) -> GatewayError:
    options = "; ".join(
        f"'{e.qualified_name}' (principal id '{e.principal}'"
        + (", a machine client)" if e.kind == "service" else ")")
        for e in sorted(entries, key=lambda e: e.principal)
    )
    return bad_request(
        f"User name '{username}' is ambiguous: {len(entries)} principals signed in with it: "
        f"{options}. Name one of them (`cedarflow grant --user NAME@TAG` or "
        "`--principal ID`; 'username' or 'subject' in the API).",
    )


def _names_caller(username: str, principal: Principal) -> bool:
    tag = principal.subject.split(":", 1)[0]
    return username in (principal.username, f"{principal.username}@{tag}", principal.subject)


def _is_principal_id(value: object) -> bool:
    if not isinstance(value, str):
        return False
    tag, sep, rest = value.partition(":")
    return bool(tag and sep and rest)


def _set_private(bindings: BindingStore):
    return lambda kind, experiment_id, private: bindings.set_private(experiment_id, private)


async def _params(request: Request) -> dict:
    if request.method == "GET":
        return dict(request.query_params)
    body = await request.body()  # at most the JSON limit: larger bodies get 413 (body_limit.py)
    try:
        value = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise bad_request("The request body must be a JSON object.")
    if has_unpaired_surrogate(value, body):  # it could be neither stored nor answered
        raise bad_request("The request body is not valid Unicode.")
    return value


def _text(params: dict, name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise bad_request(f"Missing value for parameter '{name}'.")
    return value


def _resource(params: dict) -> tuple[str, str]:
    kind = _KINDS.get(str(params.get("resource_type", "")))
    if kind is None:
        raise bad_request(
            "resource_type must be experiment, registered_model or prompt.",
        )
    return kind, _text(params, "resource_id")


def _role(params: dict) -> str:
    role = params.get("role") or ROLE_OF_PERMISSION.get(str(params.get("permission", "")).upper())
    if role not in ROLES:
        raise bad_request("permission must be READ, EDIT or MANAGE.")
    return role
