"""The byte form of a persisted record (issue 14): versioned JSON, the secret part sealed.

A record is a JSON object (UTF-8, sorted keys) with ``"v"`` (the format version, :data:`VERSION`)
and ``"kind"`` (``"ike"``: an ISAKMP SA with its IPsec SAs; ``"seq"``: a data plane checkpoint).
Whatever is secret (SKEYID_*, the phase 1 key and IV, the IPsec SAs' keys) sits under
``"secret"`` in the plain record; in the bytes it is replaced by ``"sealed"``: the JSON of the secret
part sealed with AES-GCM (:mod:`snakeswan.crypto.seal`), the store key as associated data. So what
is not secret (who, where, which SPIs, which node) can be listed without the sealing key, and a
sealed part moved under another key does not open. No pickle: a record from another version or a
damaged one is refused with :class:`RecordError`, never executed.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from snakeswan.crypto.seal import NONCE_SIZE, seal, unseal
from snakeswan.errors import CryptoError, SnakeswanError

__all__ = ["VERSION", "RecordError", "decode_record", "encode_record"]

VERSION = 1
Record = dict[str, Any]


class RecordError(SnakeswanError):
    """A persisted record cannot be used: damaged, another format version, or it does not unseal."""


def encode_record(store_key: str, record: Record, seal_key: bytes, nonce: bytes) -> bytes:
    """``record`` as stored under ``store_key``; its ``"secret"`` part (if any) sealed with
    ``seal_key`` and the fresh ``nonce`` (:data:`~snakeswan.crypto.seal.NONCE_SIZE` random bytes)."""
    out = {k: v for k, v in record.items() if k != "secret"}
    out.setdefault("v", VERSION)
    if "secret" in record:
        if len(nonce) != NONCE_SIZE:
            raise RecordError(f"nonce of {len(nonce)} bytes, expected {NONCE_SIZE}")
        plain = json.dumps(record["secret"], sort_keys=True, separators=(",", ":")).encode()
        sealed = seal(seal_key, nonce, store_key.encode(), plain)
        out["sealed"] = base64.b64encode(sealed).decode("ascii")
    return json.dumps(out, sort_keys=True, separators=(",", ":")).encode()


def decode_record(store_key: str, data: bytes, seal_key: bytes | None) -> Record:
    """The record stored under ``store_key``, its secret part unsealed (``seal_key`` None: left
    sealed, ``"secret"`` absent). Raises :class:`RecordError` saying what is wrong."""
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{store_key}: not a JSON record ({e})") from None
    if not isinstance(record, dict):
        raise RecordError(f"{store_key}: not a JSON object")
    version = record.get("v")
    if version != VERSION:
        raise RecordError(f"{store_key}: record format version {version!r}, this version reads {VERSION}")
    sealed = record.pop("sealed", None)
    if sealed is not None and seal_key is not None:
        try:
            plain = unseal(seal_key, store_key.encode(), base64.b64decode(sealed, validate=True))
            record["secret"] = json.loads(plain)
        except (CryptoError, ValueError) as e:
            raise RecordError(f"{store_key}: secret part does not unseal ({e})") from None
    return record
