"""Where a run's items live (store/README.md, "Runs"): every key a run's items are written and
found under, built here and nowhere else.

A run's **position** is its place in MLflow's default run order inside its experiment
(`start_time DESC`, then run id): `T#<2^63-1-start_time, 20 digits>#<run_id>`. It never changes
(no call changes a start time), so it keys everything of the run:

- locator        RUN#<run_id> / RUN                  experiment, position, artifact URI
- core           EXPRUNS#<exp> / <pos>               attributes, metric-bucket layout
- param, tag     EXPRUNS#<exp> / <pos>#P#<key>, #T#  value (filter index: gsi2)
- inputs, links  EXPRUNS#<exp> / <pos>#I#, #MI#, #MO#
- metric bucket  EXPMETRICS#<exp> / <pos>#<bucket>   latest values of some metric keys
- history point  HIST#<run_id>#<key> / <step>#<timestamp>#<value>

Keys are bounded in UTF-8 bytes (DynamoDB: 2048 for a partition key, 1024 for a sort key; local
servers check neither in bytes, so these functions are the only guard).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct

RUN_TIMED_PREFIX = "T#"
RUN_UNTIMED_PREFIX = "U#"  # after every timed run, as SQL puts NULL start times last
PARAM = "P"
TAG = "T"
ATTRIBUTE = "A"
STATUS_COLUMN = "status"  # gsi2 column of run cores: <status>\0<pos>
HIDDEN_NAME_COLUMN = "hidden_name"  # run names whose mlflow.runName tag was deleted
DELETED_RUNS = "RUNS#DELETED"  # gsi1 partition of deleted run cores (mlflow gc)
MAX_SORT_KEY_BYTES = 1024
MAX_PARTITION_KEY_BYTES = 2048
INDEXED_VALUE_BYTES = 900  # a longer value is indexed by its first bytes and its digest
_TRUNCATED_BYTES = 800
_TRUNCATION_MARK = "\x01"
_SEPARATOR = "\x00"  # value / position separator: sorts before every character
_INT64_MAX = 2**63 - 1
_INT64_OFFSET = 2**63
_ID_WIDTH = 20


def content_pk(experiment_id: str) -> str:
    """The partition of an experiment's runs: cores, params, tags, inputs, in run order."""
    return f"EXPRUNS#{experiment_id}"


def metrics_pk(experiment_id: str) -> str:
    """The partition of an experiment's metric buckets, in run order."""
    return f"EXPMETRICS#{experiment_id}"


def run_position(start_time: int | None, run_id: str) -> str:
    """start_time descending, then run_id ascending, no start time last."""
    if start_time is None:
        return f"{RUN_UNTIMED_PREFIX}{run_id}"
    clamped = min(max(int(start_time), -_INT64_MAX - 1), _INT64_MAX)
    return f"{RUN_TIMED_PREFIX}{_INT64_MAX - clamped:020d}#{run_id}"


def position_of(sort_key: str) -> str:
    """The position a content or bucket sort key starts with."""
    parts = sort_key.split("#", 3)
    return "#".join(parts[:3]) if sort_key.startswith(RUN_TIMED_PREFIX) else "#".join(parts[:2])


def run_id_of(position: str) -> str:
    return position.rsplit("#", 1)[-1]


def start_time_of(position: str) -> int | None:
    if not position.startswith(RUN_TIMED_PREFIX):
        return None
    return _INT64_MAX - int(position[2:22])


def child_prefix(position: str) -> str:
    """What every item of a run but its core starts with in the content partition."""
    return position + "#"


def child_sk(position: str, kind: str, key: str) -> tuple[str, str | None]:
    """A param's or tag's sort key, and the key to store beside it when the sort key holds a
    digest instead (a key whose UTF-8 form would take the sort key past 1024 bytes)."""
    sk = f"{position}#{kind}#{key}"
    if len(sk.encode()) <= MAX_SORT_KEY_BYTES:
        return sk, None
    return f"{position}#{kind}#~{hashlib.sha256(key.encode()).hexdigest()}", key


