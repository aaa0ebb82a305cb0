"""ISAKMP datagrams out of a pcap or pcapng capture, read with dpkt (a maintained reader).

Link types: Ethernet, raw IP (101, and the BSD 12/14), Linux cooked (SLL, SLL2), BSD loopback.
UDP to or from port 500 or 4500 is kept: on 4500 the non-ESP marker is stripped (RFC 3948 2.2),
ESP-in-UDP and NAT-T keepalives (0xff) are counted, not decoded. IP fragments are counted (a
fragmented IKE message cannot be analysed: dpkt does not reassemble).
"""

from __future__ import annotations

import io
import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dpkt

IKE_PORTS = (500, 4500)
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_RAW = (101, 12, 14)


class CaptureError(Exception):
    """The file is not a capture dpkt can read."""


@dataclass(frozen=True, slots=True)
class IkeDatagram:
    number: int  # frame number in the capture, from 1
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes  # the ISAKMP message (no non-ESP marker)


@dataclass
class CaptureContents:
    datagrams: list[IkeDatagram] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # what was seen and not decoded, by kind


def _ip_of(linktype: int, buf: bytes) -> Any:
    if linktype == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(buf).data
    if linktype in _RAW:
        return dpkt.ip.IP(buf) if buf[:1] and buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(buf).data
    if linktype == 276:
        return dpkt.sll2.SLL2(buf).data
    if linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
        return dpkt.loopback.Loopback(buf).data
    raise CaptureError(f"link type {linktype} is not supported")


def _reader(data: bytes) -> Any:
    f = io.BytesIO(data)
    try:
        return dpkt.pcapng.Reader(f) if data[:4] == _PCAPNG_MAGIC else dpkt.pcap.Reader(f)
    except (ValueError, dpkt.dpkt.Error) as e:
        raise CaptureError(f"not a pcap or pcapng capture: {e}") from None


def read_capture(data: bytes) -> CaptureContents:
    """Every IKE datagram in the capture, in capture order."""
    out = CaptureContents()
    reader = _reader(data)
    linktype = reader.datalink()
    for number, (ts, buf) in enumerate(reader, 1):
        try:
            ip = _ip_of(linktype, buf)
        except (dpkt.dpkt.Error, IndexError, ValueError):
            out.skipped["undecodable frame"] += 1
            continue
        if isinstance(ip, dpkt.ip.IP):
            if ip.mf or ip.offset:
                out.skipped["IP fragment"] += 1
                continue
            src, dst = str(ipaddress.IPv4Address(ip.src)), str(ipaddress.IPv4Address(ip.dst))
        elif isinstance(ip, dpkt.ip6.IP6):
            src, dst = str(ipaddress.IPv6Address(ip.src)), str(ipaddress.IPv6Address(ip.dst))
        else:
            out.skipped["not IP"] += 1
            continue
        udp = ip.data
        if not isinstance(udp, dpkt.udp.UDP):
            out.skipped["ESP" if getattr(ip, "p", getattr(ip, "nxt", 0)) == 50 else "not UDP"] += 1
            continue
        if udp.sport not in IKE_PORTS and udp.dport not in IKE_PORTS:
            out.skipped["other UDP"] += 1
            continue
        payload = bytes(udp.data)
        if 4500 in (udp.sport, udp.dport):
            if payload == b"\xff":
                out.skipped["NAT-T keepalive"] += 1
                continue
            if payload[:4] != b"\0\0\0\0":
                out.skipped["ESP in UDP"] += 1
                continue
            payload = payload[4:]
        out.datagrams.append(IkeDatagram(number, float(ts), (src, udp.sport), (dst, udp.dport), payload))
    return out
