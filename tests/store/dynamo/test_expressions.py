"""The one update-expression builder, on a real DynamoDB server (dynalite)."""

from __future__ import annotations

import uuid

import pytest

from store.dynamo.errors import ConditionFailed
from store.dynamo.expressions import Update
from store.dynamo.table import DynamoTable
from store.dynamo.uri import parse_dynamo_uri


@pytest.fixture(scope="module")
def table(dynalite_endpoint: str) -> DynamoTable:
    host_port = dynalite_endpoint.removeprefix("http://")
    table = DynamoTable(parse_dynamo_uri(f"dynamodb://{host_port}/expr{uuid.uuid4().hex[:8]}"))
    table.ensure_table()
    return table


def test_names_and_values_never_land_in_the_expression():
    update = Update().set(("tags", "a.b #c :d"), "v").remove("name").add("rev", 1)
    update.exists("pk").equals("name", "old")
    assert update.expression() == "SET #n0.#n1 = :v0 REMOVE #n2 ADD #n3 :v1"
    assert update.condition() == "attribute_exists(#n4) AND #n2 = :v2"
    assert update.names == {
        "#n0": "tags",
        "#n1": "a.b #c :d",
        "#n2": "name",
        "#n3": "rev",
        "#n4": "pk",
    }
    assert update.values == {":v0": "v", ":v1": 1, ":v2": "old"}
    assert not Update().exists("pk")  # a condition alone is no update


def test_every_action_on_one_item(table):
    table.put(
        {"pk": "A", "sk": "1", "tags": {"keep": "k", "drop": "d"}, "count": 5, "old": 1, "cap": 3}
    )
    update = Update().set(("tags", "new"), "n").remove(("tags", "drop")).remove("old")
    update.set_if_missing("first", "f").set_if_missing("cap", 99)
    update.set_sum("next", "count", 1).add("count", 2).add("seen", {"x", "y"})
    item = table.update("A", "1", update)
    assert item["tags"] == {"keep": "k", "new": "n"}
    assert (item["first"], item["cap"], item["next"], item["count"]) == ("f", 3, 6, 7)
    assert item["seen"] == {"x", "y"} and "old" not in item
    again = table.update(
        "A", "1", Update().set_if_missing("first", "other").set_or_remove("gone", None)
    )
    assert again["first"] == "f"


@pytest.mark.parametrize(
    "condition",
    [
        lambda u: u.exists("absent"),
        lambda u: u.missing("count"),
        lambda u: u.equals("count", 4),
        lambda u: u.differs("count", 5),
        lambda u: u.exists("pk").equals(("tags", "a"), "other"),
    ],
)
def test_a_failed_condition_writes_nothing(table, condition):
    table.put({"pk": "C", "sk": "1", "count": 5, "tags": {"a": "b"}})
    with pytest.raises(ConditionFailed):
        table.update("C", "1", condition(Update().set("count", 6)))
    assert table.get("C", "1")["count"] == 5


def test_conditions_that_hold_let_the_update_through(table):
    table.put({"pk": "D", "sk": "1", "count": 5, "tags": {"a": "b"}})
    update = Update().add("count", 1).exists(("tags", "a")).missing("absent")
    update.equals("count", 5).differs(("tags", "a"), "c")
    assert table.update("D", "1", update)["count"] == 6