def child_kind(position: str, sort_key: str) -> str:
    """P, T, I, MI, MO (or "" for the core) of an item of the run at `position`."""
    rest = sort_key[len(position) :]
    return rest[1:].split("#", 1)[0] if rest else ""


def input_sk(position: str, dataset_sk: str) -> str:
    return f"{position}#I#{dataset_sk}"


def model_input_sk(position: str, model_id: str) -> str:
    return f"{position}#MI#{model_id}"


def model_output_sk(position: str, model_id: str, step: int) -> str:
    return f"{position}#MO#{model_id}#{step}"


def bucket_sk(position: str, bucket: int) -> str:
    return f"{position}#{bucket:06d}"


def bucket_of(sort_key: str) -> int:
    """The bucket number of a bucket's sort key."""
    return int(sort_key.rsplit("#", 1)[1])


def bucket_prefix(position: str) -> str:
    return position + "#"


# ---- the filter index (gsi2) ------------------------------------------------------------------


def filter_pk(experiment_id: str, kind: str, key: str) -> str:
    """One column of the filter index: the param / tag `key`, or an ATTRIBUTE column."""
    return f"EXPF#{experiment_id}#{kind}#{key}"


def indexed_value(value: str) -> str:
    """A value as the index sorts it: itself up to INDEXED_VALUE_BYTES, else its first bytes, a
    mark and its digest (equality stays exact, a prefix of up to 800 bytes too)."""
    raw = value.encode()
    if len(raw) <= INDEXED_VALUE_BYTES:
        return value
    head = raw[:_TRUNCATED_BYTES].decode(errors="ignore")
    return f"{head}{_TRUNCATION_MARK}{hashlib.sha256(raw).hexdigest()}"


def index_prefix(prefix: str) -> str:
    """The part of a value prefix the index can look up (the rest is checked on the run)."""
    raw = prefix.encode()
    if len(raw) <= _TRUNCATED_BYTES:
        return prefix
    return raw[:_TRUNCATED_BYTES].decode(errors="ignore")


def filter_sk(value: str, position: str) -> str:
    return f"{indexed_value(value)}{_SEPARATOR}{position}"


def equal_value_prefix(value: str) -> str:
    """The gsi2 sort-key prefix of the entries whose value is `value`."""
    return indexed_value(value) + _SEPARATOR


def entry_value(entry: dict) -> tuple[str, bool]:
    """The value a filter-index entry holds, and whether it is complete (not a digest)."""
    position = position_of(entry["sk"])
    indexed = entry["gsi2sk"][: -(len(position) + 1)]
    mark = indexed.rfind(_TRUNCATION_MARK)
    complete = not (mark >= 0 and len(indexed) - mark == 65 and _is_hex(indexed[mark + 1 :]))
    return indexed, complete


def deleted_run_sk(deleted_time: int, run_id: str) -> str:
    return f"{max(0, int(deleted_time)):020d}#{run_id}"


def deleted_run_bound(millis: int) -> str:
    """The gsi1 sort key after every run deleted at or before `millis`."""
    return f"{max(0, int(millis)):020d}$"


# ---- metric values ------------------------------------------------------------------------------


# A metric order is a string whose order is (step, timestamp, rank)'s: MLflow's "latest" order.
# `~`, then step and timestamp as signed numbers of base-64 digits led by their length (so each
# ends where its length says), then the rank's 64 ordered bits in 11 digits, trailing zero digits
# dropped (a shorter rank is a smaller one). About 23 characters for a training step. Orders of
# earlier versions are 48 hex digits: `~` sorts after every hex digit, so they are older than
# every order written now.
ORDER_MARK = "~"
_DIGITS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"  # in ASCII order
_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"  # RFC 4648's
_FROM_BASE64 = str.maketrans(_BASE64, _DIGITS)
_TO_BASE64 = str.maketrans(_DIGITS, _BASE64)
_COMPLEMENT = str.maketrans(_DIGITS, _DIGITS[::-1])  # digit d → 63 - d
_ZERO_LENGTH = ord("P")  # a length-led number: chr(80 + its digits), or chr(80 - them) below 0
_WIDTH = 11  # digits of 64 bits


