"""A small etcd v3 client over etcd's JSON gateway (HTTP/1.1 + JSON, stdlib only).

Why not a gRPC client: the PyPI ``etcd3`` package (0.12) is unmaintained and pins old ``grpcio``
and ``protobuf``; the asyncio clients are young or abandoned. etcd serves the same v3 API as JSON
on its client port (``/v3/kv/range``, ``/v3/kv/txn``, ``/v3/lease/grant``...: the grpc-gateway,
on by default since 3.4), so the few calls we need are a POST each, with keys and values in
base64 and 64-bit integers as decimal strings. No dependency, nothing to pin.

Several endpoints (the members of a cluster): a request goes to the current one; a connection
error, a timeout or an "unavailable" answer (no leader, the member is stopping) moves on to the
next member and retries there, round robin, until every member was tried once. Only then does the
call fail with :class:`EtcdUnavailable`. Retrying a write on another member after a timeout may
apply it twice: every write we make is idempotent (puts of whole values, deletes, a create-if-absent
whose retry sees our own key), so that is harmless.

One client is safe to share between threads (a lock around each request).
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from snakeswan.io.kvstore import StoreError

__all__ = ["EtcdClient", "EtcdError", "EtcdUnavailable", "KeyValue", "range_end"]

PAGE = 1000  # keys per range request when scanning a prefix
# gRPC codes meaning "this member cannot serve now, another one may" (Unavailable, DeadlineExceeded...)
_RETRY_CODES = {4, 14}


class EtcdError(StoreError):
    """etcd refused a request (the message holds its answer)."""


class EtcdUnavailable(EtcdError):
    """No member of the cluster answered (each endpoint and why in the message)."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    mod_revision: int
    lease: int


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def range_end(prefix: bytes) -> bytes:
    """The end of the key range holding every key that starts with ``prefix`` (etcd's convention)."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return b"\0"  # the empty prefix: every key


def put_op(key: bytes, value: bytes, lease: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = str(lease)
    return {"request_put": body}


def delete_op(key: bytes) -> dict[str, Any]:
    return {"request_delete_range": {"key": b64(key)}}


def range_op(key: bytes) -> dict[str, Any]:
    return {"request_range": {"key": b64(key)}}


def absent(key: bytes) -> dict[str, Any]:
    """A txn comparison: ``key`` does not exist (its create revision is 0)."""
    return {"key": b64(key), "result": "EQUAL", "target": "CREATE", "create_revision": "0"}


def value_is(key: bytes, value: bytes) -> dict[str, Any]:
    return {"key": b64(key), "result": "EQUAL", "target": "VALUE", "value": b64(value)}


class EtcdClient:
    """``EtcdClient(["http://10.231.9.1:2379", ...], timeout=1.0)``."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 1.0) -> None:
        if not endpoints:
            raise EtcdError("no etcd endpoints")
        self._targets = [_parse_endpoint(e) for e in endpoints]
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._current = 0
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self.failovers = 0  # times we moved to another member

    # ---- transport ----------------------------------------------------------------------------

    def call(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``/v3/<path>`` on the current member, failing over to the others."""
        data = json.dumps(body).encode()
        errors: list[str] = []
        with self._lock:
            for _ in range(len(self._targets)):
                try:
                    return self._post(path, data)
                except _Retry as e:
                    errors.append(f"{self.endpoints[self._current]}: {e}")
                    self._next_member()
        raise EtcdUnavailable(f"no etcd member answered /v3/{path}: " + "; ".join(errors))

    def _post(self, path: str, data: bytes) -> dict[str, Any]:
        if self._conn is None:
            host, port = self._targets[self._current]
            self._conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            self._conn.request("POST", f"/v3/{path}", data, {"Content-Type": "application/json"})
            resp = self._conn.getresponse()
            raw = resp.read()
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            self._drop_conn()
            raise _Retry(str(e) or type(e).__name__) from None
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            self._drop_conn()
            raise _Retry(f"HTTP {resp.status}: not JSON") from None
        if not isinstance(answer, dict):
            raise EtcdError(f"/v3/{path}: unexpected answer {raw[:200]!r}")
        if "error" in answer or resp.status != 200:
            code = answer.get("code")
            message = answer.get("message") or answer.get("error") or raw[:200].decode(errors="replace")
            if code in _RETRY_CODES or (resp.status >= 500 and code is None):
                self._drop_conn()
                raise _Retry(f"HTTP {resp.status}: {message}")
            raise EtcdError(f"/v3/{path}: {message} (code {code})")
        result = answer.get("result", answer)  # streaming endpoints (keepalive) wrap it
        return result if isinstance(result, dict) else {}

    def _next_member(self) -> None:
        self._current = (self._current + 1) % len(self._targets)
        self.failovers += 1

    def _drop_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop_conn()

    # ---- key/value ----------------------------------------------------------------------------

    def get(self, key: bytes) -> KeyValue | None:
        kvs = self.call("kv/range", {"key": b64(key)}).get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    def scan(self, prefix: bytes, page: int = PAGE) -> Iterator[KeyValue]:
        """Every key under ``prefix`` in key order, ``page`` keys per request, all at one revision."""
        start, end, revision = prefix, range_end(prefix), 0
        while True:
            body: dict[str, Any] = {"key": b64(start), "range_end": b64(end), "limit": str(page)}
            if revision:
                body["revision"] = str(revision)
            answer = self.call("kv/range", body)
            revision = revision or int(answer.get("header", {}).get("revision", 0))
            kvs = [_kv(k) for k in answer.get("kvs", [])]
            yield from kvs
            if not answer.get("more") or not kvs:
                return
            start = kvs[-1].key + b"\0"

    def txn(
        self,
        compare: Sequence[Mapping[str, Any]],
        success: Sequence[Mapping[str, Any]],
        failure: Sequence[Mapping[str, Any]] = (),
    ) -> tuple[bool, list[dict[str, Any]]]:
        """One transaction: (whether ``compare`` held, the responses of the branch that ran)."""
        answer = self.call(
            "kv/txn", {"compare": list(compare), "success": list(success), "failure": list(failure)}
        )
        return bool(answer.get("succeeded", False)), list(answer.get("responses", []))

    def delete_prefix(self, prefix: bytes) -> None:
        self.call("kv/deleterange", {"key": b64(prefix), "range_end": b64(range_end(prefix))})

    # ---- leases -------------------------------------------------------------------------------

    def lease_grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: (its ID, the TTL etcd granted: never below its minimum, about 1.5
        election timeouts)."""
        answer = self.call("lease/grant", {"TTL": str(ttl)})
        return int(answer["ID"]), int(answer.get("TTL", ttl))

    def lease_keepalive(self, lease: int) -> int:
        """Refresh ``lease``; its remaining TTL, 0 when it is gone (expired or revoked)."""
        return int(self.call("lease/keepalive", {"ID": str(lease)}).get("TTL", 0))

    def lease_revoke(self, lease: int) -> None:
        try:
            self.call("lease/revoke", {"ID": str(lease)})
        except EtcdError as e:
            if "not found" not in str(e):
                raise


class _Retry(Exception):
    """This member could not answer; try the next one."""


def _kv(obj: Mapping[str, Any]) -> KeyValue:
    return KeyValue(
        key=unb64(obj.get("key")),
        value=unb64(obj.get("value")),
        mod_revision=int(obj.get("mod_revision", 0)),
        lease=int(obj.get("lease", 0)),
    )


def _parse_endpoint(endpoint: str) -> tuple[str, int]:
    url = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if url.scheme != "http" or not url.hostname or url.path not in ("", "/"):
        raise EtcdError(f"bad etcd endpoint {endpoint!r}: expected http://HOST:PORT")
    return url.hostname, url.port or 2379
