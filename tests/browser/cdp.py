"""Headless Chromium driven over the DevTools protocol on a pipe (no extra Python packages).

`--remote-debugging-pipe` makes Chromium read commands on fd 3 and write answers on fd 4, one
JSON message per NUL-terminated frame.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("Chromium is not installed (Debian: apt-get install chromium)")


class CdpError(Exception):
    pass


class Chromium:
    """One headless browser process; `page()` opens a tab."""

    def __init__(self, user_data_dir: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # bash moves the pipe ends to fds 3 and 4, where Chromium expects them.
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self.process = subprocess.Popen(
            ["bash", "-c", script, chromium_path(), *FLAGS, f"--user-data-dir={user_data_dir}"],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._lock = threading.Lock()
        self._waiting: dict[int, queue.Queue] = {}
        # Events (messages without an id) per session, kept only for sessions that asked.
        self._events: dict[str, list[dict]] = {}
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        with self._lock:
            self._next_id += 1
            message_id = self._next_id
            answer: queue.Queue = queue.Queue(maxsize=1)
            self._waiting[message_id] = answer
        message = {"id": message_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        try:
            reply = answer.get(timeout=60)
        except queue.Empty:
            raise CdpError(f"no answer to {method}") from None
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def page(self, url: str, context: str | None = None) -> Page:
        """A tab on `url`, in the browser context `context` (its own cookies) when given."""
        params = {"url": url} | ({"browserContextId": context} if context else {})
        target = self.send("Target.createTarget", params)["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        return Page(self, session["sessionId"])

    def new_context(self) -> str:
        """A browser context: a cookie jar of its own, as a separate profile would have."""
        return self.send("Target.createBrowserContext")["browserContextId"]

    def record_events(self, session: str) -> None:
        with self._lock:
            self._events.setdefault(session, [])

    def take_events(self, session: str) -> list[dict]:
        """The events received for `session` since the last call."""
        with self._lock:
            taken = self._events.get(session, [])
            self._events[session] = []
            return taken

    def close(self) -> None:
        with contextlib.suppress(CdpError, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)

    def _read_loop(self) -> None:
        buffer = b""
        while True:
            chunk = os.read(self._from_browser, 65536)
            if not chunk:
                break
            buffer += chunk
            while b"\0" in buffer:
                frame, buffer = buffer.split(b"\0", 1)
                message = json.loads(frame)
                if "id" not in message:
                    with self._lock:
                        kept = self._events.get(message.get("sessionId", ""))
                        if kept is not None:
                            kept.append(message)
                    continue
                waiter = self._waiting.pop(message.get("id"), None)
                if waiter is not None:
                    waiter.put(message)
        os.close(self._from_browser)


class Page:
    """A tab, attached with a flat session."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    def evaluate(self, expression: str):
        result = self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self.session,
        )
        if "exceptionDetails" in result:
            raise CdpError(str(result["exceptionDetails"]))
        return result["result"].get("value")

    def navigate(self, url: str) -> None:
        self.browser.send("Page.navigate", {"url": url}, session=self.session)

    def wait_for(self, expression: str, *, attempts: int = 300, interval: float = 0.2):
        """Poll until `expression` is truthy (bounded); its value, or CdpError."""
        last = None
        for _ in range(attempts):
            try:
                last = self.evaluate(expression)
            except CdpError:
                last = None  # the page is between documents
            if last:
                return last
            time.sleep(interval)
        url = self.evaluate_quietly("location.href")
        raise CdpError(f"gave up waiting for {expression!r} on {url}")

    def evaluate_quietly(self, expression: str):
        try:
            return self.evaluate(expression)
        except CdpError as exc:
            return str(exc)
