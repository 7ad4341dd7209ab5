"""Audit records: one JSON line per authorization decision and one per binding change.

Each decision line carries the time, the request id, the caller (subject, user name,
groups), the action, the resource decided on, the decision, the determining policy ids,
the policy-set revision and the decision latency; a binding change line carries who changed
what on which resource. Lines go to a file (appended, one write per line) or to stdout.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import IO

from gateway.decide import Decision
from store.identity import Principal


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
    ) -> None:
        resource = decision.resource
        self.write(
            {
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
