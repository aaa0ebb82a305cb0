"""Snapshots of the engine's established SAs and their restoration (issue 14), pure: plain dicts
in and out (the byte form is :mod:`snakeswan.ike.persist_codec`, the store a driver in ``io/``).

What an ``"ike"`` record holds (format version 1; every byte string hex, every time wall-clock
seconds so that a record outlives the process whose monotonic clock made it):

- the ISAKMP SA: cookies, addresses, connection name, role, Main/Aggressive, the chosen proposal
  (algorithms, auth method, lifetimes, the transform as sent), both identities, NAT-T flavour and
  what NAT detection found, DPD support and its sequence number, Cisco Unity, established /
  rekey / expiry / keepalive times, protected bytes, the message IDs recently used;
- XAUTH / Mode Config results (the user, the virtual IPs, the leases held) when the rounds were done;
- its IPsec SAs: every field of :class:`~snakeswan.ike.events.ChildSaInfo` but the keys, and their
  timers (rekey, expiry, the overlap delete of a rekeyed SA);
- ``"secret"``: SKEYID, SKEYID_d/a/e, the phase 1 encryption key and the last phase 1 CBC block
  (the IV every later exchange derives its own from), and each IPsec SA's keys.

Only established SAs are written: an exchange under way (phase 1, a Quick Mode, a Transaction) is
not, and is started again by whoever needs it. :func:`restore_sa` rebuilds an :class:`IkeSa` in
the engine with a new unique id, its indexes (``ike/sa_table.py``), its timers (``Timers.touch``,
the IPsec SAs' :class:`~snakeswan.ike.lifetimes.ChildTimer`), the inbound SPIs it holds and its
leases; it returns the IPsec SAs for the data plane to install.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import Any

from snakeswan.config.identity import Identity
from snakeswan.config.model import IkeProposal
from snakeswan.crypto.algorithms import ike_cipher, ike_hash
from snakeswan.crypto.ivchain import IvChain
from snakeswan.crypto.keymat import Phase1Keys
from snakeswan.errors import SnakeswanError
from snakeswan.ike.dpd import DEFAULT_TIMEOUT, DpdState
from snakeswan.ike.engine import Engine
from snakeswan.ike.events import AhBundle, ChildSaInfo, SaKeys
from snakeswan.ike.lifetimes import ChildTimer
from snakeswan.ike.modecfg import ModeCfg
from snakeswan.ike.natt import NatResult
from snakeswan.ike.persist_codec import VERSION, Record, RecordError
from snakeswan.ike.proposals import IkeChoice
from snakeswan.ike.remote_access import RemoteAccess
from snakeswan.ike.sa import IkeSa, IkeState, Phase1Crypto
from snakeswan.wire.buffer import Reader
from snakeswan.wire.payloads import Transform

__all__ = ["RestoredChild", "export_all", "export_sa", "record_key", "restore_sa"]

_CHILD_KEYS = ("keys_in", "keys_out", "ike_sa", "ah")  # ah: an AH+ESP bundle's half, exported apart
_TUPLES = ("local", "remote", "nat_oa")


@dataclass(frozen=True, slots=True)
class RestoredChild:
    """An IPsec SA brought back: the data plane installs ``info`` as if it had been established
    ``age`` seconds ago (its lifetimes count from then)."""

    info: ChildSaInfo
    age: float


def record_key(sa: IkeSa) -> str:
    """``ike/<icookie><rcookie>`` (hex): stable for the SA's life, the same on every node."""
    return f"ike/{sa.icookie.hex()}{sa.rcookie.hex()}"


def _wall(t: float | None, offset: float) -> float | None:
    return None if t is None else round(t + offset, 6)


def _mono(t: Any, offset: float) -> float | None:
    return None if t is None else float(t) - offset


def export_all(engine: Engine, offset: float) -> dict[str, Record]:
    """A record per established ISAKMP SA, by store key. ``offset``: wall clock minus engine time."""
    out: dict[str, Record] = {}
    for sa in engine.ike_sas:
        rec = export_sa(engine, sa, offset)
        if rec is not None:
            out[record_key(sa)] = rec
    return out


