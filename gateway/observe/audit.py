"""Audit records: one JSON line per authorization decision and one per binding change.

Each decision line carries the time, the request id, the caller (subject, user name,
groups), the action, the resource decided on, the decision, the determining policy ids,
the policy-set revision and the decision latency; a binding change line carries who changed
what on which resource. Lines go to a file (appended, one write per line) or to stdout.

A search whose experiment ids are narrowed (`SearchRuns`, ...) also records `narrowed_from`
(the ids it named), `kept` (forwarded) and `dropped` (unreadable, removed). When every id is
dropped the gateway answers an empty result without calling MLflow: that line is a `deny`
(on the last dropped experiment, with `answered: "empty"`), never an allow, since nothing
the caller named was readable.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from gateway.authz.decide import Decision, RequestDecision
from gateway.errors import GatewayError
from store.handler.identity import Principal

ANSWERED_EMPTY = "empty"
_EMPTY_NOTE = "every experiment the search names is unreadable: answered empty, not forwarded"


@dataclass(frozen=True)
class Narrowing:
    """The narrowable ids of a search: named by the caller, kept, dropped."""

    narrowed_from: tuple[str, ...]
    kept: tuple[str, ...]
    dropped: tuple[str, ...]

    @property
    def answered_empty(self) -> bool:
        return bool(self.dropped) and not self.kept

    @classmethod
    def of(cls, result: RequestDecision) -> Narrowing | None:
        """None for a call that names no narrowable id."""
        named = tuple(d.resource.id for d in result.decisions if d.resource.narrow)
        if not named:
            return None
        return cls(named, tuple(r.id for r in result.kept), tuple(r.id for r in result.dropped))


def recorded_decision(result: RequestDecision) -> Decision:
    """The decision an audit line records for a whole request.

    A search narrowed to nothing is forwarded nowhere and reads nothing: it is recorded as
    the denial of its last dropped experiment, not as the overall (vacuous) allow.
    """
    if not result.narrowed_to_nothing:
        return result.decision
    dropped = set(result.dropped)
    denial = [d for d in result.decisions if d.resource in dropped][-1]
    note = "; ".join(n for n in (denial.note, _EMPTY_NOTE) if n)
    return replace(denial, note=note)


class AuditLog:
    """Appends JSON lines to `path`, or to `stream` (stdout by default) when no path is set."""

    def __init__(self, path: Path | None = None, stream: IO[str] | None = None):
        self.path = path
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._stream: IO[str] = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        else:
            self._stream = stream or sys.stdout

    def decision(
        self,
        request_id: str,
        principal: Principal,
        decision: Decision,
        *,
        method: str,
        path: str,
        latency_ms: float,
        kind: str = "decision",
        narrowing: Narrowing | None = None,
    ) -> None:
        resource = decision.resource
        record = {
            "type": kind,
            "time": _now(),
            "request_id": request_id,
            "principal": principal.subject,
            "username": principal.username,
            "groups": list(principal.groups),
            "action": decision.action,
            "method": method,
            "path": path,
            "resource": {"kind": resource.kind, "id": resource.id} if resource else None,
            "decided_on": list(decision.target) if decision.target else None,
            "decision": "allow" if decision.allowed else "deny",
            "policies": list(decision.policy_ids),
            "errors": list(decision.errors),
            "note": decision.note or None,
            "policy_revision": decision.revision,
            "latency_ms": round(latency_ms, 3),
        }
        if narrowing is not None:
            record["narrowed_from"] = list(narrowing.narrowed_from)
            record["kept"] = list(narrowing.kept)
            record["dropped"] = list(narrowing.dropped)
            if narrowing.answered_empty:
                record["answered"] = ANSWERED_EMPTY
        self.write(record)

    def refusal(
        self, request_id: str, principal: Principal, method: str, path: str, error: GatewayError
    ) -> None:
        """A request refused before (or instead of) a decision."""
        self.write(
            {
                "type": "refusal",
                "time": _now(),
                "request_id": request_id,
                "principal": principal.subject,
                "username": principal.username,
                "method": method,
                "path": path,
                "status": error.status_code,
                "message": error.message,
            }
        )

    def binding_change(
        self,
        request_id: str,
        principal: Principal,
        *,
        change: str,
        resource_kind: str,
        resource_id: str,
        user: str | None = None,
        group: str | None = None,
        role: str | None = None,
        private: bool | None = None,
    ) -> None:
        self.write(
            {
                "type": "binding_change",
                "time": _now(),
                "request_id": request_id,
                "principal": principal.subject,
                "username": principal.username,
                "change": change,
                "resource": {"kind": resource_kind, "id": resource_id},
                "user": user,
                "group": group,
                "role": role,
                "private": private,
            }
        )

    def write(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            self._stream.write(line)
            if self.path is None:
                self._stream.flush()

    def close(self) -> None:
        if self.path is not None:
            self._stream.close()


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
