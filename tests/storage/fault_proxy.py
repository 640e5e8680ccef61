"""A test-only HTTP proxy in front of moto's server that injects the faults S3 really shows.

boto3 is pointed at it with ``endpoint_url``. On a seeded share of requests it answers for
S3 instead of forwarding (503 ``SlowDown``, 500 ``InternalError``), cuts the connection
after moto has answered (the request took effect, the answer is lost), or sends the
headers with the full ``Content-Length`` and then only half of the body (a connection cut
in the middle of a download). :meth:`FaultProxy.plan` queues exact faults for the next
requests instead, for tests that need one fault at one place.
"""

from __future__ import annotations

import collections
import http.client
import random
import socket
import struct
import threading
import urllib.parse
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

Fault = Literal["throttle", "error500", "reset", "truncate"]
FAULTS: tuple[Fault, ...] = ("throttle", "error500", "reset", "truncate")
_ERRORS: dict[str, tuple[int, str, str]] = {
    "throttle": (503, "SlowDown", "Please reduce your request rate."),
    "error500": (500, "InternalError", "We encountered an internal error. Please try again."),
}
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class FaultProxy:
    """Forward HTTP requests to ``upstream``, injecting faults on a share of them.

    Args:
        upstream: moto's server, ``http://127.0.0.1:<port>``.
        shares: the probability of each fault per request (the rest pass untouched).
        seed: the random stream that picks the faulted requests.
    """

    def __init__(
        self, upstream: str, *, shares: Mapping[Fault, float] | None = None, seed: int = 0
    ) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.shares: dict[Fault, float] = dict(shares or {})
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._rng = random.Random(seed)
        self._planned: collections.deque[tuple[Fault, str | None, str]] = collections.deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's endpoint URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def plan(self, *faults: Fault, method: str | None = None, path: str = "") -> None:
        """Apply ``faults`` to the next requests, in order: of ``method`` only, when given,
        and to a path containing ``path`` (one object's key) only, when given."""
        with self._lock:
            self._planned.extend((fault, method, path) for fault in faults)

    def clear(self) -> None:
        """Drop the planned faults no request has taken yet."""
        with self._lock:
            self._planned.clear()

    def choose(self, method: str, path: str = "") -> Fault | None:
        """The fault for the next request: the first planned one that fits it, else a draw."""
        with self._lock:
            self.requests += 1
            for i, (fault, only, needle) in enumerate(self._planned):
                if only in (None, method) and needle in path:
                    del self._planned[i]
                    return fault
            draw = self._rng.random()
            for name in FAULTS:
                draw -= self.shares.get(name, 0.0)
                if draw < 0:
                    return name
            return None

    def count(self, fault: Fault) -> None:
        """Record a fault that was applied (a truncation needs a body to cut)."""
        with self._lock:
            self.injected[fault] += 1


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as boto3 uses it

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test output is the place for failures, not for every request."""

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _serve(self) -> None:
            body = self._body()
            fault = proxy.choose(self.command, self.path)
            if fault == "truncate" and self.command == "HEAD":
                fault = None
            if fault is not None and fault != "truncate":
                proxy.count(fault)
            if fault in _ERRORS:
                status, code, message = _ERRORS[fault]
                xml = (
                    f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                    f"<Message>{message}</Message><RequestId>fault</RequestId></Error>"
                ).encode()
                self._answer(status, [("Content-Type", "application/xml")], xml)
                return
            status, headers, payload = self._forward(body)
            if fault == "reset":
                self._reset()
            elif fault == "truncate" and len(payload) > 1:
                proxy.count(fault)
                self._answer(status, headers, payload, cut=len(payload) // 2)
            else:
                self._answer(status, headers, payload)

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if self.command not in ("GET", "HEAD") or body:
                    headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
                if self.command == "HEAD":
                    length = resp.getheader("Content-Length")
                    if length is not None:
                        kept.append(("Content-Length", length))
                return resp.status, kept, payload
            finally:
                conn.close()

        def _answer(
            self,
            status: int,
            headers: list[tuple[str, str]],
            payload: bytes,
            *,
            cut: int | None = None,
        ) -> None:
            self.send_response_only(status)
            for key, value in headers:
                self.send_header(key, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload if cut is None else payload[:cut])
            else:
                self.end_headers()
            self.wfile.flush()
            if cut is not None:  # a clean close: the client gets the half it was sent
                self.close_connection = True

        def _reset(self) -> None:
            """Drop the connection with a TCP reset (SO_LINGER 0), as a broken network does."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

    return Handler
