"""The engine's ISAKMP SAs and every index it looks them up by, each a dict (issue 15: nothing on
a per-datagram or per-timer path walks all SAs):

- by unique id; by cookies (``(icookie, rcookie)``, and ``(icookie, 0)`` while an initiator waits
  for the responder's cookie); half-open responder SAs by ``(icookie, peer address)`` (an MM1/AM1
  retransmission finds its SA);
- by connection name (``initiate`` reuses an SA, a Delete finds the renewed successor);
- by identity pair once phase 1 authenticated them (INITIAL-CONTACT received, ``unique``);
- by the peer's address, whatever the state (INITIAL-CONTACT is sent only when none exists);
- IPsec SAs by "sibling key" ``(connection, child, local_ts, remote_ts)``: a rekey and its
  predecessor share it, two remote-access clients of one child do not.

The engine tells the table what happened (:meth:`add`, :meth:`learn_rcookie`, :meth:`index`,
:meth:`remove`); :meth:`index` is idempotent and cheap, called after every step on an SA.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from snakeswan.ike.events import Address, ChildSaInfo
from snakeswan.ike.sa import IkeSa, IkeState

ZERO = bytes(8)
_K = TypeVar("_K")
SiblingKey = tuple[str, str, str, str]


def sibling_key(c: ChildSaInfo) -> SiblingKey:
    return c.conn, c.child, c.local_ts, c.remote_ts


_ZERO = bytes(8)


class SaTable:
    def __init__(self) -> None:
        self._next_id = 1
        self.by_id: dict[int, IkeSa] = {}
        self._by_cookies: dict[tuple[bytes, bytes], IkeSa] = {}
        self._half_open: dict[tuple[bytes, Address], IkeSa] = {}
        self._half_open_key: dict[int, tuple[bytes, Address]] = {}
        self._by_conn: dict[str, dict[int, IkeSa]] = {}
        self._by_ids: dict[tuple[str, str], dict[int, IkeSa]] = {}
        self._by_peer: dict[str, dict[int, IkeSa]] = {}
        self._peer_of: dict[int, str] = {}
        self._indexed: dict[int, tuple[str | None, tuple[str, str] | None]] = {}
        self._siblings: dict[SiblingKey, set[int]] = {}
        self._sibling_of: dict[int, SiblingKey] = {}
        # responder SAs whose peer has not yet answered our first message (no MM3/AM3), oldest first
        self.half_open: dict[int, IkeSa] = {}
        self._half_open_by_ip: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.by_id)

    def __iter__(self) -> Iterator[IkeSa]:
        return iter(self.by_id.values())

    def get(self, sa_id: int) -> IkeSa | None:
        return self.by_id.get(sa_id)

    # ---- what the engine tells the table ------------------------------------------------------

    def new(self, initiator: bool, icookie: bytes, local: Address, remote: Address) -> IkeSa:
        sa = IkeSa(self._next_id, initiator, icookie, local, remote)
        self._next_id += 1
        self.by_id[sa.unique_id] = sa
        return sa

    def add_initiator(self, sa: IkeSa) -> None:
        """Our new SA, waiting for the responder's cookie."""
        self._by_cookies[(sa.icookie, ZERO)] = sa

    def add_responder(self, sa: IkeSa, src: Address) -> None:
        self._by_cookies[sa.cookies] = sa
        key = (sa.icookie, src)
        self._half_open[key] = sa
        self._half_open_key[sa.unique_id] = key
        self.half_open[sa.unique_id] = sa
        self._half_open_by_ip[src[0]] = self._half_open_by_ip.get(src[0], 0) + 1

    def settle(self, sa: IkeSa) -> None:
        """The peer answered from its address (MM3/AM3): no longer half-open."""
        if self.half_open.pop(sa.unique_id, None) is not None:
            ip = self._half_open_key[sa.unique_id][1][0]
            left = self._half_open_by_ip[ip] - 1
            if left:
                self._half_open_by_ip[ip] = left
            else:
                del self._half_open_by_ip[ip]

    def half_open_from(self, ip: str) -> int:
        return self._half_open_by_ip.get(ip, 0)

    def oldest_half_open(self) -> IkeSa | None:
        return next(iter(self.half_open.values()), None)

    def learn_rcookie(self, sa: IkeSa) -> None:
        """The responder's first answer was accepted: look the SA up by both cookies from now on."""
        self._by_cookies.pop((sa.icookie, ZERO), None)
        self._by_cookies[sa.cookies] = sa

    def index(self, sa: IkeSa) -> None:
        """Bring the connection and identity indexes and the IPsec SA siblings up to date."""
        conn = sa.conn.name if sa.conn is not None else None
        ids = (
            (str(sa.local_id), str(sa.remote_id))
            if sa.state is IkeState.ESTABLISHED and sa.local_id is not None and sa.remote_id is not None
            else None
        )
        peer = sa.remote[0]
        if self._peer_of.get(sa.unique_id) != peer:
            old = self._peer_of.get(sa.unique_id)
            if old is not None:
                _discard(self._by_peer, old, sa.unique_id)
            self._by_peer.setdefault(peer, {})[sa.unique_id] = sa
            self._peer_of[sa.unique_id] = peer
        if self._indexed.get(sa.unique_id) != (conn, ids):
            self._unindex(sa)
            if conn is not None:
                self._by_conn.setdefault(conn, {})[sa.unique_id] = sa
            if ids is not None:
                self._by_ids.setdefault(ids, {})[sa.unique_id] = sa
            self._indexed[sa.unique_id] = (conn, ids)
        for c in sa.children:
            if c.spi_in not in self._sibling_of:
                key = sibling_key(c)
                self._sibling_of[c.spi_in] = key
                self._siblings.setdefault(key, set()).add(c.spi_in)

    def child_gone(self, spi_in: int) -> None:
        key = self._sibling_of.pop(spi_in, None)
        if key is not None:
            spis = self._siblings[key]
            spis.discard(spi_in)
            if not spis:
                del self._siblings[key]

    def remove(self, sa: IkeSa) -> None:
        self.settle(sa)
        self.by_id.pop(sa.unique_id, None)
        for key in ((sa.icookie, sa.rcookie), (sa.icookie, ZERO)):
            if self._by_cookies.get(key) is sa:
                del self._by_cookies[key]
        half = self._half_open_key.pop(sa.unique_id, None)
        if half is not None and self._half_open.get(half) is sa:
            del self._half_open[half]
        self._unindex(sa)
        self._indexed.pop(sa.unique_id, None)
        peer = self._peer_of.pop(sa.unique_id, None)
        if peer is not None:
            _discard(self._by_peer, peer, sa.unique_id)

    def _unindex(self, sa: IkeSa) -> None:
        conn, ids = self._indexed.get(sa.unique_id, (None, None))
        if conn is not None:
            _discard(self._by_conn, conn, sa.unique_id)
        if ids is not None:
            _discard(self._by_ids, ids, sa.unique_id)

    # ---- lookups --------------------------------------------------------------------------------

    def by_cookies(self, icookie: bytes, rcookie: bytes) -> IkeSa | None:
        return self._by_cookies.get((icookie, rcookie))

    def lookup(self, icookie: bytes, rcookie: bytes, src: Address) -> IkeSa | None:
        """The SA a datagram with these cookies from ``src`` belongs to: by both cookies; a
        responder's half-open SA by the initiator's cookie and address; our own initiation by our
        cookie while the responder's first answer (with its cookie) is not yet accepted."""
        sa = self.by_cookies(icookie, rcookie)
        if sa is not None:
            return sa
        if rcookie == _ZERO:
            return self.half_open_sa(icookie, src)
        pending = self.by_cookies(icookie, _ZERO)
        if pending is not None and pending.initiator and pending.rcookie == _ZERO:
            return pending  # the responder's first answer: its cookie is learnt once it is accepted
        return None

    def knows(self, icookie: bytes, rcookie: bytes) -> bool:
        """Whether :meth:`lookup` finds an SA for these cookies other than a half-open one."""
        if self.by_cookies(icookie, rcookie) is not None:
            return True
        pending = None if rcookie == _ZERO else self.by_cookies(icookie, _ZERO)
        return pending is not None and pending.initiator and pending.rcookie == _ZERO

    def half_open_sa(self, icookie: bytes, src: Address) -> IkeSa | None:
        """A responder SA by the initiator's cookie and address (a retransmitted MM1/AM1)."""
        return self._half_open.get((icookie, src))

    def of_conn(self, name: str) -> list[IkeSa]:
        return list(self._by_conn.get(name, {}).values())

    def with_ids(self, sa: IkeSa) -> list[IkeSa]:
        """The other live SAs between the same two identities as ``sa``."""
        ids = self._indexed.get(sa.unique_id, (None, None))[1]
        group = self._by_ids.get(ids) if ids is not None else None
        return [other for other in (group or {}).values() if other is not sa]

    def with_peer(self, ip: str) -> list[IkeSa]:
        """The SAs with the peer at ``ip`` (any connection, any state)."""
        return list(self._by_peer.get(ip, {}).values())

    def peer_sas(self, ip: str) -> Iterable[IkeSa]:
        """:meth:`with_peer` without the copy, for a look that stops early (INITIAL-CONTACT: one
        live SA is enough; a load generator has thousands to one gateway). Not to be held across
        changes to the table."""
        return self._by_peer.get(ip, {}).values()

    def has_sibling(self, c: ChildSaInfo) -> bool:
        """Another IPsec SA of the same child and selectors is up (a rekey's other half)."""
        return bool(self._siblings.get(sibling_key(c), set()) - {c.spi_in})


def _discard(index: dict[_K, dict[int, IkeSa]], key: _K, sa_id: int) -> None:
    group = index.get(key)
    if group is not None:
        group.pop(sa_id, None)
        if not group:
            del index[key]