def metric_order(step: int, timestamp: int, rank: float) -> str:
    rank_digits = _digits(_ordered_bits(rank)).rstrip(_DIGITS[0])
    return f"{ORDER_MARK}{_signed(step)}{_signed(timestamp)}{rank_digits}"


def step_and_timestamp(order: str) -> tuple[int, int]:
    if not order.startswith(ORDER_MARK):
        return int(order[:16], 16) - _INT64_OFFSET, int(order[16:32], 16) - _INT64_OFFSET
    step, end = _read_signed(order, 1)
    timestamp, _ = _read_signed(order, end)
    return step, timestamp


def _signed(number: int) -> str:
    number = min(max(int(number), -_INT64_OFFSET), _INT64_MAX)
    digits = _digits(abs(number)).lstrip(_DIGITS[0]) or _DIGITS[0]
    if number >= 0:
        return chr(_ZERO_LENGTH + len(digits)) + digits
    # Below zero: the longer, the smaller; complemented, a larger magnitude sorts first.
    return chr(_ZERO_LENGTH - len(digits)) + digits.translate(_COMPLEMENT)


def _read_signed(order: str, start: int) -> tuple[int, int]:
    length = ord(order[start]) - _ZERO_LENGTH
    end = start + 1 + abs(length)
    digits = order[start + 1 : end]
    if length > 0:
        return _number(digits), end
    return -_number(digits.translate(_COMPLEMENT)), end


def _digits(number: int) -> str:
    """The 11 base-64 digits of a number below 2^64. Shifted left by 6 bits, the number fills 9
    bytes, whose 12 base-64 digits are its 11 and a trailing zero digit."""
    return (
        base64.b64encode((number << 6).to_bytes(9, "big")).decode()[:_WIDTH].translate(_FROM_BASE64)
    )


def _number(digits: str) -> int:
    padded = digits.rjust(_WIDTH, _DIGITS[0]) + _DIGITS[0]
    return int.from_bytes(base64.b64decode(padded.translate(_TO_BASE64)), "big") >> 6


def history_pk(run_id: str, key: str) -> str:
    return f"HIST#{run_id}#{key}"


def history_sk(step: int, timestamp: int, rank: float, is_nan: bool) -> str:
    """One point of a history; a point logged twice (same step, time and value) is one item."""
    value_id = "nan" if is_nan else f"{_ordered_bits(rank):016x}"
    return f"{_offset(step):016x}#{_offset(timestamp):016x}#{value_id}"


def history_step_bound(step: int) -> str:
    return f"{_offset(step):016x}"


def history_point(sort_key: str) -> tuple[int, int]:
    """(step, timestamp) of a history item's sort key."""
    return int(sort_key[:16], 16) - _INT64_OFFSET, int(sort_key[17:33], 16) - _INT64_OFFSET


def padded_id(value: int) -> str:
    return f"{value:0{_ID_WIDTH}d}"


def _offset(number: int) -> int:
    return min(max(int(number), -_INT64_OFFSET), _INT64_MAX) + _INT64_OFFSET


def _ordered_bits(value: float) -> int:
    """A double's bits, flipped so that unsigned order is numeric order (-0.0 as 0.0)."""
    if value == 0 or math.isnan(value):
        value = 0.0
    (bits,) = struct.unpack(">Q", struct.pack(">d", value))
    return (~bits & 0xFFFF_FFFF_FFFF_FFFF) if bits >> 63 else bits | (1 << 63)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