def export_sa(engine: Engine, sa: IkeSa, offset: float) -> Record | None:
    """The record of ``sa``, None unless it is *ready*: established (with keys and a connection)
    and its XAUTH / Mode Config rounds, if any, over. An SA still in those rounds is not written:
    restored, it would count as having passed them (fail closed: its peer authenticates again)."""
    if not sa.ready or sa.crypto is None or sa.choice is None or sa.conn is None:
        return None
    if sa.local_id is None or sa.remote_id is None:
        return None
    c, p = sa.choice, sa.choice.proposal
    rec: Record = {
        "v": VERSION,
        "kind": "ike",
        "id": sa.unique_id,
        "conn": sa.conn.name,
        "initiator": sa.initiator,
        "aggressive": sa.aggressive,
        "icookie": sa.icookie.hex(),
        "rcookie": sa.rcookie.hex(),
        "local": list(sa.local),
        "remote": list(sa.remote),
        "local_id": [sa.local_id.id_type, sa.local_id.data.hex()],
        "remote_id": [sa.remote_id.id_type, sa.remote_id.data.hex()],
        "proposal": [p.encryption, p.key_length, p.hash, p.group],
        "auth_method": c.auth_method,
        "lifetime": c.lifetime,
        "life_kilobytes": c.life_kilobytes,
        "transform": c.transform.encode().hex(),
        "lowered": c.lowered,
        "natt": sa.natt_flavour,
        "nat": [sa.nat.local_behind, sa.nat.remote_behind] if sa.nat is not None else None,
        "dpd_supported": sa.dpd_supported,
        "dpd_seq": sa.dpd.seq if sa.dpd is not None else None,
        "unity": sa.unity,
        "established": _wall(sa.established_at, offset),
        "rekey": _wall(sa.rekey_at, offset),
        "expire": _wall(sa.expire_at, offset),
        "protected_bytes": sa.protected_bytes,
        "mids": list(sa.seen_mids),
        "ra": _export_ra(sa.remote_access),
        "children": [_export_child(engine, ch, offset) for ch in sa.children],
    }
    k, crypto = sa.crypto.keys, sa.crypto
    rec["secret"] = {
        "skeyid": k.skeyid.hex(),
        "skeyid_d": k.skeyid_d.hex(),
        "skeyid_a": k.skeyid_a.hex(),
        "skeyid_e": k.skeyid_e.hex(),
        "enc_key": crypto.enc_key.hex(),
        "iv": crypto.iv.iv_for(0).hex(),  # the last phase 1 CBC block
        "children": {
            f"{ch.spi_in:08x}": [
                ch.keys_in.encryption.hex(),
                ch.keys_in.integrity.hex(),
                ch.keys_out.encryption.hex(),
                ch.keys_out.integrity.hex(),
                *((ch.ah.keys_in.integrity.hex(), ch.ah.keys_out.integrity.hex()) if ch.ah else ()),
            ]
            for ch in sa.children
        },
    }
    return rec


def _export_ra(ra: RemoteAccess | None) -> Record | None:
    if ra is None:
        return None
    return {
        "user": ra.user,
        "vips": [str(v) for v in ra.vips],
        "leased": [[pool, str(address)] for pool, address in ra.leased],
        "split": [str(n) for n in ra.modecfg.split_include] if ra.modecfg is not None else [],
    }


def _export_child(engine: Engine, ch: ChildSaInfo, offset: float) -> Record:
    out: Record = {f.name: getattr(ch, f.name) for f in dataclasses.fields(ch) if f.name not in _CHILD_KEYS}
    for name in _TUPLES:
        if out[name] is not None:
            out[name] = list(out[name])
    if ch.ah is not None:  # its keys are in the sealed part with the ESP ones
        out["ah"] = {k: getattr(ch.ah, k) for k in ("transform_id", "auth", "spi_in", "spi_out")}
    t = engine.timers.lifetimes.timers.get(ch.spi_in)
    if t is not None:
        out["timer"] = {
            "rekey": _wall(t.rekey_at, offset),
            "expire": _wall(t.expire_at, offset),
            "delete": _wall(t.delete_at, offset),
            "rekeying": t.rekeying,
            "replaced_by": t.replaced_by,
        }
    return out


