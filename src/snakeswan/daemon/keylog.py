"""Wireshark/tshark decryption table lines (written only with ``--keylog FILE``).

- IKEv1: ``<initiator cookie hex>,<encryption key hex>`` (the ``ikev1_decryption_table`` UAT, unquoted)
- ESP: the 8 quoted fields of the ``esp_sa`` UAT: protocol, source, destination, SPI, encryption
  algorithm, encryption key, authentication algorithm, authentication key.
"""

from __future__ import annotations

import ipaddress

from snakeswan.ike.events import ChildSaInfo, SaKeys
from snakeswan.wire.enums import AuthAlgorithm, EspTransformId, ProtocolId

_ENCRYPTION = {
    EspTransformId.NULL: "NULL",
    EspTransformId.DES: "DES-CBC [RFC2405]",
    EspTransformId.TRIPLE_DES: "TripleDES-CBC [RFC2451]",
    EspTransformId.AES_CBC: "AES-CBC [RFC3602]",
    EspTransformId.AES_CTR: "AES-CTR [RFC3686]",
    EspTransformId.AES_GCM_8: "AES-GCM with 8 octet ICV [RFC4106]",
    EspTransformId.AES_GCM_12: "AES-GCM with 12 octet ICV [RFC4106]",
    EspTransformId.AES_GCM_16: "AES-GCM with 16 octet ICV [RFC4106]",
}
_AUTH: dict[int | None, str] = {
    None: "NULL",
    AuthAlgorithm.HMAC_MD5: "HMAC-MD5-96 [RFC2403]",
    AuthAlgorithm.HMAC_SHA: "HMAC-SHA-1-96 [RFC2404]",
    AuthAlgorithm.HMAC_SHA2_256: "HMAC-SHA-256-128 [RFC4868]",
    AuthAlgorithm.HMAC_SHA2_384: "HMAC-SHA-384-192 [RFC4868]",
    AuthAlgorithm.HMAC_SHA2_512: "HMAC-SHA-512-256 [RFC4868]",
}


def ikev1_line(icookie: bytes, key: bytes) -> str:
    return f"{icookie.hex()},{key.hex()}"


def _line(src: str, dst: str, spi: int, c: ChildSaInfo, keys: SaKeys) -> str:
    family = "IPv6" if ipaddress.ip_address(src).version == 6 else "IPv4"
    enc = _ENCRYPTION.get(EspTransformId(c.transform_id), "NULL") if c.transform_id in _ENCRYPTION else "NULL"
    auth = _AUTH.get(c.auth, "NULL")
    auth_key = f"0x{keys.integrity.hex()}" if keys.integrity else ""
    enc_key = f"0x{keys.encryption.hex()}" if keys.encryption else ""
    fields = [family, src, dst, f"0x{spi:08x}", enc, enc_key, auth, auth_key]
    return ",".join(f'"{f}"' for f in fields)


def esp_lines(c: ChildSaInfo) -> list[str]:
    """Both directions of an ESP SA (none for AH, which tshark does not decrypt)."""
    if c.protocol != ProtocolId.IPSEC_ESP:
        return []
    return [
        _line(c.local[0], c.remote[0], c.spi_out, c, c.keys_out),
        _line(c.remote[0], c.local[0], c.spi_in, c, c.keys_in),
    ]
