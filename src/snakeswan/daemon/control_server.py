"""The daemon's end of the control socket: bounded, validated, streaming, many clients at once.

Each connection carries one request (:mod:`snakeswan.control.protocol`). What a client sends is
never trusted: a request line is read up to :data:`MAX_REQUEST` bytes within
:attr:`ControlServer.request_timeout` seconds, checked against the command's schema, and anything
wrong is answered with an error code and a message; a bug in a command is logged with its traceback
in the daemon's log and answered ``internal``. A client that goes away (closes without reading,
resets) costs its connection only; one that stops reading is dropped after
:attr:`ControlServer.write_timeout` seconds. Long lists are streamed one item per line, the event
loop getting a turn every :data:`ITEMS_PER_TURN` items, so ``list-sas`` with 50,000 SAs neither
builds one huge line nor stops the data plane while it is rendered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from snakeswan.control.protocol import MAX_REQUEST, Code, ProtocolError, encode, error
from snakeswan.control.schema import Request, parse_request
from snakeswan.errors import ConfigError, LocalError
from snakeswan.trace import Record

log = logging.getLogger("snakeswan.control")

ITEMS_PER_TURN = 64
BACKLOG = 4096  # connections the kernel queues before accept (capped by net.core.somaxconn)
DISCARD_LIMIT = 64 * 1024 * 1024  # bytes of an overlong request read (and dropped) before closing

Item = dict[str, Any]
Command = Callable[[str, dict[str, Any]], Any]
Capture = Callable[[], contextlib.AbstractContextManager[list[Item]]]
Waiting = Callable[[asyncio.StreamWriter, dict[str, Any]], Awaitable[None]]
History = Callable[[], Iterable[Record]]


class ControlServer:
    """Serves ``command`` (synchronous commands; a streamed list is returned as an iterator),
    ``up_waiting`` (``up`` with ``wait``) and the ``log`` stream (records given to :meth:`publish`).
    ``capture`` collects the records a synchronous command emits (``down`` with ``wait``)."""

    def __init__(
        self,
        path: str,
        command: Command,
        capture: Capture,
        up_waiting: Waiting,
        history: History = tuple,
        *,
        max_clients: int = 2048,
        request_timeout: float = 10.0,
        write_timeout: float = 30.0,
    ) -> None:
        self.path = path
        self._command = command
        self._capture = capture
        self._up_waiting = up_waiting
        self._history = history
        self.max_clients = max_clients
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.clients = 0
        self.refused = 0  # connections answered "busy"
        self._log_queues: set[asyncio.Queue[Item]] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._client, self.path, limit=MAX_REQUEST + 1, backlog=BACKLOG
        )
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    def publish(self, rec: Record) -> None:
        """A trace record for every ``log`` client (dropped for a client too far behind)."""
        if not self._log_queues:
            return
        item = _item(rec)
        for q in list(self._log_queues):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(item)

    # ---- one connection -----------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients += 1
        try:
            if self.clients > self.max_clients:
                self.refused += 1
                if self.refused == 1 or self.refused % 1000 == 0:
                    log.warning("control: %d clients at once, connection refused (%d so far)",
                                self.max_clients, self.refused)  # fmt: skip
                writer.write(error(Code.BUSY, f"the daemon serves {self.max_clients} clients at once; retry"))
                await self._drain(writer)
                return
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError):
            pass  # the client went away or stopped reading: nothing to answer
        except Exception:  # a bug here must cost one connection, never the daemon
            log.exception("control: connection failed")
        finally:
            self.clients -= 1
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(self._read_line(reader), self.request_timeout)
        except TimeoutError:
            writer.write(error(Code.TIMEOUT, f"no complete request within {self.request_timeout:g} s"))
            await self._drain(writer)
            return
        except ProtocolError as e:  # too long (the rest was read, so that the client sees this)
            writer.write(error(e.code, e.message))
            await self._drain(writer)
            return
        if not line.strip():
            return  # connected and closed (a liveness probe)
        try:
            req = parse_request(line)
        except ProtocolError as e:
            writer.write(error(e.code, e.message))
            await self._drain(writer)
            return
        await self._answer(req, writer)

    async def _read_line(self, reader: asyncio.StreamReader) -> bytes:
        buf = bytearray()
        while True:
            chunk = await reader.read(65536)
            end = chunk.find(b"\n")
            if end >= 0:
                chunk = chunk[:end]
            buf += chunk
            if len(buf) > MAX_REQUEST:
                if end < 0:
                    await _discard(reader)
                raise ProtocolError(Code.LINE_TOO_LONG, f"request line longer than {MAX_REQUEST} bytes")
            if end >= 0 or not chunk:
                return bytes(buf)

    async def _answer(self, req: Request, writer: asyncio.StreamWriter) -> None:
        try:
            if req.command == "log":
                await self._stream_log(writer, history=bool(req.args.get("history")))
                return
            if req.command == "up" and req.args.get("wait"):
                await self._up_waiting(writer, req.args)
                return
            with self._capture() as lines:
                result = self._command(req.command, req.args)
            if req.args.get("wait"):  # e.g. down: what the command logged, then its result
                writer.writelines(encode(item) for item in lines)
            if isinstance(result, Iterator):
                if req.streamed:
                    await self._stream_items(writer, result)
                    return
                result = list(result)
            writer.write(encode({"ok": True, "result": result}))
        except ProtocolError as e:
            writer.write(error(e.code, e.message))
        except (LocalError, ConfigError) as e:
            writer.write(error(Code.FAILED, str(e)))
        except (ConnectionError, TimeoutError):
            raise
        except Exception as e:
            log.exception("control: %s failed", req.command)
            writer.write(
                error(
                    Code.INTERNAL, f"{req.command}: internal error ({type(e).__name__}); see the daemon's log"
                )
            )
        await self._drain(writer)

    async def _stream_items(self, writer: asyncio.StreamWriter, items: Iterable[Any]) -> None:
        count = 0
        for item in items:
            writer.write(encode({"ok": True, "item": item}))
            count += 1
            if count % ITEMS_PER_TURN == 0:
                await self._drain(writer)
                await asyncio.sleep(0)  # the UDP sockets, the TUN and the timers get their turn
        writer.write(encode({"ok": True, "items": count}))
        await self._drain(writer)

    async def _stream_log(self, writer: asyncio.StreamWriter, *, history: bool = False) -> None:
        """Each record as it comes; with ``history`` first the ones kept (then ``history_end``)."""
        q: asyncio.Queue[Item] = asyncio.Queue(maxsize=10000)
        self._log_queues.add(q)
        try:
            if history:
                kept = [
                    *map(_item, self._history()),
                    {"subsystem": "daemon", "event": "history_end", "text": "history_end"},
                ]
                for i, item in enumerate(kept, 1):
                    writer.write(encode({"ok": True, "record": item}))
                    if i % ITEMS_PER_TURN == 0:
                        await self._drain(writer)
            while True:
                item = await q.get()
                writer.write(encode({"ok": True, "record": item}))
                await self._drain(writer)
        finally:
            self._log_queues.discard(q)

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        await asyncio.wait_for(writer.drain(), self.write_timeout)


def _item(rec: Record) -> Item:
    return {"subsystem": rec.subsystem, "event": rec.event, "text": rec.render()}


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read what is left of an overlong request up to its newline (or EOF, or the limit)."""
    total = 0
    while total < DISCARD_LIMIT:
        chunk = await reader.read(65536)
        if not chunk or b"\n" in chunk:
            return
        total += len(chunk)


def raise_file_limit() -> None:
    """Lift the soft limit on open files to the hard one (systemd's default soft limit is 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
