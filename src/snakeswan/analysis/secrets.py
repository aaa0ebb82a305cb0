"""Diffie-Hellman shared secrets for ``snakeswan analyze --dh-secrets``, and the phase 1 keys
they give.

A capture holds g^xi and g^xr but never g^xy; a gateway's debug log may (``snakeswan daemon
--explain-keys`` writes ``gxy=<hex>``; strongSwan at ``ike 4`` hex-dumps its "shared Diffie Hellman
secret"). Given g^xy, SKEYID follows from the nonces (signatures: prf(Ni_b | Nr_b, g^xy)) or from
the nonces and the PSK (prf(PSK, Ni_b | Nr_b)), then SKEYID_d/a/e and the encryption key
(RFC 2409 section 5, appendix B): every encrypted message and every Quick Mode, Informational and
Transaction HASH can then be checked. Secrets are matched to IKE SAs by trial: the one whose key
decrypts the SA's first encrypted message into well-formed payloads (and, with a PSK, whose
HASH_I matches) is the SA's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from snakeswan.crypto import keymat
from snakeswan.crypto.algorithms import HashAlg
from snakeswan.crypto.keymat import Phase1Keys

__all__ = ["DerivedKeys", "derive", "parse_dh_secrets"]

_MIN_SECRET = 16  # bytes: shorter hex is a cookie, an SPI or noise, not a DH secret
_GXY = re.compile(r"\bgxy=(?:0x)?([0-9a-fA-F]+)")
_DUMP_START = re.compile(r"shared Diffie.Hellman secret", re.IGNORECASE)
_DUMP_LINE = re.compile(r"^\s*(?:\S+\s+)*?\d+:\s+((?:[0-9A-Fa-f]{2}\s){1,16})")
_HEX_LINE = re.compile(r"^\s*(?:0x)?([0-9a-fA-F:\s]+)\s*$")


def parse_dh_secrets(text: str) -> list[bytes]:
    """Every g^xy in ``text``: lines of hex (spaces and colons allowed), ``gxy=<hex>`` fields of our
    own key log records, and strongSwan's hex dumps under "shared Diffie Hellman secret"."""
    found: list[bytes] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        m = _GXY.search(line)
        if m:
            found.append(bytes.fromhex(m.group(1) if len(m.group(1)) % 2 == 0 else "0" + m.group(1)))
            continue
        if _DUMP_START.search(line):
            dump = bytearray()
            while i < len(lines) and (d := _DUMP_LINE.match(lines[i])):
                dump += bytes.fromhex(d.group(1).replace(" ", ""))
                i += 1
            if dump:
                found.append(bytes(dump))
            continue
        h = _HEX_LINE.match(line)
        if h:
            digits = re.sub(r"[:\s]", "", h.group(1))
            if len(digits) % 2 == 0 and len(digits) >= 2 * _MIN_SECRET:
                found.append(bytes.fromhex(digits))
    out: list[bytes] = []
    for s in found:  # keep the order, drop repeats and short values
        if len(s) >= _MIN_SECRET and s not in out:
            out.append(s)
    return out


@dataclass(frozen=True, repr=False)
class DerivedKeys:
    """Phase 1 keys derived from a g^xy (the repr hides them)."""

    gxy: bytes
    keys: Phase1Keys
    enc_key: bytes


def derive(
    h: HashAlg,
    gxy: bytes,
    psk: bytes | None,
    ni_b: bytes,
    nr_b: bytes,
    cky_i: bytes,
    cky_r: bytes,
    key_size: int,
) -> DerivedKeys:
    """SKEYID (with the PSK if given, else as for signatures), its three children and the
    encryption key."""
    if psk is not None:
        skeyid = keymat.skeyid_psk(h, psk, ni_b, nr_b)
    else:
        skeyid = keymat.skeyid_sig(h, ni_b, nr_b, gxy)
    keys = keymat.derive_phase1(h, skeyid, gxy, cky_i, cky_r)
    return DerivedKeys(gxy, keys, keymat.encryption_key(h, keys.skeyid_e, key_size))
