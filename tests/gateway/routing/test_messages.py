"""routing/messages.py and descriptors.py against MLflow's handlers and protobuf's JSON parser."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import GatewayError
from gateway.routing import all_routes
from gateway.routing.descriptors import NOT_PARSED, PARSED_AS, request_message
from gateway.routing.messages import check_request_body

HANDLERS = Path(__import__("mlflow.server.handlers").server.handlers.__file__)
ACTIONS = sorted({r.action for r in all_routes() if r.offered and r.action})
CHECKED = [a for a in ACTIONS if request_message(a) is not None]


def parsed_messages() -> set[str]:
    """Every message MLflow's handlers parse a request into."""
    return set(re.findall(r"_get_request_message\(\s*(\w+)\(\)", HANDLERS.read_text()))


def test_every_checked_call_is_parsed_by_its_handler_as_that_message():
    parsed = parsed_messages()
    assert CHECKED
    for action in CHECKED:
        assert request_message(action).name in parsed, action
    for action, message in PARSED_AS.items():
        assert f"{action}: _{_snake(message)}" in HANDLERS.read_text()


def test_calls_left_unchecked_are_not_parsed_by_their_handler():
    parsed = parsed_messages()
    for action in NOT_PARSED:
        assert action not in parsed, f"{action} is parsed by MLflow: check it"


def test_the_descriptors_are_read_without_importing_mlflow():
    code = (
        "import sys; from gateway.routing.descriptors import request_message;"
        "assert request_message('LogBatch') is not None;"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'mlflow']"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"max_results": float("inf")}, "max_results"),
        ({"max_results": []}, "max_results"),
        ({"max_results": "1e2"}, "max_results"),
        ({"max_results": None}, "max_results"),
        ({"max_results": 2**70}, "max_results"),
        ({"order_by": None}, "order_by"),
        ({"order_by": ["a", None]}, "order_by[1]"),
        ({"filter": 5}, "filter"),
        ({"filter": "\ud800"}, "filter"),
        ({"view_type": float("inf")}, "view_type"),
    ],
)
def test_values_mlflow_cannot_parse_are_refused_with_their_path(body, path):
    with pytest.raises(GatewayError) as refused:
        check_request_body("SearchExperiments", body)
    assert refused.value.status_code == 400
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert f"'{path}'" in refused.value.message


def test_an_enum_number_written_as_a_string_is_checked_as_a_number():
    with pytest.raises(GatewayError, match=r"'status'"):
        check_request_body("CreateWebhook", {"name": "w", "url": "https://x", "status": "0"})
    check_request_body("CreateWebhook", {"name": "w", "url": "https://x", "status": "1"})


def test_nested_values_are_checked_with_their_path():
    body = {"run_id": "r", "metrics": [{"key": "k", "value": 1.0, "timestamp": 1, "step": 0},
                                       {"key": "k", "value": [1], "timestamp": 1}]}  # fmt: skip
    with pytest.raises(GatewayError, match=r"'metrics\[1\]\.value'"):
        check_request_body("LogBatch", body)


def test_what_an_mlflow_client_sends_passes():
    check_request_body("LogMetric", {"run_id": "r", "key": "k", "value": "NaN",
                                     "timestamp": "1700000000000", "step": "3"})  # fmt: skip
    check_request_body("LogMetric", {"run_id": "r", "key": "k", "value": 1e308, "timestamp": 1})
    search = {"experiment_ids": ["1"], "run_view_type": "ACTIVE_ONLY", "max_results": 1000}
    check_request_body("SearchRuns", search | {"order_by": [], "unknown": [1]})


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["NaN", "Infinity", "1e2", "12", "-3", " 4", "true", "ACTIVE_ONLY"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


@settings(max_examples=600, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_body_the_gateway_lets_through_parses_into_mlflows_message(data):
    """Never more lenient than protobuf's parser, MLflow's first step (and its 500s' cause)."""
    from mlflow.utils.proto_json_utils import parse_dict

    action = data.draw(st.sampled_from(CHECKED))
    descriptor = request_message(action)
    fields = [f for f in descriptor.fields if not _parser_leniency(f)]
    if not fields:
        return
    field = data.draw(st.sampled_from(fields))
    body = {data.draw(st.sampled_from([field.name, field.json_name])): data.draw(_JSON)}
    try:
        check_request_body(action, body)
    except GatewayError:
        return
    message = _message_class(descriptor)()
    parse_dict(body, message)  # raises if the gateway let through what MLflow cannot parse


def _parser_leniency(field) -> bool:
    """Fields where the gateway leaves checks to MLflow's own answer (never a crash there)."""
    message = field.message_type
    return field.type == field.TYPE_BYTES or (
        message is not None
        and message.full_name.split(".")[-1] in ("Timestamp", "Duration", "FieldMask", "Any")
    )


def _message_class(descriptor):
    from mlflow.protos import (
        assessments_pb2,
        datasets_pb2,
        issues_pb2,
        label_schemas_pb2,
        mlflow_artifacts_pb2,
        model_registry_pb2,
        review_queues_pb2,
        service_pb2,
        webhooks_pb2,
    )

    for module in (service_pb2, model_registry_pb2, mlflow_artifacts_pb2, webhooks_pb2,
                   datasets_pb2, assessments_pb2, label_schemas_pb2, issues_pb2,
                   review_queues_pb2):  # fmt: skip
        found = getattr(module, descriptor.name, None)
        if found is not None and found.DESCRIPTOR.full_name == descriptor.full_name:
            return found
    raise AssertionError(descriptor.full_name)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
