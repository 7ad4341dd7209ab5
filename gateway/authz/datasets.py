"""A dataset is decided on the experiments it is linked to.

A request naming an evaluation dataset is decided on each experiment the dataset is linked to,
with the request's action: changes need every one of them to allow (`ALL`), reads need one
(`ANY`). Cedar has no quantifier over a set of entities, so only this combinator lives here;
who may do what stays in the role policies. A dataset linked to no experiment is decided on
the workspace (administrators only: no role policy names the workspace for these actions).
A dataset that does not exist keeps its reference, which resolves to nothing: denied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gateway.routing.model import ANY
from gateway.routing.parse import ResourceRef
from store.vocabulary import DATASET, DEFAULT_WORKSPACE, EXPERIMENT, WORKSPACE

# calls after which a dataset's links are stale
CHANGES_LINKS = frozenset(
    {"AddDatasetToExperiments", "RemoveDatasetFromExperiments", "DeleteDataset"}
)


def dataset_ids(resources: Iterable[ResourceRef]) -> tuple[str, ...]:
    """The datasets a request names, each once."""
    return tuple(dict.fromkeys(r.id for r in resources if r.kind == DATASET))


def expand_datasets(
    resources: Iterable[ResourceRef], linked: Mapping[str, tuple[str, ...] | None]
) -> tuple[ResourceRef, ...]:
    """`resources` with each dataset replaced by its experiments (or the workspace)."""
    out: list[ResourceRef] = []
    for ref in resources:
        experiments = linked.get(ref.id) if ref.kind == DATASET else None
        if experiments is None:  # not a dataset, or one that cannot be found: kept as named
            out.append(ref)
            continue
        named = (DATASET, ref.id)
        if not experiments:
            out.append(ResourceRef(WORKSPACE, DEFAULT_WORKSPACE, ref.action, named=named))
            continue
        group = f"{DATASET}:{ref.id}" if ref.combine == ANY else None
        out.extend(
            ResourceRef(EXPERIMENT, e, ref.action, any_of=group, named=named) for e in experiments
        )
    return tuple(out)
