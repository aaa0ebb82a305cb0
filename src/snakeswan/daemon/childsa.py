"""What a negotiated child becomes in the data plane besides its SAs: its policy key (per
selector pair, per peer) and the AH half of an AH+ESP bundle."""

from __future__ import annotations

from snakeswan.config._connections import is_specific
from snakeswan.config.model import ChildConfig, ConnectionConfig
from snakeswan.ike.events import ChildSaInfo, SaKeys
from snakeswan.ike.selectors import selector_pairs
from snakeswan.ipsec import SaParams

AH = 51


def serves_many(conn: ConnectionConfig) -> bool:
    """A responder connection for any peer (a remote-access gateway): each peer's SA needs a
    policy of its own, or the newest peer's SA would carry everybody's traffic."""
    return not any(is_specific(address) for address in conn.remote_addrs)


def policy_key(
    conn: ConnectionConfig, child: str, info: ChildSaInfo | None, pair: int | None = None
) -> tuple[str, str]:
    """The SPD key of a child's policies: (connection, child); per selector pair of a child with
    several (``child#N``, N its ``ts_pair``: one SA each); per peer on a connection that serves
    many (``child@remote_ts``); per SA whose selectors are narrower than its configured pair
    (``child@local_ts|remote_ts``: a responder with one wide child answering several narrower
    Quick Modes, or an initiator narrowed under a trap policy; the narrower policy wins)."""
    name, pair = child, info.ts_pair if info is not None else pair
    if pair is not None and pair_count(conn, child) > 1:
        name = f"{child}#{pair}"
    if info is not None and serves_many(conn):
        return conn.name, f"{name}@{info.remote_ts}"
    if info is not None and _narrower(conn, child, info):
        return conn.name, f"{name}@{info.local_ts}|{info.remote_ts}"
    return conn.name, name


def _narrower(conn: ConnectionConfig, child: str, info: ChildSaInfo) -> bool:
    """The SA's selectors are not its configured pair's (never said of ``dynamic`` selectors, nor
    of a route-based child: its SA is found by its interface's key, and it has no policy)."""
    cfg = next((c for c in conn.children if c.name == child), None)
    if cfg is None or cfg.interface is not None or any(ts.dynamic for ts in (*cfg.local_ts, *cfg.remote_ts)):
        return False
    pairs = selector_pairs(cfg.local_ts, cfg.remote_ts)
    lts, rts = pairs[info.ts_pair] if info.ts_pair < len(pairs) else pairs[0]
    return (str(lts), str(rts)) != (info.local_ts, info.remote_ts)


def pair_count(conn: ConnectionConfig, child: str) -> int:
    """How many selector pairs (Quick Modes, SAs) the negotiable child ``child`` has."""
    cfg = next((c for c in conn.children if c.name == child), None)
    return len(selector_pairs(cfg.local_ts, cfg.remote_ts)) if cfg is not None else 1


def child_of_key(policy_child: str) -> str:
    """The child name in a policy key's second half (``net#1``, ``net@...`` -> ``net``)."""
    return policy_child.partition("@")[0].partition("#")[0]


def bundle_params(info: ChildSaInfo, child: ChildConfig) -> tuple[SaParams, SaParams] | None:
    """The (inbound, outbound) AH SAs of an AH+ESP bundle: transport mode over the ESP packet,
    without limits of their own (the bundle lives and expires with its ESP SAs)."""
    ah = info.ah
    if ah is None:
        return None
    window = max(child.replay_window, 32)

    def one(spi: int, keys: SaKeys) -> SaParams:
        return SaParams(
            spi=spi,
            protocol=AH,
            transform_id=ah.transform_id,
            key_length=None,
            auth=ah.auth,
            encryption_key=b"",
            integrity_key=keys.integrity,
            local=info.local,
            remote=info.remote,
            mode="transport",
            replay_window=window,
        )

    return one(ah.spi_in, ah.keys_in), one(ah.spi_out, ah.keys_out)
