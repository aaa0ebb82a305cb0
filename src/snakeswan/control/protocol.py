"""The control protocol between ``snakeswan`` commands and the daemon.

A Unix stream socket (default :data:`DEFAULT_SOCKET`). Each request and each response is one JSON
object on one line (UTF-8, ``\\n``-terminated). Version :data:`VERSION`:

    request:  {"version": 2, "command": "<name>", "args": {...}}
    response: {"version": 2, "ok": true, "result": <value>}
              {"version": 2, "ok": false, "code": "<error code>", "error": "<message>"}

A request without ``version`` is taken as version 1 (the same framing, no streamed lists); a newer
major version than the daemon's is refused (``unsupported-version``). Every answer carries the
daemon's version. The arguments of each command follow a schema (:mod:`snakeswan.control.schema`):
an unknown argument, a missing required one or a value of the wrong type is refused with
``bad-args`` and a message naming the argument; no request ever gets a traceback.

A request line is at most :data:`MAX_REQUEST` bytes (``line-too-long``); an answer line at most
:data:`MAX_RESPONSE`: lists that can grow with the number of SAs are *streamed*, one item per line

    {"version": 2, "ok": true, "item": {...}}  ...  {"version": 2, "ok": true, "items": <count>}

and the client checks that it got ``count`` items. Error codes (:class:`Code`): ``line-too-long``,
``bad-json``, ``bad-request`` (not an object, no command), ``unknown-command``, ``bad-args``,
``unsupported-version``, ``failed`` (the command was valid and failed: its message says why),
``timeout`` (no request, or no outcome, in time), ``busy`` (too many clients), ``internal`` (a bug:
the daemon logs it and keeps running).

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
- ``list-sas``: list of IKE SAs, each with its IPsec SAs (see :mod:`snakeswan.daemon.views`); streamed
- ``list-conns``: configured connections; streamed
- ``list-pools``: virtual IP pools and their leases (identity, address, online)
- ``list-pols``: the data plane's policies in lookup order, its drop counters (``drops``, e.g.
  ``discard`` for drop policies), ``unrouted``, and the policy-routing table, mark and rules
- ``reload``: re-read the configuration file; result: names of the connections now loaded
- ``log`` [optional ``history``]: the response is a stream: one ``{"ok": true, "record": {...}}``
  line per trace record until the client closes the connection; with ``"history": true`` the
  records the daemon kept come first, then a record with event ``history_end``
- ``stop``: the daemon deletes its SAs and exits
"""

from __future__ import annotations

import enum
import json
from typing import Any

DEFAULT_SOCKET = "/run/snakeswan/control.sock"
VERSION = 2
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
MAX_REQUEST = 64 * 1024  # a request is a command and a few names
MAX_RESPONSE = 16 * 1024 * 1024  # one answer line (a streamed list: one item)


class Code(enum.StrEnum):
    LINE_TOO_LONG = "line-too-long"
    BAD_JSON = "bad-json"
    BAD_REQUEST = "bad-request"
    UNKNOWN_COMMAND = "unknown-command"
    BAD_ARGS = "bad-args"
    UNSUPPORTED_VERSION = "unsupported-version"
    FAILED = "failed"
    TIMEOUT = "timeout"
    BUSY = "busy"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A request the daemon refuses: answered with ``code`` and ``message``."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps({"version": VERSION, **obj}, separators=(",", ":"), default=str).encode() + b"\n"


def error(code: Code, message: str) -> bytes:
    return encode({"ok": False, "code": str(code), "error": message})


def decode(line: bytes) -> dict[str, Any]:
    """One line as a JSON object, or :class:`ProtocolError` (``bad-json``/``bad-request``)."""
    try:
        obj = json.loads(line)
    except RecursionError:  # "[" * 100000: the decoder recurses once per level
        raise ProtocolError(Code.BAD_JSON, "JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(Code.BAD_JSON, f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(Code.BAD_REQUEST, "a control message must be a JSON object")
    return obj
