"""SAs that survive the daemon (issue 14): the daemon's side of persistence.

The engine and the data plane export and import plain records (``ike/persist.py``,
``ipsec/checkpoint.py``); this module decides *when* and writes them through a
:class:`~snakeswan.io.kvstore.KvStore`:

- an ``ike/<cookies>`` record (sealed secrets) whenever an ISAKMP SA is established, renewed,
  gains or loses an IPsec SA (established, rekeyed, deleted), and its removal when the SA goes:
  the SAs touched are collected from the engine's events and written in one batch at the end of
  the loop iteration (:meth:`Persistence.flush`, called by the daemon's pump);
- a ``seq/<inbound SPI>`` checkpoint of each IPsec SA pair's counters every
  :data:`~snakeswan.ipsec.checkpoint.INTERVAL` seconds, when they moved;
- :meth:`Persistence.restore` (at start, or later on a running daemon: a standby taking over)
  rebuilds the SAs in the engine and installs their IPsec SAs in the data plane, the outbound
  sequence numbers jumped ahead and the replay windows closed below the checkpoint;
  :meth:`Persistence.write_all` writes everything now (to our store or another one).

:func:`open_state` opens the configured store and its sealing key. A missing state file is
created; a damaged one, or one of another version, is moved aside with one log line and the daemon
starts clean; records that cannot be used are counted, logged once and removed. Nothing here
raises into the daemon's loop: a store that fails to write is logged (once until it works again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from snakeswan.config.model import DaemonConfig
from snakeswan.crypto.seal import KEY_SIZE, NONCE_SIZE
from snakeswan.daemon.dataplane import DataPlane
from snakeswan.errors import LocalError
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    Event,
    IkeSaDeleted,
    IkeSaEstablished,
    VirtualIps,
    XauthResult,
)
from snakeswan.ike.persist import RestoredChild, export_sa, record_key, restore_sa
from snakeswan.ike.persist_codec import RecordError, decode_record, encode_record
from snakeswan.io.kvstore import KvStore, StoreError
from snakeswan.io.sqlite_store import SqliteKvStore
from snakeswan.ipsec import checkpoint
from snakeswan.ipsec.checkpoint import Checkpoint
from snakeswan.trace import Record

if TYPE_CHECKING:
    from snakeswan.daemon.daemon import Daemon

log = logging.getLogger("snakeswan.daemon.state")

# a peer's RESPONDER-LIFETIME lowered an ISAKMP SA's lifetime after it was established
REWRITE_ON = frozenset({"ike_lifetime_lowered"})
IKE_PREFIX = "ike/"
SEQ_PREFIX = "seq/"


def seq_key(spi_in: int) -> str:
    return f"{SEQ_PREFIX}{spi_in:08x}"


def _seq_record(cp: Checkpoint) -> bytes:
    """A counter checkpoint's record: nothing secret in it, so nothing sealed."""
    return encode_record("", {"kind": "seq", **cp.to_dict()}, b"", b"")


def state_path(config: DaemonConfig, control_path: str) -> str:
    return config.state_file or f"{control_path}.state"


def load_key(path: str, rng: Callable[[int], bytes] = os.urandom) -> bytes:
    """The sealing key in ``path`` (32 bytes, mode 0600), created on first start. A key file of
    another size is replaced (what it sealed cannot be opened any more: logged at restore)."""
    try:
        with open(path, "rb") as f:
            key = f.read()
        if len(key) == KEY_SIZE:
            return key
        log.warning("state key %s is %d bytes, expected %d: a new key replaces it", path, len(key), KEY_SIZE)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise LocalError(f"cannot read the state key {path}: {e.strerror}") from None
    key = rng(KEY_SIZE)
    tmp = f"{path}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    log.info("state key created: %s", path)
    return key


