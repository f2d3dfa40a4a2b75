"""The kubelet's ``/containerLogs`` endpoint (and ``/healthz``) over the agent's log files, so the
apiserver can proxy ``kubectl logs`` (``--follow``, ``--previous``, ``--tail``) to this node."""
from __future__ import annotations

import http.server
import os
import socketserver
import ssl
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING

from .common import log

if TYPE_CHECKING:
    from .agent import NodeAgent


def serve_kubelet(agent: NodeAgent) -> http.server.HTTPServer:
    """Serve the endpoint on ``agent.kubelet_port`` (TLS with ``agent.tls_cert``) in a thread."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet
            log.debug("kubelet http: " + fmt, *args)

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(u.query)
            parts = u.path.strip("/").split("/")
            if u.path == "/healthz":
                self._send(200, b"ok")
                return
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._send(404, b"not found")
                return
            _, ns, pod, container = parts
            previous = q.get("previous", ["false"])[0] == "true"
            path = os.path.join(agent.data_dir, "logs", ns, pod, f"{container}{'.previous' if previous else ''}.log")
            if not os.path.exists(path):
                self._send(404, f"container {container} of pod {ns}/{pod} has no log".encode())
                return
            with open(path, "rb") as f:
                data = f.read()
            if "tailLines" in q:
                n = int(q["tailLines"][0])
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-n:]) if n > 0 else b""
            if "limitBytes" in q:
                data = data[: int(q["limitBytes"][0])]
            follow = q.get("follow", ["false"])[0] == "true"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            if not follow:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if follow:
                self._follow(path, os.path.getsize(path), ns, pod, container)

        def _follow(self, path: str, pos: int, ns: str, pod: str, container: str) -> None:
            """Stream what the container writes until it exits (like the kubelet), not until its pod ends."""
            try:
                while not agent.stopping.is_set():
                    run = agent.container_run(ns, pod, container)
                    # Read after checking, so the last lines written before the exit still go out.
                    ended = run is None or "terminated" in run.state
                    with open(path, "rb") as f:
                        f.seek(pos)
                        chunk = f.read()
                    if chunk:
                        pos += len(chunk)
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    elif ended:
                        return
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _send(self, code: int, body: bytes):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("127.0.0.1", agent.kubelet_port), Handler)
    if agent.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(agent.tls_cert, agent.tls_key)
        if agent.client_ca:  # only the apiserver's kubelet client cert (signed by the cluster CA)
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(agent.client_ca)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True, name="kubelet-http").start()
    return srv
