"""Reading the deployment's templates as CloudFormation does, and what they are checked against."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

from gateway.stack.serve import IDENTITY_SECRET_ENV, SESSION_SECRET_ENV, UI_CLIENT_SECRET_ENV
from gateway.stack.serve_command import environment_variable, serve_flags
from store.dynamo.schema import SCHEMA

ROOT = Path(__file__).resolve().parents[2]
AWS_DIR = ROOT / "deploy" / "aws"
TEMPLATES = sorted(AWS_DIR.glob("*.yaml"))
DOCKERFILE = ROOT / "deploy" / "container" / "Dockerfile"

# `cedarflow serve` reads each of its flags also as CEDARFLOW_<FLAG>: the task definition may
# set only these (read from serve's own parser).
SERVE_FLAGS = serve_flags()
SERVE_SECRETS = (IDENTITY_SECRET_ENV, SESSION_SECRET_ENV, UI_CLIENT_SECRET_ENV)


def serve_environment_variable(flag: str) -> str:
    return environment_variable(flag)


def load_template(path: Path) -> dict:
    """The template with its short tags (!Ref, !Sub, !GetAtt, ...) as Fn:: / Ref mappings."""
    template, problems = decode(str(path))
    assert not problems, f"{path.name} does not parse: {problems}"
    return template


def template(name: str) -> dict:
    return load_template(AWS_DIR / name)


def resources_of_type(template: dict, resource_type: str) -> dict[str, dict]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def only_resource(template: dict, resource_type: str) -> dict:
    found = resources_of_type(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.values()))


def branches(value: Any) -> Iterator[Any]:
    """Every value an `Fn::If` may take (the value itself when it is no condition)."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, when_true, when_false = value["Fn::If"]
        yield from branches(when_true)
        yield from branches(when_false)
    else:
        yield value


def sub_text(value: Any) -> str:
    """The text of an `Fn::Sub` (its string form), to compare with the URL it builds."""
    assert isinstance(value, dict) and "Fn::Sub" in value, f"not a !Sub: {value!r}"
    sub = value["Fn::Sub"]
    return sub if isinstance(sub, str) else sub[0]


@dataclass(frozen=True)
class TableDefinition:
    """What the code and the templates must agree on about the table."""

    attributes: frozenset[tuple[str, str]]
    key_schema: tuple[tuple[str, str], ...]
    indexes: frozenset[tuple]  # (name, keys, projection type, projected attributes)
    billing_mode: str
    stream_view_type: str
    ttl_attribute: str
    point_in_time_recovery: bool


def store_table_definition() -> TableDefinition:
    """The table as the store defines it (`store.dynamo.schema`, which table creation uses)."""
    return TableDefinition(
        attributes=_attributes(SCHEMA.attribute_definitions()),
        key_schema=_keys(SCHEMA.key_schema()),
        indexes=_indexes(SCHEMA.index_definitions()),
        billing_mode=SCHEMA.billing_mode,
        stream_view_type=SCHEMA.stream_view_type,
        ttl_attribute=SCHEMA.ttl_attribute,
        point_in_time_recovery=SCHEMA.point_in_time_recovery,
    )


def template_table_definition(table: dict) -> TableDefinition:
    """The definition of an AWS::DynamoDB::GlobalTable resource (PITR on every replica)."""
    props = table["Properties"]
    ttl = props["TimeToLiveSpecification"]
    replica_lists = list(branches(props["Replicas"]))
    replicas = [replica for replicas in replica_lists for replica in replicas]
    return TableDefinition(
        attributes=_attributes(props["AttributeDefinitions"]),
        key_schema=_keys(props["KeySchema"]),
        indexes=_indexes(props["GlobalSecondaryIndexes"]),
        billing_mode=props["BillingMode"],
        stream_view_type=props["StreamSpecification"]["StreamViewType"],
        ttl_attribute=ttl["AttributeName"] if ttl["Enabled"] is True else "",
        point_in_time_recovery=all(
            r["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
            for r in replicas
        ),
    )


def _attributes(definitions: list[dict]) -> frozenset[tuple[str, str]]:
    return frozenset((d["AttributeName"], d["AttributeType"]) for d in definitions)


def _keys(schema: list[dict]) -> tuple[tuple[str, str], ...]:
    return tuple((k["AttributeName"], k["KeyType"]) for k in schema)


def _indexes(indexes: list[dict]) -> frozenset[tuple]:
    """(name, keys, projection type, projected attributes) of each index."""
    return frozenset(index_definition(i) for i in indexes)


def index_definition(index: dict) -> tuple:
    projection = index["Projection"]
    return (
        index["IndexName"],
        _keys(index["KeySchema"]),
        projection["ProjectionType"],
        tuple(sorted(projection.get("NonKeyAttributes", ()))),
    )