# ---- restore ----------------------------------------------------------------------------------


def restore_sa(engine: Engine, rec: Record, now: float, offset: float) -> tuple[IkeSa, list[RestoredChild]]:
    """Rebuild the ISAKMP SA of ``rec`` (a decoded, unsealed record) in ``engine`` at engine time
    ``now``; ``offset`` is wall clock minus engine time. Raises :class:`RecordError` when the record
    cannot be used (its connection is gone from the configuration, a field is missing or bad);
    the engine is then unchanged. An SA whose cookies the engine already has is left as it is."""
    try:
        return _restore(engine, rec, now, offset)
    except RecordError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, SnakeswanError) as e:
        raise RecordError(f"unusable IKE SA record ({type(e).__name__}: {e})") from None


def _restore(engine: Engine, rec: Record, now: float, offset: float) -> tuple[IkeSa, list[RestoredChild]]:
    if rec.get("kind") != "ike" or "secret" not in rec:
        raise RecordError("not an unsealed IKE SA record")
    try:
        conn = engine.config.connection(rec["conn"])
    except KeyError:
        raise RecordError(f"connection {rec['conn']!r} is no longer configured") from None
    icookie, rcookie = bytes.fromhex(rec["icookie"]), bytes.fromhex(rec["rcookie"])
    existing = engine.table.by_cookies(icookie, rcookie)
    if existing is not None:
        return existing, []
    secret = rec["secret"]
    enc, key_length, hash_id, group = rec["proposal"]
    proposal = IkeProposal(int(enc), key_length, int(hash_id), int(group))
    transform = Transform.decode(Reader(bytes.fromhex(rec["transform"]), where="transform"))
    choice = IkeChoice(
        proposal,
        int(rec["auth_method"]),
        int(rec["lifetime"]),
        rec["life_kilobytes"],
        transform,
        bool(rec["lowered"]),
    )
    h = ike_hash(proposal.hash)
    cipher = ike_cipher(proposal.encryption, proposal.key_length)
    keys = Phase1Keys(*(bytes.fromhex(secret[n]) for n in ("skeyid", "skeyid_d", "skeyid_a", "skeyid_e")))
    iv = IvChain(h, cipher.block_size, bytes.fromhex(secret["iv"]))
    children = [_child(c, secret["children"], now, offset) for c in rec["children"]]
    local, remote = (
        (str(rec["local"][0]), int(rec["local"][1])),
        (str(rec["remote"][0]), int(rec["remote"][1])),
    )
    # everything parsed: from here on the engine changes
    sa = engine.table.new(bool(rec["initiator"]), icookie, local, remote)
    sa.rcookie = rcookie
    sa.conn = conn
    sa.state = IkeState.ESTABLISHED
    sa.aggressive = bool(rec["aggressive"])
    sa.choice = choice
    sa.crypto = Phase1Crypto(h, cipher, keys, bytes.fromhex(secret["enc_key"]), iv)
    sa.local_id = Identity(int(rec["local_id"][0]), bytes.fromhex(rec["local_id"][1]))
    sa.remote_id = Identity(int(rec["remote_id"][0]), bytes.fromhex(rec["remote_id"][1]))
    sa.natt_flavour = rec["natt"]
    sa.nat = NatResult(bool(rec["nat"][0]), bool(rec["nat"][1])) if rec["nat"] is not None else None
    sa.dpd_supported = bool(rec["dpd_supported"])
    sa.unity = bool(rec["unity"])
    sa.established_at = _mono(rec["established"], offset)
    sa.rekey_at = _mono(rec["rekey"], offset)
    sa.expire_at = _mono(rec["expire"], offset)
    sa.protected_bytes = int(rec["protected_bytes"])
    sa.seen_mids = {int(m): None for m in rec["mids"]}
    if sa.conn.dpd_delay > 0 and sa.dpd_supported and rec["dpd_seq"] is not None:
        timeout = sa.conn.dpd_timeout or DEFAULT_TIMEOUT
        sa.dpd = DpdState(sa.conn.dpd_delay, timeout, now, int(rec["dpd_seq"]))
    if sa.nat is not None and sa.nat.local_behind:
        sa.keepalive_due = now  # refresh the NAT mapping at once
    _restore_ra(engine, sa, rec["ra"])
    engine.table.learn_rcookie(sa)
    out: list[RestoredChild] = []
    for parsed, timer, age in children:
        info = dataclasses.replace(parsed, ike_sa=sa.unique_id)
        sa.children.append(info)
        engine.ctx.spis.reserve(info.spi_in)
        if timer is not None:
            engine.timers.lifetimes.timers[info.spi_in] = dataclasses.replace(timer, ike_sa=sa.unique_id)
            engine.timers.lifetimes.update(info.spi_in)
        out.append(RestoredChild(info, age))
    engine.table.index(sa)
    engine.timers.touch(sa)
    engine.tracer.emit(
        "ike", "restored", sa=sa.unique_id, conn=conn.name, remote=sa.remote, children=len(out), was=rec["id"]
    )
    return sa, out


