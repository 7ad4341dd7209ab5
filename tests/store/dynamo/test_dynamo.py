"""The table, URIs, page tokens and unsupported calls on their own."""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
from decimal import Decimal

import pytest
from botocore.awsrequest import AWSResponse
from hypothesis import given
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.abstract_store import AbstractStore
from moto import mock_aws

from store.dynamo import client as dynamo_client
from store.dynamo import table as dynamo
from store.dynamo import values as dynamo_values
from store.dynamo.capacity import item_size, plain_item_size
from store.dynamo.errors import ConditionFailed, InvalidValue, ItemTooLarge, StoreUnavailable
from store.dynamo.expressions import Update
from store.dynamo.table import DynamoTable
from store.dynamo.uri import DynamoUri, InvalidStoreUri, parse_dynamo_uri
from store.dynamo.values import float_from_dynamo, serialize_item
from store.search.pagination import page_offset, seal_page_token
from store.unsupported import raise_not_implemented


@pytest.fixture
def table():
    with mock_aws():
        table = DynamoTable(parse_dynamo_uri("dynamodb://us-east-1/unit-table"))
        table.ensure_table()
        table.parallel_writes = 1  # moto is not thread-safe
        table.round_trips.reset()
        yield table


def test_item_round_trips_python_values(table):
    item = {
        "pk": "A",
        "sk": "1",
        "text": "x",
        "whole": 7,
        "fraction": 0.1,
        "flag": True,
        "nothing": None,
        "raw": b"\x00\x01",
        "nested": {"list": [1, "two", 3.5], "empty": {}},
        "strings": {"a", "b"},
    }
    table.put(item)
    assert table.get("A", "1") == item


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e300, -5e-324, 0.0, 1 / 3])
def test_floats_dynamodb_cannot_hold_survive(table, value):
    table.put({"pk": "F", "sk": repr(value), "v": value})
    stored = float_from_dynamo(table.get("F", repr(value))["v"])
    assert (math.isnan(stored) and math.isnan(value)) or stored == value


def test_float_to_dynamo_uses_numbers_when_they_fit():
    assert dynamo_values.float_to_dynamo(2.5) == Decimal("2.5")
    assert dynamo_values.float_to_dynamo(math.inf) == "inf"


def test_conditional_put_raises_condition_failed_and_writes_nothing(table):
    table.put({"pk": "C", "sk": "1", "v": 1})
    with pytest.raises(ConditionFailed):
        table.put({"pk": "C", "sk": "1", "v": 2}, condition="attribute_not_exists(pk)")
    assert table.get("C", "1")["v"] == 1


def test_update_returns_new_item_and_add_counts(table):
    assert table.update("N", "1", Update().add("n", 1))["n"] == 1
    assert table.update("N", "1", Update().add("n", 1))["n"] == 2


def test_oversized_item_is_refused(table):
    with pytest.raises(ItemTooLarge):
        table.put({"pk": "B", "sk": "1", "blob": "x" * 500_000})
    assert table.get("B", "1") is None


def test_batch_write_uses_chunks_of_25_and_query_follows_pages(table):
    table.batch_write(puts=[{"pk": "Q", "sk": f"{i:04d}", "v": i} for i in range(60)])
    assert table.round_trips.by_operation() == {"BatchWriteItem": 3}
    assert [i["v"] for i in table.query("Q")] == list(range(60))
    assert [i["v"] for i in table.query("Q", sk_prefix="001")] == list(range(10, 20))
    assert [i["v"] for i in table.query("Q", forward=False, limit=2)] == [59, 58]
    assert len(list(table.query("Q", sk_range=("0005", "0009")))) == 5


def test_batch_write_writes_a_repeated_key_last_wins(table):
    table.batch_write(puts=[{"pk": "D", "sk": "1", "v": 1}, {"pk": "D", "sk": "1", "v": 2}])
    assert table.get("D", "1")["v"] == 2
    table.batch_write(deletes=[("D", "1")])
    assert table.get("D", "1") is None


def test_batch_get_returns_existing_items_in_chunks_of_100(table):
    table.batch_write(puts=[{"pk": "G", "sk": f"{i:03d}"} for i in range(120)])
    table.round_trips.reset()
    found = table.batch_get([("G", f"{i:03d}") for i in range(130)])
    assert len(found) == 120
    assert table.round_trips.by_operation() == {"BatchGetItem": 2}


def _answer_first(table: DynamoTable, failures: int, code: str) -> list[int]:
    """Answer the first `failures` HTTP attempts with DynamoDB's error `code` as the service
    does (botocore retries what it retries itself); returns the count of answers given."""
    given = [0]

    def answer(**kwargs):
        if given[0] >= failures:
            return None  # sent to the (emulated) service
        given[0] += 1
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}"}).encode()
        return AWSResponse("http://dynamodb", 400, {"x-amzn-requestid": "t"}, _Raw(body))

    table._client.meta.events.register_first("before-send.dynamodb.*", answer)
    return given


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs):
        yield self._body


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda *a: 0)


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_throttling_is_retried_by_botocore_and_counted(table, no_backoff, code):
    given = _answer_first(table, dynamo_client.MAX_ATTEMPTS - 1, code)
    assert table.get("none", "none") is None
    assert given[0] == dynamo_client.MAX_ATTEMPTS - 1
    assert table.round_trips.by_operation() == {"GetItem": dynamo_client.MAX_ATTEMPTS}