def open_state(config: DaemonConfig, control_path: str) -> tuple[KvStore, bytes, str] | None:
    """The configured store, its sealing key and its path; None with ``state = "none"``."""
    if config.state == "none":
        log.info('state persistence off ([daemon] state = "none"): SAs do not survive a restart')
        return None
    path = state_path(config, control_path)
    try:
        key = load_key(f"{path}.key")
    except OSError as e:
        raise LocalError(f"cannot create the state key {path}.key: {e.strerror}") from None
    try:
        return SqliteKvStore(path), key, path
    except StoreError as e:
        aside = f"{path}.unusable-{int(time.time())}"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(path + suffix, aside + suffix)
        log.warning("%s; moved aside to %s, starting without persisted SAs", e, aside)
    try:
        return SqliteKvStore(path), key, path
    except StoreError as e:
        raise LocalError(str(e)) from None


@dataclass
class Restored:
    ike_sas: int = 0
    children: int = 0
    unusable: int = 0
    first_problem: str = ""


class Persistence:
    def __init__(
        self,
        engine: Engine,
        dataplane: Callable[[], DataPlane | None],
        store: KvStore,
        seal_key: bytes,
        wall_offset: Callable[[], float],
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.engine = engine
        self._dataplane = dataplane
        self.store = store
        self._key = seal_key
        self._offset = wall_offset  # wall clock minus engine (loop) time, now
        self._rng = rng
        self._dirty: set[int] = set()  # IKE SA ids whose record must be rewritten (or deleted)
        self._written: dict[int, str] = {}  # IKE SA id -> its record key in the store
        self._gone_children: list[int] = []  # inbound SPIs whose checkpoint goes
        self._checkpoints: dict[int, Checkpoint] = {}  # inbound SPI -> last written
        self._failing = False
        self.since: dict[int, float] = {}  # inbound SPI -> engine time its SA was established
        self.writes = 0  # records put or deleted (bench/persistence.py)

    # ---- what happened: from the daemon's event loop ------------------------------------------

    def on_event(self, ev: Event) -> None:
        if isinstance(ev, IkeSaEstablished | IkeSaDeleted | VirtualIps | XauthResult):
            self._dirty.add(ev.ike_sa)
        elif isinstance(ev, ChildSaEstablished):
            self._dirty.add(ev.child.ike_sa)
        elif isinstance(ev, ChildSaDeleted):
            self._dirty.add(ev.ike_sa)
            self._gone_children.append(ev.spi_in)

    def on_record(self, rec: Record) -> None:
        """Trace records that change a persisted SA without an event of their own."""
        if rec.event in REWRITE_ON and isinstance(sa := rec.fields.get("sa"), int):
            self._dirty.add(sa)

    def flush(self) -> None:
        """Write the records of the SAs touched since the last flush, in one batch."""
        if not self._dirty and not self._gone_children:
            return
        offset = self._offset()
        puts: dict[str, bytes] = {}
        deletes: list[str] = []
        for sa_id in sorted(self._dirty):
            sa = self.engine.table.get(sa_id)
            rec = export_sa(self.engine, sa, offset) if sa is not None else None
            old = self._written.pop(sa_id, None)
            if sa is not None and rec is not None:
                key = record_key(sa)
                puts[key] = encode_record(key, rec, self._key, self._rng(NONCE_SIZE))
                self._written[sa_id] = key
                if old is not None and old != key:
                    deletes.append(old)
            elif old is not None:
                deletes.append(old)
        for spi in self._gone_children:
            if self._checkpoints.pop(spi, None) is not None:  # only a checkpoint written has a record
                deletes.append(seq_key(spi))
        self._dirty.clear()
        self._gone_children.clear()
        self._apply(puts, deletes)

    def checkpoint(self) -> int:
        """Write the counters of every IPsec SA pair that moved since its last checkpoint. This
        runs every second; it visits only the pairs that counted packets since (DataPlane.moved):
        an idle pair (the many of a hub) costs nothing. A pair that never moved has no record:
        restoring it jumps its sequence number from 0 (ipsec.checkpoint.resume)."""
        dp = self._dataplane()
        if dp is None:
            return 0
        puts: dict[str, bytes] = {}
        for spi_in in dp.moved():
            pair = dp.processor.pair(spi_in)
            if pair is None:
                continue
            prev = self._checkpoints.get(spi_in)
            if prev is not None and pair[1].seq == prev.seq_out and pair[0].replay.top == prev.replay_top:
                continue
            cp = checkpoint.take(pair[0], pair[1], prev)
            self._checkpoints[spi_in] = cp
            puts[seq_key(spi_in)] = _seq_record(cp)
        self._apply(puts, [])
        return len(puts)

    def _apply(self, puts: dict[str, bytes], deletes: list[str]) -> None:
        if not puts and not deletes:
            return
        try:
            self.store.apply(puts, deletes)
        except StoreError as e:
            if not self._failing:
                log.error("state store: %s (SAs changed now may not survive a restart)", e)
            self._failing = True
            return
        if self._failing:
            log.info("state store writable again")
        self._failing = False
        self.writes += len(puts) + len(deletes)

    # ---- restore and write-all ------------------------------------------------------------------

    def write_all(self, store: KvStore | None = None) -> int:
        """Every established SA and every counter checkpoint, now, to ``store`` (default ours)."""
        target = store or self.store
        offset = self._offset()
        puts: dict[str, bytes] = {}
        for sa in self.engine.ike_sas:
            rec = export_sa(self.engine, sa, offset)
            if rec is not None:
                key = record_key(sa)
                puts[key] = encode_record(key, rec, self._key, self._rng(NONCE_SIZE))
                if target is self.store:
                    self._written[sa.unique_id] = key
        dp = self._dataplane()
        for spi_in in list(dp.children) if dp is not None else []:
            pair = dp.processor.pair(spi_in)  # type: ignore[union-attr]
            if pair is not None:
                cp = checkpoint.take(pair[0], pair[1], self._checkpoints.get(spi_in))
                puts[seq_key(spi_in)] = _seq_record(cp)
        target.apply(puts, [])
        return len(puts)

    def restore(self, store: KvStore | None, now: float, *, prune: bool = True) -> Restored:
        """Rebuild every SA recorded in ``store`` (default ours) at engine time ``now``: in the
        engine, then its IPsec SAs in the data plane. SAs the engine has already are left alone.
        ``prune``: remove records that cannot be used (our own store at start). One log line per
        SA restored, one for all that could not be."""
        source = store or self.store
        offset = self._offset()
        result = Restored()
        try:
            seqs = dict(source.scan(SEQ_PREFIX))
            records = list(source.scan(IKE_PREFIX))
        except StoreError as e:
            log.warning("state store unreadable (%s): starting without persisted SAs", e)
            return result
        bad: list[str] = []
        used_seqs: set[str] = set()
        jumped: dict[str, bytes] = {}  # the new outbound sequence numbers, written before any packet
        known = {sa.unique_id for sa in self.engine.ike_sas}
        for key, data in records:
            try:
                rec = decode_record(key, data, self._key)
                sa, children = restore_sa(self.engine, rec, now, offset)
            except RecordError as e:
                bad.append(key)
                result.unusable += 1
                result.first_problem = result.first_problem or str(e)
                continue
            if sa.unique_id in known:
                continue  # already up in this engine
            self._written[sa.unique_id] = key
            if source is not self.store:
                self._dirty.add(sa.unique_id)
            result.ike_sas += 1
            self._vips(sa.unique_id)  # before the IPsec SAs: their routes follow the split networks
            for child in children:
                used_seqs.add(seq_key(child.info.spi_in))
                cp = self._install(child, seqs.get(seq_key(child.info.spi_in)), now)
                if cp is not None:
                    jumped[seq_key(child.info.spi_in)] = _seq_record(cp)
                result.children += 1
            self._log_restored(sa.unique_id, children)
        if result.unusable:
            log.warning(
                "state: %d persisted IKE SA record(s) could not be used and %s (first: %s)",
                result.unusable,
                "were removed" if prune else "were left",
                result.first_problem,
            )
        if prune:
            dp = self._dataplane()
            live = {seq_key(spi) for spi in dp.children} if dp is not None else set()
            orphans = [k for k in seqs if k not in used_seqs and k not in live]
            self._apply({}, [*bad, *orphans])
        self._apply(jumped, [])
        return result

    def _install(self, child: RestoredChild, seq_data: bytes | None, now: float) -> Checkpoint | None:
        info = child.info
        self.since[info.spi_in] = now - child.age
        dp = self._dataplane()
        if dp is None:
            return None
        cp: Checkpoint | None = None
        if seq_data is not None:
            try:
                cp = Checkpoint.from_dict(decode_record(seq_key(info.spi_in), seq_data, None))
            except (RecordError, TypeError, ValueError) as e:
                log.warning(
                    "state: checkpoint of %08x_i unusable (%s): sequence numbers jump from 0", info.spi_in, e
                )
        try:
            dp.child_up(info, now - child.age)
        except (LocalError, OSError) as e:
            log.error("restored IPsec SA %08x_i could not be installed: %s", info.spi_in, e)
            return None
        pair = dp.processor.pair(info.spi_in)
        if pair is None:
            return None
        seq = checkpoint.resume(pair[0], pair[1], cp)
        dp.resumed(info.spi_in, cp)  # with several workers, the pair's owner resumes it too
        # the jump is written at once: a second crash before the next checkpoint must not
        # start again from the old one (the packets sent since would be numbered twice)
        new = replace(
            checkpoint.take(pair[0], pair[1], None), sent_last_interval=cp.sent_last_interval if cp else 0
        )
        self._checkpoints[info.spi_in] = new
        log.info(
            "IPsec SA %s/%s restored: SPIs %08x_i %08x_o, outbound sequence number from %d%s",
            info.conn,
            info.child,
            info.spi_in,
            info.spi_out,
            seq,
            "" if cp is not None else " (no checkpoint)",
        )
        return new

    def _log_restored(self, sa_id: int, children: list[RestoredChild]) -> None:
        sa = self.engine.table.get(sa_id)
        if sa is None:
            return
        log.info(
            "IKE SA #%d %s restored: %s === %s, %d IPsec SA(s), no renegotiation",
            sa_id,
            sa.name,
            sa.local[0],
            sa.remote[0],
            len(children),
        )

    def _vips(self, sa_id: int) -> None:
        """A Mode Config client: its virtual IPs back on the TUN, with the split networks."""
        sa = self.engine.table.get(sa_id)
        dp = self._dataplane()
        ra = sa.remote_access if sa is not None else None
        if dp is not None and ra is not None and ra.client_cfg and ra.vips:
            try:
                split = tuple(str(n) for n in ra.modecfg.split_include) if ra.modecfg else ()
                dp.add_vips(sa_id, tuple(str(v) for v in ra.vips), split)
            except LocalError as e:
                log.error("restored virtual IP %s could not be put on the TUN: %s", ra.vips, e)

    def close(self) -> None:
        with contextlib.suppress(StoreError):
            self.store.close()


def start(daemon: Daemon) -> Persistence | None:
    """The daemon's persistence at start: open its store, restore what it holds (through
    :meth:`Daemon.restore`), then checkpoint the counters every interval. None: ``state = "none"``."""
    loop = daemon._loop
    assert loop is not None
    opened = open_state(daemon.config.daemon, daemon.control_path)
    if opened is None:
        return None
    store, key, path = opened
    persist = Persistence(
        daemon.engine, lambda: daemon.dataplane, store, key, lambda: time.time() - loop.time()
    )
    daemon.persist = persist
    r = daemon.restore(None)
    log.info("state file %s: %d IKE SA(s) and %d IPsec SA(s) restored", path, r.ike_sas, r.children)

    def tick() -> None:
        if daemon.persist is persist:
            persist.checkpoint()
            loop.call_later(checkpoint.INTERVAL, tick)

    loop.call_later(checkpoint.INTERVAL, tick)
    return persist
