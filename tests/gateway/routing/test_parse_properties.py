"""Generated requests against the request parser (routing/parse.py, params.py, values.py): for
any method, route, path segment, query string, header set and body, it reads the request or
refuses it with a 4xx GatewayError; it never fails in any other way."""

from __future__ import annotations

import json
import re
import urllib.parse

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.errors import GatewayError
from gateway.routing import mlflow_routes
from gateway.routing.parse import ParsedRequest, parse_request

ROUTES = tuple(route for route in mlflow_routes() if route.action and not route.refused)
# Fields MLflow's calls name (ids, names, paging, values), and their camelCase spellings.
FIELDS = (
    "experiment_id", "experiment_ids", "experimentId", "run_id", "run_uuid", "runId", "name",
    "new_name", "version", "alias", "stage", "key", "value", "path", "trace_id", "trace_ids",
    "request_id", "model_id", "model_ids", "source", "filter", "filter_string", "order_by",
    "max_results", "page_token", "tags", "metrics", "params", "experiment_name", "dataset_id",
    "archive_existing_versions", "artifact_path", "locations", "timestamp", "step", "view_type",
)  # fmt: skip

_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
_JSON_VALUE = st.recursive(
    _SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
_KEY = st.sampled_from(FIELDS) | st.text(max_size=12)
_BODY = st.one_of(
    st.builds(lambda obj: json.dumps(obj).encode(), st.dictionaries(_KEY, _JSON_VALUE)),
    st.builds(lambda obj: json.dumps(obj).encode(), _JSON_VALUE),
    st.binary(max_size=80),
    st.text(max_size=80).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.just(b""),
    st.just(b'{"run_id": "a", "run_id": "b"}'),
    st.just(b"[" * 5000),
)
_QUERY = st.one_of(
    st.just(""),
    st.lists(st.tuples(_KEY, st.text(max_size=20)), max_size=5).map(urllib.parse.urlencode),
    st.binary(max_size=60),
    st.text(max_size=60),
)
_SEGMENT = st.one_of(
    st.text(alphabet="0123456789abcdef", min_size=1, max_size=32),
    st.text(min_size=1, max_size=20).map(lambda text: urllib.parse.quote(text, safe="")),
    st.sampled_from(["..", ".", "%2e%2e", "%2F", "a%00b", "%", "%zz", "x/../y"]),
)
_CONTENT_TYPES = st.sampled_from(
    [None, "application/json", "application/json; charset=utf-8", "text/plain",
     "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/JSON"]
)  # fmt: skip
_HEADER = st.tuples(
    st.sampled_from(["x-http-method-override", "x-mlflow-workspace", "accept", "x-other"]),
    st.text(alphabet="abcXYZ019-_.", min_size=1, max_size=10),
)
_PLACEHOLDER = re.compile(r"\{[^}]+\}")
_SENT_AS_IS = "=&%+;/?:@,$!'()*~-._"


@st.composite
def requests(draw: st.DrawFn) -> tuple:
    route = draw(st.sampled_from(ROUTES), label="route")
    method = draw(st.sampled_from([route.method, route.method, "GET", "POST", "PATCH", "HEAD"]))
    path = _PLACEHOLDER.sub(lambda _: draw(_SEGMENT), route.path)
    headers = draw(st.lists(_HEADER, max_size=2))
    content_type = draw(_CONTENT_TYPES)
    if content_type is not None:
        headers.append(("content-type", content_type))
    return method, path, draw(_QUERY), headers, draw(_BODY)


def _parses_or_refuses(method: str, path: str, query, headers, body: bytes) -> None:
    try:
        parsed = parse_request(method, path, query, headers, body)
    except GatewayError as exc:
        assert 400 <= exc.status_code < 500, exc
        assert exc.error_code and exc.message
        return
    assert isinstance(parsed, ParsedRequest)
    assert parsed.resources
    for ref in parsed.resources:
        assert isinstance(ref.id, str), ref


@settings(
    max_examples=800,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
@example(request=("GET", "/api/2.0/mlflow/runs/get", b"run_id=%ff", [], b""))
@example(request=("POST", "/api/2.0/mlflow/runs/get", "", [("content-type", "text/plain")], b"x"))
def test_any_request_is_read_or_refused_with_a_4xx(request):
    _parses_or_refuses(*request)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    route=st.sampled_from(ROUTES),
    body=st.dictionaries(_KEY, _JSON_VALUE, max_size=6),
    query=st.lists(st.tuples(_KEY, st.text(max_size=20)), max_size=6),
)
def test_any_json_object_or_query_on_a_route_is_read_or_refused_with_a_4xx(route, body, query):
    path = _PLACEHOLDER.sub("0123456789abcdef0123456789abcdef", route.path)
    headers = [("content-type", "application/json")]
    _parses_or_refuses(route.method, path, "", headers, json.dumps(body).encode())
    _parses_or_refuses(route.method, path, urllib.parse.urlencode(query), headers, b"")


@settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=requests())
def test_any_request_through_the_gateway_gets_no_5xx(gateway, request):
    method, path, query, headers, body = request
    query = query.encode("utf-8", "surrogatepass") if isinstance(query, str) else query
    # Sent as an HTTP client can: bytes outside printable ASCII percent-encoded.
    target = path + ("?" + urllib.parse.quote(query, safe=_SENT_AS_IS) if query else "")
    token = gateway.idp.mint("alice", ["ds-team"])
    with gateway.client(headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.request(method, target, headers=headers, content=body or None)
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400 and method != "HEAD":
        assert response.json()["error_code"]
