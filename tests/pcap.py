"""A tiny pcap writer for tests: IPv4/UDP datagrams in the classic libpcap format.

Frames use LINKTYPE_RAW (101): each record is a bare IPv4 packet. The IPv4 header checksum is
computed; the UDP checksum is left at 0 ("not computed", allowed over IPv4). When either port is
the NAT-T port 4500 the UDP payload is prefixed with the 4-byte non-ESP marker (RFC 3948 2.2),
as the driver does on the wire: the engine's datagrams never include it.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from pathlib import Path

LINKTYPE_RAW = 101
NAT_T_PORT = 4500
NON_ESP_MARKER = bytes(4)

Endpoint = tuple[str, int]
Packet = tuple[float, Endpoint, Endpoint, bytes]


def ipv4_checksum(header: bytes) -> int:
    """The one's complement of the one's complement sum of the header's 16-bit words (RFC 791)."""
    if len(header) % 2:
        header += b"\0"
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_payload(src_port: int, dst_port: int, payload: bytes) -> bytes:
    """The UDP payload as it goes on the wire: non-ESP marker first on the NAT-T port."""
    if NAT_T_PORT in (src_port, dst_port):
        return NON_ESP_MARKER + payload
    return payload


def ipv4_udp(src: Endpoint, dst: Endpoint, payload: bytes, ident: int = 0) -> bytes:
    """One IPv4 packet (no options, DF set, TTL 64) carrying one UDP datagram."""
    data = udp_payload(src[1], dst[1], payload)
    udp_len = 8 + len(data)
    total = 20 + udp_len
    if total > 0xFFFF:
        raise ValueError(f"datagram too long for IPv4: {total} bytes")
    udp = struct.pack("!HHHH", src[1], dst[1], udp_len, 0) + data
    s, d = ipaddress.IPv4Address(src[0]).packed, ipaddress.IPv4Address(dst[0]).packed
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, 17, 0, s, d)
    checksum = ipv4_checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + udp


def pcap_bytes(packets: Iterable[Packet], snaplen: int = 65535) -> bytes:
    """A whole pcap file (microsecond timestamps, little endian) holding ``packets`` in order."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, LINKTYPE_RAW)]
    for n, (ts, src, dst, payload) in enumerate(packets):
        frame = ipv4_udp(src, dst, payload, ident=n + 1)
        sec = int(ts)
        usec = round((ts - sec) * 1_000_000)
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        captured = frame[:snaplen]
        out.append(struct.pack("<IIII", sec, usec, len(captured), len(frame)) + captured)
    return b"".join(out)


def write_pcap(path: str | Path, packets: Iterable[Packet]) -> Path:
    """Write ``packets`` — (timestamp, (src ip, port), (dst ip, port), UDP payload) — to ``path``."""
    p = Path(path)
    p.write_bytes(pcap_bytes(packets))
    return p
