"""IKEv1 fragmentation, the Cisco/strongSwan vendor-ID style: a whole ISAKMP message (encrypted or
not) is cut into pieces, each sent behind its own ISAKMP header whose first payload is a FRAGMENT
payload (type 132: fragment ID, number from 1, flags with 1 = last), and put together again before
anything else looks at it.

Sending (:func:`split`, :class:`Fragmenter`): a message larger than ``[daemon] fragment_size``
(the whole IP datagram, as strongSwan's ``charon.fragment_size``) is fragmented when its connection
says ``fragmentation = "force"``, or ``"yes"`` and the peer announced the FRAGMENTATION vendor ID.
Each fragment keeps the message's header (cookies, exchange type, message ID, as Libreswan) with
the encryption flag cleared; a fresh fragment ID per message sent (a retransmission too).

Receiving (:class:`Reassembler`): fragments are unauthenticated, so what they may cost is bounded:
at most :data:`MAX_FRAGMENTS` per message and :data:`MAX_MESSAGE` bytes, one message under way per
(cookies, source), :data:`MAX_PER_SOURCE` per source address, :data:`MAX_PENDING` in all (the oldest
makes room), and :data:`TIMEOUT` seconds to complete. The message put together is then treated as
if it had come in one datagram (it authenticates or not like any other).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from snakeswan.errors import DecodeError
from snakeswan.ike.events import Address, Datagram
from snakeswan.ike.sa import IkeSa
from snakeswan.trace import Tracer
from snakeswan.wire.enums import PayloadType
from snakeswan.wire.message import HEADER_SIZE, decode_header, decode_message
from snakeswan.wire.payloads import FragmentPayload

MAX_FRAGMENTS = 16  # strongSwan's max_ikev1_fragments, Libreswan's limit
MAX_MESSAGE = 24_000  # bytes of one reassembled message
MAX_PENDING = 256  # messages under reassembly in all
MAX_PER_SOURCE = 4  # ... from one address
TIMEOUT = 30.0  # seconds to complete one message
FRAGMENT_OVERHEAD = HEADER_SIZE + 8  # ISAKMP header, fragment payload header
_FLAG_ENCRYPTION = 0x01


def data_per_fragment(fragment_size: int, ipv6: bool, natt: bool) -> int:
    """Message bytes one fragment carries within an IP datagram of ``fragment_size`` bytes: less
    the IP and UDP headers, the non-ESP marker on the NAT-T port and the fragment's own headers."""
    return fragment_size - (40 if ipv6 else 20) - 8 - (4 if natt else 0) - FRAGMENT_OVERHEAD


def split(data: bytes, size: int, fragment_id: int) -> list[bytes]:
    """``data`` (a whole ISAKMP message) as fragments carrying at most ``size`` bytes each."""
    if size <= 0:
        raise ValueError(f"fragment size {size} leaves no room for data")
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    if len(pieces) > MAX_FRAGMENTS:
        raise ValueError(f"{len(data)} bytes need {len(pieces)} fragments (at most {MAX_FRAGMENTS})")
    head = bytearray(data[:HEADER_SIZE])
    head[16] = PayloadType.FRAGMENT  # next payload
    head[19] &= ~_FLAG_ENCRYPTION & 0xFF  # the fragment itself is not encrypted
    out = []
    for number, piece in enumerate(pieces, 1):
        body = FragmentPayload(fragment_id, number, number == len(pieces), piece).encode_body()
        payload = bytes((0, 0)) + (4 + len(body)).to_bytes(2, "big") + body
        head[24:28] = (HEADER_SIZE + len(payload)).to_bytes(4, "big")
        out.append(bytes(head) + payload)
    return out


def _bad(what: str) -> DecodeError:
    return DecodeError(what, 0, "fragment")


class Fragmenter:
    """Cuts the engine's outgoing messages into fragments where the SA's connection wants it."""

    def __init__(
        self, fragment_size: int, nat_port: int, sa_of: Callable[[bytes, bytes], IkeSa | None]
    ) -> None:
        self.fragment_size = fragment_size
        self.nat_port = nat_port
        self._sa_of = sa_of

    def wanted(self, sa: IkeSa) -> bool:
        mode = sa.conn.fragmentation if sa.conn is not None else "no"
        return mode == "force" or (mode == "yes" and sa.peer_fragmentation)

    def outgoing(self, datagrams: list[Datagram], tracer: Tracer) -> list[Datagram]:
        out: list[Datagram] = []
        for d in datagrams:
            natt = self.nat_port in (d.src[1], d.dst[1])
            size = data_per_fragment(self.fragment_size, ":" in d.dst[0], natt)
            sa = self._sa_for(d) if len(d.data) > size + FRAGMENT_OVERHEAD else None  # fits: no lookup
            if sa is None or not self.wanted(sa):
                out.append(d)
                continue
            fid = sa.fragment_id = sa.fragment_id % 0xFFFF + 1
            try:
                pieces = split(d.data, size, fid)
            except ValueError as e:
                tracer.emit("ike", "fragmentation_skipped", sa=sa.unique_id, reason=str(e))
                out.append(d)
                continue
            tracer.emit("ike", "fragmented", sa=sa.unique_id, id=fid, count=len(pieces), size=len(d.data))
            out += [Datagram(p, d.src, d.dst) for p in pieces]
        return out

    def _sa_for(self, d: Datagram) -> IkeSa | None:
        if d.keepalive or len(d.data) < HEADER_SIZE:
            return None
        return self._sa_of(d.data[:8], d.data[8:16])


