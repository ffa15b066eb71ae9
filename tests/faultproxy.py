"""A loopback HTTP(S) proxy of the tests' own that injects faults on a schedule.

It forwards every request to a real node. Where a scheduled fault matches the
request, it responds with an error status, resets the connection, delays the
response until after the node applied the request, rejects some items of a bulk
request with 429, or rejects bodies over a size. It can also require an
Authorization header and terminate TLS with a certificate the test made.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# The proxies of the tests use ports from their own port up to this one.
LAST_PROXY_PORT = 9269
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass
class Fault:
    """One scheduled fault: what to do to the next ``times`` matching requests.

    kinds: ``status`` (respond with ``status`` without forwarding), ``reset``
    (close the connection with a TCP reset), ``delay`` (forward, then wait
    ``seconds`` before responding), ``reject_items`` (forward a bulk request
    without its first ``items`` items and respond with 429 for those).
    """

    kind: str
    path: str = ""
    method: str | None = None
    times: int = 1
    status: int = 429
    seconds: float = 0.0
    items: int = 1


@dataclass
class Seen:
    """One request as the proxy received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    fault: str | None = None


@dataclass
class ProxyState:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    required_authorization: str | None = None
    max_body_bytes: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times <= 0:
                    continue
                if fault.path and fault.path not in path:
                    continue
                if fault.method and fault.method != method:
                    continue
                fault.times -= 1
                return fault
        return None


def _bulk_pairs(body: bytes) -> list[tuple[bytes, bytes | None]]:
    """Split an update/index/delete bulk body into (action, source) pairs."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    pairs: list[tuple[bytes, bytes | None]] = []
    position = 0
    while position < len(lines):
        action = lines[position]
        kind = next(iter(json.loads(action)))
        if kind == "delete":
            pairs.append((action, None))
            position += 1
        else:
            pairs.append((action, lines[position + 1]))
            position += 2
    return pairs


def _rejected_item(action: bytes) -> dict[str, Any]:
    kind, meta = next(iter(json.loads(action).items()))
    return {
        kind: {
            "_index": meta.get("_index"),
            "_id": meta.get("_id"),
            "status": 429,
            "error": {
                "type": "rejected_execution_exception",
                "reason": "rejected by the test proxy",
            },
        }
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        fault = state.take_fault(self.command, self.path)
        with state.lock:
            state.seen.append(
                Seen(self.command, self.path, headers, body, fault and fault.kind)
            )

        required = state.required_authorization
        if required is not None and headers.get("authorization") != required:
            self._respond(401, {"error": "missing or wrong credentials"})
            return
        if state.max_body_bytes is not None and len(body) > state.max_body_bytes:
            self._respond(413, {"error": "request entity too large"})
            return

        if fault is not None and fault.kind == "status":
            reason = {"type": "injected", "reason": "status injected by the test proxy"}
            self._respond(fault.status, {"error": reason, "status": fault.status})
            return
        if fault is not None and fault.kind == "reset":
            linger = struct.pack("ii", 1, 0)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            self.close_connection = True
            self.connection.close()
            return
        if fault is not None and fault.kind == "reject_items":
            self._reject_items(body, headers, fault.items)
            return

        status, response_headers, payload = self._forward(body, headers, self.path)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        self._send(status, response_headers, payload)

    def _forward(
        self, body: bytes, headers: dict[str, str], path: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = urlsplit(self.server.state.upstream)
        connection = http.client.HTTPConnection(
            upstream.hostname, upstream.port, timeout=120
        )
        forwarded = {
            key: value
            for key, value in headers.items()
            if key not in _HOP_HEADERS and key not in ("host", "authorization")
        }
        try:
            connection.request(self.command, path, body=body or None, headers=forwarded)
            response = connection.getresponse()
            payload = response.read()
            kept = [
                (key, value)
                for key, value in response.getheaders()
                if key.lower() not in _HOP_HEADERS
            ]
            return response.status, kept, payload
        finally:
            connection.close()

    def _reject_items(self, body: bytes, headers: dict[str, str], count: int) -> None:
        pairs = _bulk_pairs(body)
        rejected, kept = pairs[:count], pairs[count:]
        items: list[dict[str, Any]] = [_rejected_item(action) for action, _ in rejected]
        if kept:
            lines = [line for pair in kept for line in pair if line is not None]
            forwarded = b"\n".join(lines) + b"\n"
            _, _, payload = self._forward(forwarded, headers, self.path)
            items += json.loads(payload)["items"]
        self._respond(200, {"took": 1, "errors": True, "items": items})

    def _respond(self, status: int, document: dict[str, Any]) -> None:
        payload = json.dumps(document).encode()
        self._send(status, [("Content-Type", "application/json")], payload)

    def _send(
        self, status: int, headers: list[tuple[str, str]], payload: bytes
    ) -> None:
        try:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:
            self.close_connection = True


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: ProxyState) -> None:
        super().__init__(address, _Handler)
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a reset connection or a client that timed out


def _bind_first_free(port: int, state: ProxyState) -> _ProxyServer:
    """Bind ``port``, or the next free one up to LAST_PROXY_PORT.

    Two test sessions on one machine then get a proxy each.
    """
    failure: OSError | None = None
    for candidate in range(port, max(port, LAST_PROXY_PORT) + 1):
        try:
            return _ProxyServer(("127.0.0.1", candidate), state)
        except OSError as error:
            failure = error
    raise failure or OSError(f"no free port in {port}-{LAST_PROXY_PORT}")


class FaultProxy:
    """A proxy on 127.0.0.1:``port`` in front of ``upstream``, in a thread."""

    def __init__(
        self,
        upstream: str,
        port: int,
        certificate: tuple[str, str] | None = None,
    ) -> None:
        self.state = ProxyState(upstream)
        self.server = _bind_first_free(port, self.state)
        self.scheme = "http"
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate)
            self.server.socket = context.wrap_socket(
                self.server.socket, server_side=True
            )
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, fault: Fault) -> Fault:
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def seen(self, path: str = "") -> list[Seen]:
        with self.state.lock:
            return [request for request in self.state.seen if path in request.path]