def _child(
    rec: Record, keys: dict[str, list[str]], now: float, offset: float
) -> tuple[ChildSaInfo, ChildTimer | None, float]:
    fields = {f.name for f in dataclasses.fields(ChildSaInfo)} - set(_CHILD_KEYS)
    kwargs = {name: rec[name] for name in fields if name in rec}
    for name in _TUPLES:
        if kwargs.get(name) is not None:
            kwargs[name] = (str(kwargs[name][0]), kwargs[name][1])
    ein, iin, eout, iout, *ah_keys = (bytes.fromhex(x) for x in keys[f"{int(rec['spi_in']):08x}"])
    ah = rec.get("ah")
    if ah is not None:
        kwargs["ah"] = AhBundle(
            int(ah["transform_id"]), ah["auth"], int(ah["spi_in"]), int(ah["spi_out"]),
            SaKeys(b"", ah_keys[0]), SaKeys(b"", ah_keys[1]),
        )  # fmt: skip
    info = ChildSaInfo(ike_sa=0, keys_in=SaKeys(ein, iin), keys_out=SaKeys(eout, iout), **kwargs)
    timer: ChildTimer | None = None
    age = 0.0
    t = rec.get("timer")
    if t is not None:
        expire = _mono(t["expire"], offset)
        rekey = _mono(t["rekey"], offset)
        if t["rekeying"]:  # the Quick Mode under way was lost with the process: rekey again now
            rekey = now
        timer = ChildTimer(0, info.spi_in, rekey, expire, _mono(t["delete"], offset), False, t["replaced_by"])
        if expire is not None and info.life_seconds:
            age = max(0.0, now - (expire - info.life_seconds))
    return info, timer, age


def _restore_ra(engine: Engine, sa: IkeSa, rec: Record | None) -> None:
    """XAUTH / Mode Config were done: the SA is ready, its leases held again."""
    assert sa.conn is not None
    ra = RemoteAccess(sa, sa.conn, engine.ctx, engine.leases, engine.gate.start_transaction)
    ra.xauth.state = ra.cfg.state = "done"
    ra.announced = True
    if rec is not None:
        ra.user = rec["user"]
        ra.vips = [ipaddress.ip_address(v) for v in rec["vips"]]
        split = tuple(ipaddress.ip_network(n) for n in rec.get("split", ()))
        ra.modecfg = ModeCfg(addresses=tuple(ra.vips), split_include=split)
        for pool, address in rec["leased"]:
            addr = ipaddress.ip_address(address)
            got = engine.leases.acquire((pool,), ra.sa_identity(), addr.version, addr)
            if got is not None:
                ra.leased.append(got)
    sa.remote_access = ra