def test_throttling_past_the_attempts_is_temporarily_unavailable(table, no_backoff):
    _answer_first(table, 100, "ProvisionedThroughputExceededException")
    with pytest.raises(StoreUnavailable) as caught:
        table.get("x", "y")
    assert isinstance(caught.value, MlflowException)  # MLflow is loaded: its handlers answer 503
    assert caught.value.error_code == "TEMPORARILY_UNAVAILABLE"
    assert caught.value.get_http_status_code() == 503
    assert table.round_trips.by_operation() == {"GetItem": dynamo_client.MAX_ATTEMPTS}


def test_the_attempts_and_timeout_are_set_in_one_configuration(monkeypatch):
    monkeypatch.setenv(dynamo_client.MAX_ATTEMPTS_ENV, "5")
    monkeypatch.setenv(dynamo_client.READ_TIMEOUT_ENV, "2.5")
    config = dynamo_client.client_config()
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert config.read_timeout == 2.5
    monkeypatch.setenv(dynamo_client.MAX_ATTEMPTS_ENV, "0")
    with pytest.raises(ValueError, match=dynamo_client.MAX_ATTEMPTS_ENV):
        dynamo_client.client_config()


def test_validation_errors_are_not_retried(table, no_backoff):
    _answer_first(table, 100, "ValidationException")
    with pytest.raises(InvalidValue) as caught:
        table.get("x", "y")
    assert isinstance(caught.value, MlflowException)  # MLflow is loaded: its handlers answer 400
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert caught.value.get_http_status_code() == 400
    assert table.round_trips.total() == 1


def test_a_key_dynamodb_cannot_hold_is_an_invalid_parameter(dynalite_endpoint):
    endpoint = dynalite_endpoint.removeprefix("http://")
    table = DynamoTable(parse_dynamo_uri(f"dynamodb://{endpoint}/validation-table"))
    table.ensure_table()
    too_long = "k" * 5000  # DynamoDB keys: 2048 bytes at most
    calls = [
        lambda: table.get(too_long, "sk"),
        lambda: table.put({"pk": too_long, "sk": "sk", "v": 1}),
        lambda: table.update(too_long, "sk", Update().set("v", 1)),
        lambda: table.batch_get([(too_long, "sk")]),
        lambda: table.delete(too_long, "sk"),
    ]
    for call in calls:
        with pytest.raises(MlflowException) as caught:
            call()
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "2048" in caught.value.message


def test_from_uri_caches_one_table_per_uri():
    with mock_aws():
        assert DynamoTable.from_uri("dynamodb://us-east-1/cache-a") is DynamoTable.from_uri(
            "dynamodb://us-east-1/cache-a"
        )


def test_ensure_table_declares_production_features_on_aws(table):
    client = table._client
    description = client.describe_table(TableName="unit-table")["Table"]
    assert description["GlobalSecondaryIndexes"][0]["IndexName"] == "gsi1"
    assert description["StreamSpecification"]["StreamEnabled"] is True
    ttl = client.describe_time_to_live(TableName="unit-table")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "ttl"
    backups = client.describe_continuous_backups(TableName="unit-table")
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"


# ---- URIs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("dynamodb://127.0.0.1:8000/cedarflow",
         DynamoUri("cedarflow", "http://127.0.0.1:8000", None, True)),
        ("dynamodb://localhost:4567/my.table",
         DynamoUri("my.table", "http://localhost:4567", None, True)),
        ("dynamodb://[::1]:8000/tbl", DynamoUri("tbl", "http://[::1]:8000", None, True)),
        ("dynamodb://eu-west-1/cedarflow", DynamoUri("cedarflow", None, "eu-west-1", False)),
        ("dynamodb://us-gov-west-1/cedarflow",
         DynamoUri("cedarflow", None, "us-gov-west-1", False)),
    ],
)  # fmt: skip
def test_parse_dynamo_uri(uri, expected):
    assert parse_dynamo_uri(uri) == expected


