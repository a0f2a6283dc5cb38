"""A JSON-RPC proxy in front of the test anvil, for what a real node does that anvil will not do on cue.

It forwards every request unchanged, except that it can be switched ``down``
(connections are refused with HTTP 503: a node outage), can rewrite
replies (``rewrite``; used to imitate QBFT block headers) and can answer a
single request itself (``intercept``: returns the reply, or None to forward
it; used to imitate a contract refusing a call). It is a test double for the
network between us and a node, and says so where it is used.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class RpcProxy:
    def __init__(
        self,
        upstream: str,
        rewrite: Callable[[object], object] | None = None,
        intercept: Callable[[dict[str, object]], object | None] | None = None,
    ) -> None:
        self.upstream = upstream
        self.rewrite = rewrite
        self.intercept = intercept
        self.down = False
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.requests += 1
                if proxy.down:
                    self.send_error(503, "node down (test proxy)")
                    return
                if proxy.intercept is not None:
                    parsed = json.loads(body)
                    answer = proxy.intercept(parsed) if isinstance(parsed, dict) else None
                    if answer is not None:
                        self._reply(answer)
                        return
                request = urllib.request.Request(
                    proxy.upstream, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    payload = json.loads(response.read())
                if proxy.rewrite is not None:
                    payload = proxy.rewrite(payload)
                self._reply(payload)

            def _reply(self, payload: object) -> None:
                reply = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RpcProxy:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
