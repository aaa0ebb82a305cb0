"""What ``list-sas`` and ``list-conns`` show: plain JSON-able dicts built from the engine's state."""

from __future__ import annotations

from typing import Any

from snakeswan.config.model import ChildProposal, Config, ConnectionConfig
from snakeswan.config.proposals import format_child_proposal, format_ike_proposal
from snakeswan.ike.events import ChildSaInfo
from snakeswan.ike.sa import IkeSa
from snakeswan.wire.enums import ProtocolId


def _addr(a: tuple[str, int]) -> str:
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


def child_view(
    c: ChildSaInfo, since: float | None, now: float, counters: dict[str, int] | None
) -> dict[str, Any]:
    proposal = ChildProposal(c.protocol, c.transform_id, c.key_length, c.auth, c.pfs_group)
    age = now - since if since is not None else None
    return {
        "name": c.child,
        "protocol": "ESP" if c.protocol == ProtocolId.IPSEC_ESP else "AH",
        "spi_in": f"{c.spi_in:08x}",
        "spi_out": f"{c.spi_out:08x}",
        "proposal": format_child_proposal(proposal),
        "mode": c.mode,
        "encap": c.encap,
        "local_ts": c.local_ts,
        "remote_ts": c.remote_ts,
        "life_seconds": c.life_seconds,
        "life_kilobytes": c.life_kilobytes,
        "age": round(age, 1) if age is not None else None,
        "lifetime_left": round(c.life_seconds - age, 1) if c.life_seconds and age is not None else None,
        **(counters or {"bytes_in": 0, "packets_in": 0, "bytes_out": 0, "packets_out": 0}),
        **_bundle_view(c),
    }


def _bundle_view(c: ChildSaInfo) -> dict[str, Any]:
    """An AH+ESP bundle's AH half: its SPIs and proposal beside the ESP ones."""
    if c.ah is None:
        return {}
    proposal = ChildProposal(ProtocolId.IPSEC_AH, c.ah.transform_id, None, c.ah.auth, c.pfs_group)
    return {
        "protocol": "AH+ESP",
        "ah_spi_in": f"{c.ah.spi_in:08x}",
        "ah_spi_out": f"{c.ah.spi_out:08x}",
        "ah_proposal": format_child_proposal(proposal),
    }


def ike_view(
    sa: IkeSa, now: float, child_since: dict[int, float], counters: dict[int, dict[str, int]] | None = None
) -> dict[str, Any]:
    age = now - sa.established_at if sa.established_at is not None else None
    lifetime = sa.choice.lifetime if sa.choice else None
    return {
        "id": sa.unique_id,
        "conn": sa.name,
        "state": sa.state.value.upper(),
        "role": "initiator" if sa.initiator else "responder",
        "mode": "aggressive" if sa.aggressive else "main",
        "local": _addr(sa.local),
        "remote": _addr(sa.remote),
        "local_id": str(sa.local_id) if sa.local_id else None,
        "remote_id": str(sa.remote_id) if sa.remote_id else None,
        "icookie": sa.icookie.hex(),
        "rcookie": sa.rcookie.hex(),
        "proposal": format_ike_proposal(sa.choice.proposal) if sa.choice else None,
        "nat_local": bool(sa.nat and sa.nat.local_behind),
        "nat_remote": bool(sa.nat and sa.nat.remote_behind),
        "encap": sa.encap,
        "dpd": sa.dpd_supported,
        "xauth_user": sa.remote_access.user if sa.remote_access else None,
        "vips": [str(v) for v in sa.remote_access.vips] if sa.remote_access else [],
        "age": round(age, 1) if age is not None else None,
        "lifetime": lifetime,
        "lifetime_left": round(lifetime - age, 1) if lifetime and age is not None else None,
        "children": [
            child_view(c, child_since.get(c.spi_in), now, (counters or {}).get(c.spi_in)) for c in sa.children
        ],
    }


def conn_view(conn: ConnectionConfig) -> dict[str, Any]:
    return {
        "name": conn.name,
        "local_addrs": list(conn.local_addrs),
        "remote_addrs": list(conn.remote_addrs),
        "mode": "aggressive" if conn.aggressive else "main",
        "proposals": [format_ike_proposal(p) for p in conn.proposals],
        "local": {"auth": conn.local.auth, "id": str(conn.local.id) if conn.local.id else None},
        "remote": {"auth": conn.remote.auth, "id": str(conn.remote.id) if conn.remote.id else None},
        "rekey_time": conn.rekey_time,
        "dpd_delay": conn.dpd_delay,
        "children": [
            {
                "name": c.name,
                "local_ts": [str(t) for t in c.local_ts],
                "remote_ts": [str(t) for t in c.remote_ts],
                "esp_proposals": [format_child_proposal(p) for p in c.esp_proposals],
                "ah_proposals": [format_child_proposal(p) for p in c.ah_proposals],
                "mode": c.mode,
                "start_action": c.start_action,
                "life_time": c.life_time,
            }
            for c in (*conn.children, *conn.shunts)
        ],
    }


def conns_view(config: Config) -> list[dict[str, Any]]:
    return [conn_view(c) for c in config.connections]


def render_sas(sas: list[dict[str, Any]]) -> str:
    """Human-readable list-sas, after ``swanctl --list-sas``."""
    lines: list[str] = []
    for s in sas:
        lines.append(
            f"{s['conn']}: #{s['id']}, {s['state']}, IKEv1 {s['mode']} mode, {s['role']}, "
            f"{s['icookie']}_i{'*' if s['role'] == 'initiator' else ''} {s['rcookie']}_r"
            f"{'*' if s['role'] == 'responder' else ''}"
        )
        nat = (
            " NAT-T"
            + (" (local behind NAT)" if s["nat_local"] else "")
            + (" (remote behind NAT)" if s["nat_remote"] else "")
        )
        if "node" in s:  # a cluster: who serves it
            lines.append(f"  node {s['node']}" + (f", share {s['share']}" if s["share"] else ", no share"))
        lines.append(f"  local  '{s['local_id']}' @ {s['local']}")
        lines.append(f"  remote '{s['remote_id']}' @ {s['remote']}{nat if s['encap'] else ''}")
        if s["proposal"]:
            lines.append(f"  {s['proposal']}")
        if s["age"] is not None:
            lines.append(f"  established {s['age']:.0f}s ago, lifetime left {s['lifetime_left']:.0f}s")
        for c in s["children"]:
            lines.append(
                f"  {c['name']}: {c['protocol']}, {c['mode'].upper()}{'-in-UDP' if c['encap'] else ''}, "
                f"SPIs {c['spi_in']}_i {c['spi_out']}_o, {c['proposal']}"
            )
            lines.append(f"    in  {c['bytes_in']} bytes, {c['packets_in']} packets")
            lines.append(f"    out {c['bytes_out']} bytes, {c['packets_out']} packets")
            drops = {k.removeprefix("drop_"): v for k, v in c.items() if k.startswith("drop_") and v}
            if drops:
                text = ", ".join(f"{n} {reason}" for reason, n in sorted(drops.items()))
                lines.append(f"    dropped {text}")
            if c["lifetime_left"] is not None:
                lines.append(f"    installed {c['age']:.0f}s ago, expires in {c['lifetime_left']:.0f}s")
            lines.append(f"    local  {c['local_ts']}")
            lines.append(f"    remote {c['remote_ts']}")
    return "\n".join(lines) if lines else "no SAs"
