"""Names unique within an experiment (label schemas, review queues): a claim item, written with
a condition before the item it names, so that two parallel creations of one name cannot both win.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from store.dynamo.errors import ConditionFailed
from store.dynamo.table import DynamoTable

STALE_CLAIM_MS = 60_000  # a claim whose item never appeared is free again after this


@dataclass(frozen=True)
class NameClaims:
    table: DynamoTable
    id_field: str  # the attribute of the claim naming its holder: "schema_id", "queue_id"
    claim_key: Callable[[str, str], tuple[str, str]]  # (experiment id, name key) -> key
    holder: Callable[[str, str], dict | None]  # the live item holding a name key, if any

    def claim(self, experiment_id: str, name_key: str, holder_id: str, now: int) -> bool:
        """Hold `name_key` for `holder_id`; False when a live item holds it already."""
        pk, sk = self.claim_key(experiment_id, name_key)
        claim = {"pk": pk, "sk": sk, self.id_field: holder_id, "claimed_at": now}
        try:
            self.table.put(claim, condition="attribute_not_exists(pk)")
            return True
        except ConditionFailed:
            pass
        held = self.table.get(pk, sk)
        if held is None or self.holder(experiment_id, name_key) is not None:
            return False
        if now - int(held.get("claimed_at", 0)) < STALE_CLAIM_MS:
            return False  # its item may still be on its way
        try:
            self.table.put(
                claim,
                condition=f"{self.id_field} = :held",
                values={":held": held[self.id_field]},
            )
            return True
        except ConditionFailed:
            return False

    def release(self, experiment_id: str, name_key: str, holder_id: str) -> None:
        with contextlib.suppress(ConditionFailed):  # another item holds the name now
            self.table.delete(
                *self.claim_key(experiment_id, name_key),
                condition=f"{self.id_field} = :mine",
                values={":mine": holder_id},
            )
