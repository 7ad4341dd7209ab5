"""Load, validate and hot-reload the policy set in `policies/` (schema + `*.cedar` files).

A set is installed only when every file parses, validates against the schema and every
policy carries a unique `@id`; errors name the file, line and column. On reload a broken
set is logged and the last good set stays in force: the gateway never fails open.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cedarpy

SCHEMA_FILE = "schema.cedarschema"
log = logging.getLogger("cedarflow.policy")


@dataclass(frozen=True)
class PolicyError:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PolicyLoadError(ValueError):
    """The policy set cannot be installed; `errors` locate every problem found."""

    def __init__(self, errors: list[PolicyError]):
        self.errors = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class PolicySource:
    """Where a policy was written: for audit lines and the simulator's explanations."""

    policy_id: str
    file: str
    line: int
    effect: str  # "permit" | "forbid"


@dataclass(frozen=True)
class PolicyBundle:
    """One validated policy set, ready for decisions."""

    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema
    revision: str  # content hash of the schema and every policy file
    sources: dict[str, PolicySource] = field(hash=False)
    directory: Path


def load_policies(directory: str | Path) -> PolicyBundle:
    """Parse and validate `directory`; raise PolicyLoadError listing every located error."""
    try:
        return _load(Path(directory))
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError([PolicyError(str(directory), 1, 1, f"cannot read: {exc}")]) from None


def _load(directory: Path) -> PolicyBundle:
    errors: list[PolicyError] = []
    schema_path = directory / SCHEMA_FILE
    if not schema_path.is_file():
        raise PolicyLoadError([PolicyError(str(schema_path), 1, 1, "schema file is missing")])
    schema_text = schema_path.read_text()
    try:
        schema = cedarpy.Schema.from_str(schema_text)
    except ValueError as exc:
        raise PolicyLoadError(
            [_locate(schema_path, schema_text, 0, str(exc), _parses_schema)]
        ) from None
    files = sorted(directory.glob("*.cedar"))
    if not files:
        raise PolicyLoadError([PolicyError(str(directory), 1, 1, "no *.cedar policy files")])
    digest = hashlib.sha256(b"schema\0" + schema_text.encode())
    static: dict[str, dict] = {}
    sources: dict[str, PolicySource] = {}
    for path in files:
        text = path.read_text()
        digest.update(f"\0{path.name}\0".encode() + text.encode())
        for start, statement in _statements(text):
            errors.extend(_load_statement(path, text, start, statement, schema, static, sources))
    if errors:
        raise PolicyLoadError(errors)
    policy_set = cedarpy.PolicySet.from_json_str(
        json.dumps({"staticPolicies": static, "templates": {}, "templateLinks": []})
    )
    return PolicyBundle(policy_set, schema, digest.hexdigest()[:16], sources, directory)


def _load_statement(
    path: Path,
    text: str,
    start: int,
    statement: str,
    schema: cedarpy.Schema,
    static: dict[str, dict],
    sources: dict[str, PolicySource],
) -> Iterator[PolicyError]:
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(statement))
    except ValueError as exc:
        yield _locate(path, text, start, str(exc), _parses_policy, statement)
        return
    if parsed.get("templates"):
        yield _at(path, text, start, "policy templates are not supported")
        return
    for policy in parsed.get("staticPolicies", {}).values():
        policy_id = policy.get("annotations", {}).get("id")
        if not policy_id:
            yield _at(path, text, start, 'every policy needs an @id("...") annotation')
            continue
        if policy_id in sources:
            first = sources[policy_id]
            yield _at(
                path,
                text,
                start,
                f'duplicate @id("{policy_id}"), first at {first.file}:{first.line}',
            )
            continue
        result = cedarpy.validate_policies(statement, schema)
        if not result.validation_passed:
            for err in result.errors:
                yield _locate(path, text, start, err.error, None, statement)
            continue
        static[policy_id] = policy
        line, _ = _line_col(text, start)
        sources[policy_id] = PolicySource(policy_id, str(path), line, policy["effect"])


# ---- policy store with hot reload ----------------------------------------------------


