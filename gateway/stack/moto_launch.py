"""In-memory DynamoDB (moto) on 127.0.0.1, on CEDARFLOW_DYNAMODB_PORT or a port chosen by the OS;
prints {"port": N}.

Used only where Node.js is missing. Exits on SIGTERM or when stdin closes (the parent died).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading


def main() -> int:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(
        ip_address="127.0.0.1",
        port=int(os.environ.get("CEDARFLOW_DYNAMODB_PORT") or 0),
        verbose=False,
    )
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), done.set()), daemon=True).start()
    print(json.dumps({"port": server.get_host_and_port()[1]}), flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
