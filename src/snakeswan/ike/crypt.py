"""Encrypting and decrypting ISAKMP message bodies (RFC 2408 3.5 / RFC 2409 appendix B).

The IV chain moves only when a message is sent, or after a received message has been verified
(DESIGN.md principle 11): :func:`open_message` returns the ciphertext so the caller can
:meth:`~snakeswan.crypto.ivchain.IvChain.confirm` it once HASH checked out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from snakeswan.errors import DecodeError
from snakeswan.ike.context import PayloadHook
from snakeswan.ike.sa import IkeSa, Phase1Crypto
from snakeswan.wire.enums import Flag
from snakeswan.wire.message import (
    HEADER_SIZE,
    Header,
    Message,
    decode_header,
    decode_message,
    decode_payloads,
    encode_datagram,
    encode_message,
    encode_payloads,
)
from snakeswan.wire.payloads import Payload


class GarbledBody(DecodeError):
    """A well-framed encrypted body decrypted to something that does not parse: wrong keys (in
    phase 1, most likely another pre-shared key) or a forged or corrupted message."""


def _crypto(sa: IkeSa) -> Phase1Crypto:
    if sa.crypto is None:
        raise DecodeError("encrypted message before keys exist", 19, "ISAKMP header")
    return sa.crypto


def build(
    sa: IkeSa,
    exchange: int,
    message_id: int,
    payloads: Sequence[Payload],
    *,
    encrypt: bool,
    iv: bytes | None = None,
    hook: PayloadHook | None = None,
    rehash: Callable[[list[Payload]], bytes] | None = None,
    flags: int = 0,
) -> bytes:
    """A datagram for ``sa``; encrypted bodies are zero-padded to the cipher block size. With
    ``iv`` the body is encrypted with that IV and the chain is not moved (the caller records it).
    ``hook`` (``Context.payload_hook``: impairments on purpose) may change the payloads first;
    ``rehash`` computes the value of a HASH at their head again over the ones after it.
    ``flags``: header flags besides E (the commit bit)."""
    if hook is not None:
        payloads = hook(sa.icookie, exchange, message_id, list(payloads), rehash)
    header = Header(
        sa.icookie, sa.rcookie, 0, exchange, flags | (Flag.ENCRYPTION if encrypt else 0), message_id
    )
    if not encrypt:
        return encode_message(header, payloads)
    c = _crypto(sa)
    first, body = encode_payloads(payloads)
    bs = c.cipher.block_size
    body += bytes(-len(body) % bs)
    ciphertext = c.cipher.encrypt(c.enc_key, iv or c.iv.iv_for(message_id), body)
    sa.protected_bytes += len(ciphertext)
    if iv is None:
        c.iv.confirm(message_id, ciphertext)
    h = Header(sa.icookie, sa.rcookie, first, exchange, flags | Flag.ENCRYPTION, message_id)
    return encode_datagram(h, ciphertext)


def open_message(sa: IkeSa, data: bytes) -> tuple[Message, bytes | None]:
    """Decode ``data``, decrypting it with ``sa``'s keys if its E flag is set.

    Returns the message and the ciphertext (None if it was plaintext). The IV is not moved.
    A plaintext message may carry padding after its last payload (Libreswan's ``ikepad``):
    accepted, counted in :attr:`Message.padding`.
    """
    header = decode_header(data)
    if not header.encrypted:
        return decode_message(data, allow_trailing=True), None
    c = _crypto(sa)
    ciphertext = data[HEADER_SIZE:]
    if not ciphertext or len(ciphertext) % c.cipher.block_size:
        raise DecodeError(
            f"encrypted body of {len(ciphertext)} bytes is not a multiple of the block size",
            HEADER_SIZE,
            "encrypted body",
        )
    sa.protected_bytes += len(ciphertext)
    candidates = c.iv.candidates(header.message_id)
    for i, (iv, base) in enumerate(candidates):
        plain = c.cipher.decrypt(c.enc_key, iv, ciphertext)
        try:
            payloads = decode_payloads(
                header.next_payload, plain, 0, allow_trailing=True, where="decrypted body"
            )
        except DecodeError as e:
            if i + 1 < len(candidates):
                continue  # another possible end of phase 1 (ivchain.py)
            raise GarbledBody(e.what, e.offset, e.where) from e
        if base is not None:
            c.iv.decrypted_with(header.message_id, base)
        return Message(header, payloads), ciphertext
    raise AssertionError("unreachable: there is always one candidate IV")


def decrypt_with(sa: IkeSa, data: bytes, iv: bytes) -> tuple[Message, bytes]:
    """A phase 1 message decrypted with a given IV (a second form of a final message that
    arrived after the exchange completed); raises DecodeError when it does not decode."""
    header = decode_header(data)
    c = _crypto(sa)
    ciphertext = data[HEADER_SIZE:]
    if not header.encrypted or not ciphertext or len(ciphertext) % c.cipher.block_size:
        raise DecodeError("not an encrypted body of whole blocks", HEADER_SIZE, "encrypted body")
    plain = c.cipher.decrypt(c.enc_key, iv, ciphertext)
    payloads = decode_payloads(header.next_payload, plain, 0, allow_trailing=True, where="decrypted body")
    return Message(header, payloads), ciphertext