@dataclass
class _Partial:
    fragment_id: int
    started: float
    pieces: dict[int, bytes] = field(default_factory=dict)
    last: int | None = None
    size: int = 0


_Key = tuple[bytes, bytes, Address]


class Reassembler:
    """Fragments received, by (cookies, source), until their message is complete."""

    def __init__(self) -> None:
        self._partial: OrderedDict[_Key, _Partial] = OrderedDict()  # oldest first
        self._per_source: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._partial)

    def add(self, data: bytes, src: Address, now: float) -> bytes | None:
        """Take one fragment datagram: the whole message once complete, else None. A fragment that
        cannot be used raises DecodeError (the engine drops and traces it with the reason)."""
        self._expire(now)
        if len(data) > 19 and data[19] & _FLAG_ENCRYPTION:  # some set it on fragments: not ours to judge
            data = data[:19] + bytes((data[19] & ~_FLAG_ENCRYPTION,)) + data[20:]
        msg = decode_message(data)
        header = msg.header
        frags = msg.all(FragmentPayload)
        if len(frags) != 1 or len(msg.payloads) != 1:
            raise _bad("a fragment datagram holds exactly one FRAGMENT payload")
        frag = frags[0]
        if not 1 <= frag.number <= MAX_FRAGMENTS:
            raise _bad(f"number {frag.number} outside 1..{MAX_FRAGMENTS}")
        key = (header.icookie, header.rcookie, src)
        part = self._partial.get(key)
        if part is not None and frag.fragment_id != part.fragment_id:
            if frag.fragment_id < part.fragment_id and part.fragment_id - frag.fragment_id < 0x8000:
                raise _bad(f"old fragment ID {frag.fragment_id} (now {part.fragment_id})")
            self._drop(key)  # a newer message: what we had of the older one is dropped
            part = None
        if part is None:
            part = self._admit(key, frag.fragment_id, now)
        conflict = self._conflict(part, frag)
        if conflict is not None:
            # peers that number every message's fragments with one ID (Libreswan: 1) make a stale
            # piece of an earlier message look like this one's: the newer fragment wins
            self._drop(key)
            whole = self._store(key, self._admit(key, frag.fragment_id, now), frag)
            if whole is not None:
                return whole
            raise _bad(f"{conflict}: the earlier fragments of this message were dropped")
        return self._store(key, part, frag)

    @staticmethod
    def _conflict(part: _Partial, frag: FragmentPayload) -> str | None:
        if frag.number in part.pieces and part.pieces[frag.number] != frag.data:
            return f"number {frag.number} received twice with other data"
        if frag.last and frag.number not in part.pieces:
            if part.last is not None or any(n > frag.number for n in part.pieces):
                return "inconsistent last fragment"
        elif not frag.last and part.last is not None and frag.number > part.last:
            return f"number {frag.number} after the last ({part.last})"
        return None

    def _admit(self, key: _Key, fragment_id: int, now: float) -> _Partial:
        if self._per_source.get(key[2][0], 0) >= MAX_PER_SOURCE:
            raise _bad(f"{MAX_PER_SOURCE} messages under reassembly from this address")
        while len(self._partial) >= MAX_PENDING:
            self._drop(next(iter(self._partial)))
        part = self._partial[key] = _Partial(fragment_id, now)
        self._per_source[key[2][0]] = self._per_source.get(key[2][0], 0) + 1
        return part

    def _drop(self, key: _Key) -> None:
        del self._partial[key]
        left = self._per_source.pop(key[2][0]) - 1
        if left:
            self._per_source[key[2][0]] = left

    def _store(self, key: _Key, part: _Partial, frag: FragmentPayload) -> bytes | None:
        if frag.number in part.pieces:
            return None  # a duplicate
        if frag.last:
            part.last = frag.number
        if part.size + len(frag.data) > MAX_MESSAGE:
            self._drop(key)
            raise _bad(f"message larger than {MAX_MESSAGE} bytes")
        part.pieces[frag.number] = frag.data
        part.size += len(frag.data)
        if part.last is None or len(part.pieces) != part.last:
            return None
        self._drop(key)
        whole = b"".join(part.pieces[n] for n in range(1, part.last + 1))
        inner = decode_header(whole)
        if (inner.icookie, inner.rcookie) != key[:2]:
            raise _bad("reassembled message has other cookies than its fragments")
        if inner.next_payload == PayloadType.FRAGMENT:
            raise _bad("reassembled message is a fragment itself")
        return whole

    def _expire(self, now: float) -> None:
        while self._partial:
            key, part = next(iter(self._partial.items()))
            if part.started + TIMEOUT > now:
                return
            self._drop(key)
