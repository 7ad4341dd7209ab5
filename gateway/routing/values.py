"""Values MLflow's handlers would fail on with a 500 instead of refusing: refused here first.

routing/parse.py reads a request as the handler will; `check_values` then refuses:
- JSON bodies whose values do not fit the call's protobuf message (routing/messages.py);
- string fields the handler decodes as JSON (`model_json`, dataset `tags` and `records`) that
  hold no JSON of the expected shape;
- the query parameters of MLflow's raw handlers that are indexed (`request.args["path"]`) or
  passed to `int()` without a check;
- artifact paths longer than a file system or an S3 key holds (the artifact store fails).
`has_unpaired_surrogate` finds strings no UTF-8 can carry (a lone `\\ud800` escape in JSON):
they fail wherever they are written out (a JSON answer, DynamoDB), so bodies holding one are
refused too.
"""

from __future__ import annotations

import json
import re

from gateway.errors import bad_request
from gateway.routing.messages import check_request_body
from gateway.routing.model import PROTO, QUERY, Route

# String fields MLflow's handler decodes as JSON, and what the decoded value must be.
_JSON_TEXT_FIELDS: dict[str, tuple[tuple[str, type], ...]] = {
    "LogModel": (("model_json", dict),),
    "CreateDataset": (("tags", dict),),
    "SetDatasetTags": (("tags", dict),),
    "UpsertDatasetRecords": (("records", list),),
}
# Query parameters MLflow's raw handlers index (`request.args[...]`) or pass to int().
RAW_QUERY_REQUIRED = {"DownloadArtifact": ("path",), "GetModelVersionArtifact": ("path",)}
_RAW_QUERY_INTEGERS = {
    "GetMetricHistoryBulk": ("max_results",),
    "GetMetricHistoryBulkInterval": ("max_results", "start_step", "end_step"),
}
# Parameters naming a path under an artifact root, which the artifact store then opens.
_ARTIFACT_PATH_PARAMS = {
    "ListArtifacts": "path",
    "DownloadArtifact": "path",
    "GetModelVersionArtifact": "path",
    "ListLoggedModelArtifacts": "artifact_directory_path",
    "GetLoggedModelArtifact": "artifact_file_path",
}
MAX_ARTIFACT_NAME_BYTES = 255  # a file name on common file systems
MAX_ARTIFACT_PATH_BYTES = 1024  # an S3 object key
_UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def check_values(route: Route, params: dict | None, source: str | None) -> None:
    """Refuse (bad_request) the values of a parsed request that the handler would crash on."""
    action = route.action or ""
    if source == "body" and route.params == PROTO and params:
        check_request_body(action, params)
        for name, kind in _JSON_TEXT_FIELDS.get(action, ()):
            _check_json_text(params, name, kind)
    if source == "query" and route.params == QUERY and params is not None:
        for name in RAW_QUERY_REQUIRED.get(action, ()):
            if name not in params:
                raise bad_request(f"Missing value for required parameter '{name}'.")
    if source == "query" and params is not None:  # `request.args`, whatever else parses it
        for name in _RAW_QUERY_INTEGERS.get(action, ()):
            value = (params.get(name) or [None])[0]
            if value is not None and not _is_int_text(value):
                raise bad_request(f"Invalid value '{value}' for parameter '{name}'.")
    name = _ARTIFACT_PATH_PARAMS.get(action)
    if name and params:
        value = params.get(name)
        if source == "query" and isinstance(value, list):
            value = value[0] if value else None  # the handler reads the first value
        if isinstance(value, str):
            check_artifact_path_length(value, name)


def check_artifact_path_length(path: str, name: str = "path") -> None:
    """Refuse an artifact path no file system or S3 key can hold (the store would fail)."""
    encoded = path.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_ARTIFACT_PATH_BYTES or any(
        len(part) > MAX_ARTIFACT_NAME_BYTES for part in encoded.split(b"/")
    ):
        raise bad_request(f"Parameter '{name}' is longer than an artifact path can be.")


def has_unpaired_surrogate(value: object, raw: bytes | str | None = None) -> bool:
    """Whether parsed JSON holds a string no UTF-8 can carry.

    `raw`, the JSON text, lets the common case (no surrogate escape at all) skip the walk.
    """
    if raw is not None:
        text = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
        if not _SURROGATE_ESCAPE.search(text):
            return False
    try:
        return _walk_for_surrogates(value)
    except RecursionError:
        return True


def _walk_for_surrogates(value: object) -> bool:
    if isinstance(value, str):
        return bool(_UNPAIRED_SURROGATE.search(value))
    if isinstance(value, dict):
        return any(_walk_for_surrogates(k) or _walk_for_surrogates(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_walk_for_surrogates(item) for item in value)
    return False


def _check_json_text(params: dict, name: str, kind: type) -> None:
    text = params.get(name, params.get(_camel(name)))
    if not isinstance(text, str) or not text:
        return  # absent or empty: the handler's own checks answer
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, kind):
        what = "object" if kind is dict else "array"
        raise bad_request(f"Parameter '{name}' must be a JSON {what} encoded as a string.")


def _is_int_text(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)
