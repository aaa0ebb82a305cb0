"""The CBC IV state of one ISAKMP SA (RFC 2409 appendix B), verify-then-commit (DESIGN principle 11).

Phase 1 (message ID 0) is one chain: the first IV is hash(g^xi | g^xr) truncated, and each later
message uses the last ciphertext block of the message before it. Every later exchange (Quick Mode,
Informational, Transaction) has its own chain, keyed by message ID, starting from
hash(last phase 1 CBC output block | M-ID) and then chaining the same way.

:meth:`IvChain.iv_for` only looks; the state moves in :meth:`IvChain.confirm`, which the caller
invokes after a received message authenticated or after encrypting one to send. So a forged or
garbled message cannot desynchronise the chain. Like strongSwan's ``iv_manager.c`` (whose default
is 3), only a bounded number of non-zero message IDs is remembered, least recently confirmed
evicted first.
"""

from __future__ import annotations

from collections import OrderedDict

from snakeswan.crypto.algorithms import HashAlg
from snakeswan.crypto.keymat import phase2_iv
from snakeswan.errors import CryptoError

__all__ = ["IvChain"]


class IvChain:
    """Next IV per message ID for one ISAKMP SA."""

    def __init__(self, h: HashAlg, block_size: int, initial_iv: bytes, max_exchanges: int = 8) -> None:
        if block_size <= 0:
            raise CryptoError(f"block size {block_size} is not positive")
        if len(initial_iv) != block_size:
            raise CryptoError(f"initial IV is {len(initial_iv)} bytes, expected {block_size}")
        if max_exchanges < 1:
            raise CryptoError(f"max_exchanges {max_exchanges} is not positive")
        self._hash = h
        self._block_size = block_size
        self._max_exchanges = max_exchanges
        self._phase1_iv = initial_iv
        self._ivs: OrderedDict[int, bytes] = OrderedDict()  # least recently confirmed first
        # other candidates for the last phase 1 CBC block: when the last phase 1 message came in
        # two authenticated forms (a copy altered in its unauthenticated padding arrived first),
        # the peer's first phase 2 message tells which one it chained from
        self._alternatives: list[bytes] = []
        self._pending_base: dict[int, bytes] = {}  # message ID -> alternative it decrypted with
        # other IVs a later message of an exchange may come under (ike/qm_forms.py: the peer's
        # QM1 was seen in two forms, each answered; its QM3 follows one of them)
        # (IV, phase 1 base it implies, or None) per message ID
        self._mid_alternatives: dict[int, list[tuple[bytes, bytes | None]]] = {}

    @property
    def block_size(self) -> int:
        return self._block_size

    def iv_for(self, message_id: int) -> bytes:
        """The IV to encrypt or decrypt the next message of exchange ``message_id``; changes nothing."""
        if message_id == 0:
            return self._phase1_iv
        known = self._ivs.get(message_id)
        if known is not None:
            return known
        # IV = hash(last phase 1 CBC output block | M-ID), truncated; the current phase 1 IV *is*
        # that block once phase 1 is over.
        return phase2_iv(self._hash, self._phase1_iv, message_id, self._block_size)

    def add_phase1_alternative(self, last_block: bytes) -> None:
        """Another possible last phase 1 CBC block (at most 4 are kept, the newest last)."""
        if len(last_block) != self._block_size:
            raise CryptoError(f"block of {len(last_block)} bytes, expected {self._block_size}")
        if last_block != self._phase1_iv and last_block not in self._alternatives:
            self._alternatives = [*self._alternatives, last_block][-4:]

    def candidates(self, message_id: int) -> list[tuple[bytes, bytes | None]]:
        """IVs to try on a received message: (IV, None) for the chain's own, then (IV, base) for
        each alternative last phase 1 block (only for the first message of a phase 2 exchange)."""
        out: list[tuple[bytes, bytes | None]] = [(self.iv_for(message_id), None)]
        out += self._mid_alternatives.get(message_id, [])
        if message_id != 0 and message_id not in self._ivs:
            out += [
                (phase2_iv(self._hash, alt, message_id, self._block_size), alt) for alt in self._alternatives
            ]
        return out

    def add_alternative(self, message_id: int, iv: bytes, base: bytes | None = None) -> None:
        """Another IV the next message of exchange ``message_id`` may come under (at most 4);
        ``base``: the last phase 1 block that chain started from, adopted if the message comes."""
        if message_id == 0 or len(iv) != self._block_size:
            raise CryptoError(f"alternative IV for message ID {message_id} of {len(iv)} bytes")
        alts = self._mid_alternatives.setdefault(message_id, [])
        if all(iv != known for known, _ in alts):
            alts[:] = [*alts, (iv, base)][-4:]

    def decrypted_with(self, message_id: int, base: bytes) -> None:
        """A received message decrypted with the IV of alternative ``base``: when it is confirmed
        (it authenticated), ``base`` becomes the phase 1 chain's last block."""
        self._pending_base[message_id] = base

    def confirm(self, message_id: int, ciphertext: bytes) -> None:
        """Commit: the next IV of ``message_id`` is the last block of ``ciphertext``.

        ``ciphertext`` is the encrypted part of a message that authenticated (received) or was just
        encrypted (sent).
        """
        if not ciphertext or len(ciphertext) % self._block_size:
            raise CryptoError(
                f"ciphertext length {len(ciphertext)} is not a positive multiple of {self._block_size}"
            )
        last_block = ciphertext[-self._block_size :]  # next IV = last CBC output block
        if message_id == 0:
            self._phase1_iv = last_block
            return
        base = self._pending_base.pop(message_id, None)
        if base is not None:  # the peer chained from an alternative: it is the phase 1 block
            self._phase1_iv, self._alternatives = base, []
        self._ivs[message_id] = last_block
        self._mid_alternatives.pop(message_id, None)
        self._ivs.move_to_end(message_id)
        while len(self._ivs) > self._max_exchanges:
            evicted, _ = self._ivs.popitem(last=False)
            self._mid_alternatives.pop(evicted, None)

    def forget(self, message_id: int) -> None:
        """Drop the chain of a finished or abandoned exchange (no-op if unknown; phase 1 is kept)."""
        self._ivs.pop(message_id, None)
        self._pending_base.pop(message_id, None)
        self._mid_alternatives.pop(message_id, None)

    def known_message_ids(self) -> tuple[int, ...]:
        """Non-zero message IDs with a confirmed chain, least recently confirmed first."""
        return tuple(self._ivs)

    def __repr__(self) -> str:
        return f"IvChain(block_size={self._block_size}, exchanges={len(self._ivs)})"
