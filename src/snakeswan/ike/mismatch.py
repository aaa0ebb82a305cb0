"""Why a proposal or a proxy ID was refused, attribute by attribute (issue 12).

strongSwan logs the received and the configured proposals; Cisco's ``debug crypto isakmp`` walks
through each policy. Here each offered transform is set against each configured proposal, one
attribute at a time in the order a reader checks them (cipher, key length, hash, group, auth
method, lifetime for phase 1; protocol, transform, key length, integrity, PFS group, ESN,
encapsulation mode, lifetime for phase 2), and the first attribute that differs is marked. The
text goes into the ``PeerError`` the selection raises, so the trace record ``exchange_failed`` and
the ``NegotiationFailed`` event carry it to ``snakeswan log`` and the daemon's log.

Pure functions over parsed values: no state, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from snakeswan.config.model import ChildProposal, IkeProposal, TrafficSelector
from snakeswan.wire.enums import AhTransformId as _Ah
from snakeswan.wire.enums import (
    AuthAlgorithm,
    AuthMethod,
    DhGroup,
    EncapsulationMode,
    EspTransformId,
    IkeEncryption,
    IkeHash,
    ProtocolId,
    name_of,
)

FIRST = "first difference"


@dataclass(frozen=True, slots=True)
class Attr:
    """One attribute as offered and as configured; ``differs`` when they do not agree."""

    name: str
    offered: str
    configured: str
    differs: bool
    phrase: str = ""  # how to say the difference, when it is not "offered != configured"

    def difference(self) -> str:
        return self.phrase or f"{self.name} {self.offered} != {self.configured}"


def _bits(n: int | None) -> str:
    return "-" if n is None else str(n)


def _group(g: int | None) -> str:
    return "none" if g is None else name_of(DhGroup, g)


def render(attrs: Sequence[Attr], which: str) -> str:
    """``[cipher=AES_CBC key=128 ...]`` from the offered (``which="offered"``) or configured side."""
    return "[" + " ".join(f"{a.name}={getattr(a, which)}" for a in attrs) + "]"


def compare(attrs: Sequence[Attr]) -> str:
    """``first difference: key 128 != 256 (also hash SHA != SHA2_256)`` (or ``all ... agree``)."""
    diffs = [a.difference() for a in attrs if a.differs]
    if not diffs:
        return "all attributes agree"
    out = f"{FIRST}: {diffs[0]}"
    return out + (f" (also {', '.join(diffs[1:])})" if diffs[1:] else "")


# ---- phase 1 -----------------------------------------------------------------------------------


def ike_attrs(
    offered: IkeProposal,
    auth: int,
    seconds: int | None,
    kilobytes: int | None,
    ours: IkeProposal,
    auth_methods: Sequence[int],
    lifetime: int,
    our_kilobytes: int | None,
) -> list[Attr]:
    """The phase 1 attributes of one offered transform against one configured proposal."""

    def keylen(p: IkeProposal) -> int | None:
        return 128 if p.encryption == IkeEncryption.AES_CBC and p.key_length is None else p.key_length

    methods = "|".join(name_of(AuthMethod, m) for m in auth_methods)
    out = [
        Attr(
            "cipher",
            name_of(IkeEncryption, offered.encryption),
            name_of(IkeEncryption, ours.encryption),
            offered.encryption != ours.encryption,
        ),
        Attr("keylen", _bits(keylen(offered)), _bits(keylen(ours)), keylen(offered) != keylen(ours)),
        Attr("hash", name_of(IkeHash, offered.hash), name_of(IkeHash, ours.hash), offered.hash != ours.hash),
        Attr("group", _group(offered.group), _group(ours.group), offered.group != ours.group),
        Attr(
            "auth",
            name_of(AuthMethod, auth),
            methods,
            auth not in auth_methods,
            f"auth method {name_of(AuthMethod, auth)} not among ours ({methods})",
        ),
        Attr(
            "life",
            f"{seconds}s" if seconds is not None else "-",
            f"<={lifetime}s",
            seconds is not None and seconds > lifetime,
            f"lifetime {seconds}s longer than ours ({lifetime}s)",
        ),
    ]
    if kilobytes is not None or our_kilobytes is not None:
        out.append(
            Attr(
                "volume",
                f"{kilobytes}KiB" if kilobytes is not None else "-",
                f"<={our_kilobytes}KiB" if our_kilobytes is not None else "-",
                kilobytes is not None and our_kilobytes is not None and kilobytes > our_kilobytes,
                f"lifetime {kilobytes} KiB more than ours ({our_kilobytes} KiB)",
            )
        )
    return out


def explain_ike_transform(
    number: int,
    offered: IkeProposal,
    auth: int,
    seconds: int | None,
    kilobytes: int | None,
    ours: Sequence[IkeProposal],
    auth_methods: Sequence[int],
    lifetime: int,
    our_kilobytes: int | None,
) -> str:
    """``transform 1 [cipher=...]: vs ours 1 [...]: first difference: ...; vs ours 2 ...``."""
    parts: list[str] = []
    shown = ""
    for i, o in enumerate(ours, 1):
        attrs = ike_attrs(offered, auth, seconds, kilobytes, o, auth_methods, lifetime, our_kilobytes)
        shown = shown or render(attrs, "offered")
        parts.append(f"vs ours {i} {render(attrs, 'configured')}: {compare(attrs)}")
    if not parts:
        return f"transform {number}: no proposals configured"
    return f"transform {number} {shown}: " + " | ".join(parts)


# ---- phase 2 -----------------------------------------------------------------------------------


def _transform_name(protocol: int, tid: int) -> str:
    return name_of(_Ah, tid) if protocol == ProtocolId.IPSEC_AH else name_of(EspTransformId, tid)


def child_attrs(
    offered: ChildProposal,
    mode: int,
    seconds: int | None,
    ours: ChildProposal,
    modes: Sequence[int],
    our_seconds: int | None,
) -> list[Attr]:
    """The phase 2 attributes of one offered transform against one configured proposal. Lifetimes
    are lenient (a longer one is lowered), so they are shown but never a difference."""

    def auth(p: ChildProposal) -> str:
        return "none" if p.auth is None else name_of(AuthAlgorithm, p.auth)

    mode_names = "|".join(name_of(EncapsulationMode, m) for m in modes)
    return [
        Attr(
            "protocol",
            name_of(ProtocolId, offered.protocol),
            name_of(ProtocolId, ours.protocol),
            offered.protocol != ours.protocol,
        ),
        Attr(
            "transform",
            _transform_name(offered.protocol, offered.transform_id),
            _transform_name(ours.protocol, ours.transform_id),
            offered.transform_id != ours.transform_id,
        ),
        Attr(
            "keylen", _bits(offered.key_length), _bits(ours.key_length), offered.key_length != ours.key_length
        ),
        Attr("integrity", auth(offered), auth(ours), offered.auth != ours.auth),
        Attr(
            "pfs",
            _group(offered.pfs_group),
            _group(ours.pfs_group),
            offered.pfs_group != ours.pfs_group,
            f"PFS group {_group(offered.pfs_group)} != {_group(ours.pfs_group)}",
        ),
        Attr("esn", str(offered.esn).lower(), str(ours.esn).lower(), offered.esn != ours.esn),
        Attr(
            "encap",
            name_of(EncapsulationMode, mode),
            mode_names,
            mode not in modes,
            f"encapsulation mode {name_of(EncapsulationMode, mode)} not among ours ({mode_names})",
        ),
        Attr(
            "life",
            f"{seconds}s" if seconds is not None else "-",
            f"{our_seconds}s" if our_seconds is not None else "-",
            False,
        ),
    ]


def explain_child_transform(
    number: int,
    offered: ChildProposal,
    mode: int,
    seconds: int | None,
    ours: Sequence[ChildProposal],
    modes: Sequence[int],
    our_seconds: int | None,
) -> str:
    parts: list[str] = []
    shown = ""
    for i, o in enumerate(ours, 1):
        attrs = child_attrs(offered, mode, seconds, o, modes, our_seconds)
        shown = shown or render(attrs, "offered")
        parts.append(f"vs ours {i} {render(attrs, 'configured')}: {compare(attrs)}")
    if not parts:
        return f"transform {number}: no proposals configured"
    return f"transform {number} {shown}: " + " | ".join(parts)


# ---- proxy IDs ---------------------------------------------------------------------------------


ChildSelectors = tuple[str, Sequence[TrafficSelector], Sequence[TrafficSelector], bool, bool]
"""(child name, our remote_ts, our local_ts, peer's IDci inside remote_ts, IDcr inside local_ts)."""


def explain_selectors(
    their_ci: TrafficSelector, their_cr: TrafficSelector, children: Sequence[ChildSelectors]
) -> str:
    """Both sides' selectors: the peer's (IDci, IDcr) and, per child, our (remote_ts, local_ts)
    with which of the two does not contain the peer's."""
    parts = []
    for name, remote, local, remote_ok, local_ok in children:
        bad = [w for w, ok in ((f"IDci {their_ci} not in remote_ts", remote_ok),
                               (f"IDcr {their_cr} not in local_ts", local_ok)) if not ok]  # fmt: skip
        verdict = f"{FIRST}: {bad[0]}" + (f" (also {bad[1]})" if bad[1:] else "") if bad else "acceptable"
        ts = f"remote_ts={','.join(map(str, remote))} local_ts={','.join(map(str, local))}"
        parts.append(f"child {name} [{ts}]: {verdict}")
    return f"peer proposes IDci={their_ci} IDcr={their_cr}; " + (" | ".join(parts) or "no children")


def psk_hint(exchange: object) -> str:
    """`` (PSK looked up for local X, remote Y (peer at Z))`` for a phase 1 exchange that used one."""
    p1 = getattr(exchange, "p1", None)
    ids = getattr(p1, "psk_ids", "")
    return f" (the PSK was looked up for {ids})" if ids else ""
