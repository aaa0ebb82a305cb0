"""io/ocsp.py: the HTTP POST of an OCSP request to a responder on 127.0.0.1 (a tiny server in a
thread), a responder that fails, one that is not there, and a URL of another scheme."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from snakeswan.io.ocsp import MAX_RESPONSE, fetch

SEEN: list[tuple[str, str, bytes]] = []


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        SEEN.append((self.path, self.headers["Content-Type"], body))
        if self.path == "/broken":
            self.send_error(500)
            return
        answer = b"x" * (MAX_RESPONSE + 1) if self.path == "/huge" else b"DER:" + body
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_post_and_fallback_to_the_next_responder(server: str) -> None:
    SEEN.clear()
    answer = fetch((f"{server}/broken", "ftp://127.0.0.1/", f"{server}/huge", f"{server}/ocsp"), b"REQ", 5)
    assert answer.response == b"DER:REQ" and answer.reason == f"OCSP responder {server}/ocsp"
    assert [(p, t) for p, t, _ in SEEN] == [
        ("/broken", "application/ocsp-request"),
        ("/huge", "application/ocsp-request"),
        ("/ocsp", "application/ocsp-request"),
    ]


def test_no_answer_says_why(server: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:  # bound, never listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        answer = fetch((f"{server}/broken", f"http://127.0.0.1:{port}/"), b"REQ", 2)
    assert answer.response is None
    assert answer.reason.startswith("no OCSP answer") and "HTTP 500" in answer.reason
    assert f"127.0.0.1:{port}/: " in answer.reason and "refused" in answer.reason.lower()