def test_parse_dynamo_uri_defaults_honour_endpoint_env(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9999")
    assert parse_dynamo_uri("dynamodb:///cedarflow") == DynamoUri("cedarflow", is_local=True)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")
    assert parse_dynamo_uri("dynamodb:///cedarflow") == DynamoUri("cedarflow")


@pytest.mark.parametrize(
    "uri",
    ["sqlite:///x", "dynamodb://us-east-1/ab", "dynamodb://us-east-1/", "dynamodb://nowhere/tbl",
     "dynamodb://127.0.0.1:99999/tbl", "dynamodb://us-east-1/tbl?x=1", "dynamodb://x/t$b"],
)  # fmt: skip
def test_parse_dynamo_uri_refuses_other_forms(uri):
    with pytest.raises(InvalidStoreUri):
        parse_dynamo_uri(uri)


# ---- page tokens -----------------------------------------------------------------------------


def test_page_token_round_trip_is_bound_to_its_search():
    token = seal_page_token("runs", 5, ["filter", 1, []])
    assert page_offset(token, "runs", ["filter", 1, []]) == 5
    assert page_offset(None, "runs") == page_offset("", "runs") == 0
    for kind, query in (("experiments", ["filter", 1, []]), ("runs", ["other", 1, []])):
        with pytest.raises(MlflowException, match="made for another search"):
            page_offset(token, kind, query)


def test_page_token_reveals_no_offset():
    token = seal_page_token("experiments", 4321)
    assert token.startswith("p1.")
    raw = base64.urlsafe_b64decode(token[3:] + "=" * (-len(token[3:]) % 4))
    assert b"4321" not in raw and b"offset" not in raw and b'"o"' not in raw
    assert seal_page_token("experiments", 4321) != token  # a fresh nonce per token


def test_page_token_tampered_legacy_or_foreign_is_invalid_parameter(monkeypatch):
    token = seal_page_token("runs", 5)
    body = bytearray(base64.urlsafe_b64decode(token[3:] + "=" * (-len(token[3:]) % 4)))
    body[-1] ^= 1
    flipped = "p1." + base64.urlsafe_b64encode(bytes(body)).rstrip(b"=").decode()
    legacy = base64.urlsafe_b64encode(b'{"offset":500}').decode().rstrip("=") + ".c2ln"
    for bad in (flipped, legacy, "garbage", "p1.", "p1.!!!!", "a.b.c", token + "x"):
        with pytest.raises(MlflowException) as caught:
            page_offset(bad, "runs")
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
        assert caught.value.message.startswith("Invalid page token")
    monkeypatch.setenv("CEDARFLOW_PAGE_TOKEN_SECRET", "another-server")
    with pytest.raises(MlflowException, match="Invalid page token"):
        page_offset(token, "runs")


def test_page_token_key_is_shared_by_every_process_with_the_identity_secret(monkeypatch):
    monkeypatch.delenv("CEDARFLOW_PAGE_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("CEDARFLOW_IDENTITY_SECRET", "ab" * 32)
    token = seal_page_token("runs", 7)
    opened = (
        "from store.search.pagination import page_offset as o; import sys; "
        "print(o(sys.argv[1], 'runs'))"
    )
    other = subprocess.run(  # another handler-tier instance with the same secret
        [sys.executable, "-c", opened, token], capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == "7"
    monkeypatch.setenv("CEDARFLOW_IDENTITY_SECRET", "cd" * 32)
    with pytest.raises(MlflowException, match="Invalid page token"):
        page_offset(token, "runs")


# ---- unsupported calls ---------------------------------------------------------------------


@raise_not_implemented
class _PartialStore(AbstractStore):
    def get_run(self, run_id):
        return "the run"


@pytest.mark.parametrize(
    ("method", "args"),
    [("get_experiment", ("1",)),            # abstract
     ("set_experiment_tag", ("1", None)),   # docstring-only body: would return None silently
     ("start_trace", (None,)),              # raises NotImplementedError
     ("get_experiment_by_name", ("x",))],
)  # fmt: skip
def test_unimplemented_calls_raise_mlflow_not_implemented(method, args):
    store = _PartialStore()
    assert store.get_run("r") == "the run"
    with pytest.raises(MlflowException) as caught:
        getattr(store, method)(*args)
    assert caught.value.error_code == "NOT_IMPLEMENTED"
    assert caught.value.get_http_status_code() == 501
    assert "_PartialStore" in caught.value.message


def test_batch_write_waves_never_repeat_a_key_and_keep_its_order():
    requests = [("put", None, ("K", str(i % 30))) for i in range(70)]
    waves = list(dynamo._waves_without_duplicate_keys(requests, 25, 8))
    flattened = [r for wave in waves for chunk in wave for r in chunk]
    assert flattened == requests
    for wave in waves:
        keys = [r[2] for chunk in wave for r in chunk]
        assert len(keys) == len(set(keys))
        assert all(len(chunk) <= 25 for chunk in wave) and len(wave) <= 8


def test_every_request_carries_one_fixed_user_agent(table):
    sent = []
    table._client.meta.events.register(
        "before-send.dynamodb.*", lambda request, **_: sent.append(request.headers["User-Agent"])
    )
    table.put({"pk": "ua", "sk": "1", "v": 1})
    table.get("ua", "1")
    assert len(sent) == 2 and sent[0] == sent[1]
    assert sent[0].decode().startswith(dynamo_client.USER_AGENT + " ")


_plain_values = st.recursive(
    st.one_of(
        st.text(max_size=20),
        st.integers(-(10**30), 10**30),
        st.floats(),
        st.decimals(allow_nan=False, allow_infinity=False, places=6),
        st.booleans(),
        st.none(),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(min_size=1, max_size=8), _plain_values, max_size=6))
def test_a_plain_item_is_sized_as_its_typed_form(item):
    assert plain_item_size(item) == item_size(serialize_item(item))
