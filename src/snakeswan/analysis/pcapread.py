"""ISAKMP datagrams out of a pcap or pcapng capture, read with dpkt (a maintained reader).

Link types: Ethernet, raw IP (101, and the BSD 12/14), Linux cooked (SLL, SLL2), BSD loopback.
UDP to or from port 500 or 4500 is kept: on 4500 the non-ESP marker is stripped (RFC 3948 2.2),
ESP-in-UDP and NAT-T keepalives (0xff) are counted, not decoded. IPv4 and IPv6 fragments are
reassembled (:mod:`snakeswan.analysis.reassembly`: dpkt does not), so an IKE message with
certificates that IP fragmented is analysed like any other, numbered by the frame that completed
it; fragments that cannot be reassembled are counted by reason.
"""

from __future__ import annotations

import io
import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dpkt

from snakeswan.analysis.reassembly import Reassembler

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
    reassembled: int = 0  # IP datagrams put together from fragments


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
    """Every IKE datagram in the capture, in capture order (a fragmented one where it completed)."""
    out = CaptureContents()
    reader = _reader(data)
    linktype = reader.datalink()
    fragments = Reassembler()
    for number, (ts, buf) in enumerate(reader, 1):
        try:
            ip = _ip_of(linktype, buf)
        except (dpkt.dpkt.Error, IndexError, ValueError):
            out.skipped["undecodable frame"] += 1
            continue
        if isinstance(ip, dpkt.ip.IP):
            src, dst = str(ipaddress.IPv4Address(ip.src)), str(ipaddress.IPv4Address(ip.dst))
            fragment = (ip.offset * 8, bool(ip.mf), ip.id) if ip.mf or ip.offset else None
        elif isinstance(ip, dpkt.ip6.IP6):
            src, dst = str(ipaddress.IPv6Address(ip.src)), str(ipaddress.IPv6Address(ip.dst))
            ext = ip.extension_hdrs.get(dpkt.ip.IP_PROTO_FRAGMENT)
            fragment = (ext.frag_off * 8, bool(ext.m_flag), ext.id) if ext is not None else None
        else:
            out.skipped["not IP"] += 1
            continue
        upper = ip.data
        if fragment is not None:
            offset, more, ident = fragment
            done = fragments.add((src, dst, ip.p, ident), offset, more, bytes(upper), float(ts), number)
            if done is None:
                continue
            out.reassembled += 1
            upper = _upper(ip.p, done[0])
        if not isinstance(upper, dpkt.udp.UDP):
            out.skipped["ESP" if ip.p == 50 else "not UDP"] += 1
            continue
        _add_udp(out, number, float(ts), src, dst, upper)
    for reason, count in fragments.refused.items():
        out.skipped[f"IP fragments dropped: {reason}"] += count
    if fragments.incomplete():
        out.skipped["IP datagram never completed (fragments missing)"] += fragments.incomplete()
    return out


def _upper(proto: int, data: bytes) -> Any:
    if proto != dpkt.ip.IP_PROTO_UDP:
        return data
    try:
        return dpkt.udp.UDP(data)
    except dpkt.dpkt.Error:
        return data


def _add_udp(out: CaptureContents, number: int, ts: float, src: str, dst: str, udp: Any) -> None:
    if udp.sport not in IKE_PORTS and udp.dport not in IKE_PORTS:
        out.skipped["other UDP"] += 1
        return
    payload = bytes(udp.data)
    if 4500 in (udp.sport, udp.dport):
        if payload == b"\xff":
            out.skipped["NAT-T keepalive"] += 1
            return
        if payload[:4] != b"\0\0\0\0":
            out.skipped["ESP in UDP"] += 1
            return
        payload = payload[4:]
    out.datagrams.append(IkeDatagram(number, ts, (src, udp.sport), (dst, udp.dport), payload))
