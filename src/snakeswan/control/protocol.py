"""The control protocol between ``snakeswan`` commands and the daemon.

A Unix stream socket (default :data:`DEFAULT_SOCKET`). Each request and each response is one JSON
object on one line (UTF-8, ``\\n``-terminated):

    request:  {"command": "<name>", "args": {...}}
    response: {"ok": true, "result": <value>}   or   {"ok": false, "error": "<message>"}

Commands (``args`` in brackets):

- ``up`` [``conn``, optional ``child``]: initiate; result: ``{"ike_sa": <id>}``. With ``"wait": true``
  (and optional ``timeout`` in seconds, default 60) the answer is preceded by one
  ``{"ok": true, "record": {...}}`` line per trace record of that IKE SA and is sent once the
  outcome is known: ``{"ike_sa": <id>, "message": <text>}`` when every requested IPsec SA is
  established, else an error naming the reason (failed exchange, IKE SA deleted, SA refused by the
  data plane, timeout)
- ``down`` [``conn``, optional ``child``]: delete (sends Delete payloads); result: number of SAs
  deleted; with ``"wait": true`` preceded by the records the deletion emitted
- ``rekey`` [``conn``, optional ``child``]: rekey those IPsec SAs now (a new Quick Mode each, the
  old SA deleted after the overlap); result: number of IPsec SAs being rekeyed
- ``list-sas``: list of IKE SAs, each with its IPsec SAs (see :mod:`snakeswan.daemon.views`)
- ``list-conns``: configured connections
- ``list-pools``: virtual IP pools and their leases (identity, address, online)
- ``list-pols``: the data plane's policies in lookup order, its drop counters (``drops``, e.g.
  ``discard`` for drop policies), ``unrouted``, and the policy-routing table, mark and rules
- ``reload``: re-read the configuration file; result: names of the connections now loaded
- ``log``: the response is a stream: one ``{"ok": true, "record": {...}}`` line per trace record
  until the client closes the connection
- ``stop``: the daemon deletes its SAs and exits
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_SOCKET = "/run/snakeswan/control.sock"
COMMANDS = (
    "up",
    "down",
    "rekey",
    "list-sas",
    "list-conns",
    "list-pols",
    "list-pools",
    "reload",
    "log",
    "stop",
)
MAX_LINE = 1 << 20


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("control message must be a JSON object")
    return obj
