"""Logs as one JSON object per line on stderr (`cedarflow serve`): this process's records, and
every line the handler tier prints, wrapped when it is not JSON already."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import IO

_CHATTY = ("botocore", "boto3", "urllib3", "httpx", "httpcore")
_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warning", "ERROR": "error"}


def log_line(level: str, source: str, message: str, **fields: object) -> str:
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
        "level": level,
        "logger": source,
        "message": message,
        **fields,
    }
    return json.dumps(record, default=str)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        level = _LEVELS.get(record.levelname, record.levelname.lower())
        return log_line(level, record.name, record.getMessage(), **fields)


def configure_json_logging(level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Every logger of this process writes JSON lines to stderr (uvicorn's included)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    for name in _CHATTY:  # where credentials and endpoints were found, on every client
        logging.getLogger(name).setLevel(logging.WARNING)


class LineRelay:
    """Copies a child's output to stderr line by line, as JSON; keeps the last line for errors."""

    def __init__(self, stream: IO[bytes], source: str, out: IO[str] | None = None) -> None:
        self.last = ""
        self._stream = stream
        self._source = source
        self._out = out
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        out = self._out or sys.stderr
        for raw in iter(self._stream.readline, b""):
            text = raw.decode(errors="replace").rstrip()
            if not text:
                continue
            self.last = text[:200]
            try:
                json_object = isinstance(json.loads(text), dict)
            except ValueError:
                json_object = False
            line = text if json_object else log_line("info", self._source, text)
            try:
                print(line, file=out, flush=True)
            except (OSError, ValueError):  # stderr closed while stopping
                return


def relay_lines(stream: IO[bytes], source: str) -> LineRelay:
    return LineRelay(stream, source)
