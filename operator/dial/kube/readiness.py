"""`/readyz`: the operator is ready when it can reach the API server, whether it leads or stands by.

Readiness is not leadership: a standby that can reach the API server is ready to take over, and
marking it unready would only hide it from `kubectl get pods` and from rollouts' availability.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlparse

log = logging.getLogger("dial.readiness")
CACHE_SECONDS = 1.0  # probes of several kubelets and a curl loop cost one API call a second at most


class _CachedCheck:
    def __init__(self, check: Callable[[], None], clock: Callable[[], float] = time.monotonic):
        self._check, self._clock = check, clock
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._error: str | None = None

    def error(self) -> str | None:
        """None when the check passed (within the last second), else why it failed."""
        with self._lock:
            if self._clock() - self._at >= CACHE_SECONDS:
                try:
                    self._check()
                    self._error = None
                except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is the body
                    self._error = f"{type(exc).__name__}: {exc}"[:500]
                self._at = self._clock()
            return self._error


def serve_readiness(url: str, check: Callable[[], None]) -> ThreadingHTTPServer:
    """Serve GET <path of url> on its host and port from a daemon thread: 200 "ok" or 503 with the cause."""
    where = urlparse(url)
    if where.scheme != "http" or where.port is None:
        raise ValueError(f"readiness endpoint {url!r}: expected http://HOST:PORT/PATH")
    path = where.path or "/readyz"
    cached = _CachedCheck(check)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?")[0] != path:
                self._answer(404, "not found")
                return
            error = cached.error()
            if error is None:
                self._answer(200, "ok")
            else:
                self._answer(503, f"cannot reach the API server: {error}")

        def _answer(self, code: int, body: str) -> None:
            data = (body + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:  # probes every few seconds would flood the log
            pass

    server = ThreadingHTTPServer((where.hostname or "0.0.0.0", where.port), Handler)
    threading.Thread(target=server.serve_forever, name="dial-readiness", daemon=True).start()
    return server