class PolicyStore:
    """The policy set in force, reloaded when the files change; the last good set is kept."""

    def __init__(self, directory: str | Path, *, poll_interval: float = 1.0):
        self.directory = Path(directory)
        self.poll_interval = poll_interval
        self._current = load_policies(self.directory)  # refuse to start on a broken set
        self._stamp = self._file_stamp()
        self.last_error: PolicyLoadError | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> PolicyBundle:
        return self._current

    def refresh(self) -> bool:
        """Reload if any file changed. True when a new set was installed."""
        with self._lock:
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            try:
                bundle = load_policies(self.directory)
            except PolicyLoadError as exc:
                self.last_error = exc
                log.error(
                    "policy reload refused, keeping revision %s:\n%s", self._current.revision, exc
                )
                return False
            self.last_error = None
            if bundle.revision == self._current.revision:
                return False
            log.info("policy set %s installed (was %s)", bundle.revision, self._current.revision)
            self._current = bundle
            return True

    def start(self) -> None:
        """Poll the directory in a daemon thread until stop()."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="policy-reload", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:  # a reload problem must never stop the watcher
                log.exception("policy reload failed")

    def _file_stamp(self) -> str:
        # contents, not mtimes: an edit within one timestamp tick is still seen
        digest = hashlib.sha256()
        try:
            for path in sorted(self.directory.glob("*")):
                if path.suffix == ".cedar" or path.name == SCHEMA_FILE:
                    digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError as exc:  # a file vanished mid-scan: look again next time
            return f"unreadable: {exc}"
        return digest.hexdigest()


# ---- statements and error positions ---------------------------------------------------

_TOKEN = re.compile(
    r'//[^\n]*|"(?:\\.|[^"\\])*"?|::|==|!=|<=|>=|&&|\|\||[A-Za-z_][A-Za-z0-9_]*|\d+|\S', re.S
)


def _tokens(text: str) -> Iterator[re.Match[str]]:
    for m in _TOKEN.finditer(text):
        if not m.group().startswith("//"):
            yield m


def _statements(text: str) -> Iterator[tuple[int, str]]:
    """Each policy's text with its offset: split at top-level `;` (strings/comments aware)."""
    start: int | None = None
    for m in _tokens(text):
        if start is None:
            start = m.start()
        if m.group() == ";":
            yield start, text[start : m.end()]
            start = None
    if start is not None:
        yield start, text[start:]


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _at(path: Path, text: str, offset: int, message: str) -> PolicyError:
    line, column = _line_col(text, offset)
    return PolicyError(str(path), line, column, message)


def _parses_policy(text: str) -> str | None:
    try:
        cedarpy.policies_to_json_str(text)
    except ValueError as exc:
        return str(exc)
    return None


def _parses_schema(text: str) -> str | None:
    try:
        cedarpy.Schema.from_str(text)
    except ValueError as exc:
        return str(exc)
    return None


def _locate(path, text, start, message, parse, snippet=None) -> PolicyError:
    """Best position for an error Cedar reports without one.

    A syntax error is pinned to the token where the shortest failing prefix stops; a
    semantic error to the first name it quotes; otherwise to the policy's first token.
    """
    snippet = text[start:] if snippet is None else snippet
    offset = None
    if parse is not None and "unexpected token" in message:
        offset = _first_bad_token(snippet, parse)
    if offset is None:
        offset = _quoted_name(snippet, message)
    return _at(path, text, start + (offset or 0), message)


def _first_bad_token(snippet: str, parse) -> int | None:
    ends = [m for m in _tokens(snippet)]
    lo, hi, found = 1, len(ends), None
    while lo <= hi:  # smallest prefix whose error is not just "unexpected end of input"
        mid = (lo + hi) // 2
        err = parse(snippet[: ends[mid - 1].end()])
        if err is not None and "unexpected end of input" not in err:
            found, hi = mid, mid - 1
        else:
            lo = mid + 1
    return ends[found - 1].start() if found else None


def _quoted_name(snippet: str, message: str) -> int | None:
    names = re.findall(r"`([^`]+)`", message)
    names += [n.strip() for n in message.rsplit(": ", 1)[-1].split(",")]
    # names are looked up outside string literals and comments, unless they contain a quote
    masked = re.sub(r'//[^\n]*|"(?:\\.|[^"\\])*"', lambda m: " " * len(m.group()), snippet)
    for name in names:
        if not name or re.fullmatch(r"policy\d+", name):
            continue
        haystack = snippet if '"' in name else masked
        m = re.search(r"(?<![A-Za-z0-9_])" + re.escape(name) + r"(?![A-Za-z0-9_])", haystack)
        if m:
            return m.start()
    return None
