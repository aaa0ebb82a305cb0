"""Every configuration key: what it takes, its default, what it does. The loader's key tables
(``TOP_KEYS``, ``DAEMON_KEYS``, ``CONNECTION_KEYS``, ``AUTH_KEYS``, ``CHILD_KEYS``, ``POOL_KEYS``,
``RADIUS_KEYS``, ``KEY_KEYS``) decide what is accepted; a test holds this table to exactly those
keys, and ``docs/configuration.md`` is rendered from it (``python -m snakeswan.config.reference``),
so the reference cannot drift from what the loader validates.

Keys whose only accepted value is the default are marked "(fail closed)": any other value is
refused at load, because snakeswan does not act on it.
"""

from __future__ import annotations

# section -> key -> (type, default, description)
Entry = tuple[str, str, str]
REFERENCE: dict[str, dict[str, Entry]] = {
    "(top level)": {
        "daemon": ("table", "-", "daemon settings, below"),
        "connections": ("tables", "-", "one table per IKE connection, `[connections.<name>]`"),
        "secrets": (
            "tables",
            "-",
            "`ike-*`/`psk-*` pre-shared keys, `xauth-*`/`eap-*` XAUTH passwords, "
            "`private-*`/`rsa-*`/`ecdsa-*`/`pkcs8-*` private key files",
        ),
        "pools": ("tables", "-", "virtual IP pools for Mode Config, `[pools.<name>]`"),
        "radius": ("table", "-", 'the RADIUS server for `auth = "xauth-radius"`'),
        "cluster": ("table", "-", "gateways sharing their SAs through etcd (pair or N active), below"),
        "authorities": ("tables", "-", "`[authorities.<name>]`: OCSP responders per CA certificate"),
    },
    "[daemon]": {
        "port": ("integer", "500", "UDP port for IKE"),
        "nat_port": ("integer", "4500", "UDP port for NAT-T (IKE and ESP-in-UDP)"),
        "retransmit_timeout": ("duration", "4s", "first retransmission after"),
        "retransmit_base": ("number", "1.8", "backoff factor between retransmissions"),
        "retransmit_tries": ("integer", "5", "retransmissions before an exchange gives up"),
        "keep_alive": ("duration", "20s", "NAT-T keepalive interval when we are behind a NAT"),
        "tun": ("string", "snakeswan0", "the TUN device of the userspace data plane"),
        "tun_mtu": ("integer", "1400", "its MTU"),
        "tun_offload": ("boolean", "true", "TUN offloads (coalesced TCP super-packets)"),
        "dataplane": ("boolean", "true", "false: IKE only, no TUN, routes or raw sockets"),
        "route_table": ("integer", "220", "routing table of the routes into the TUN (0: main, no rule)"),
        "route_priority": ("integer", "220", "priority of the rule `not fwmark <fwmark> lookup <table>`"),
        "fwmark": ("integer", "0x42", "firewall mark of the daemon's own IKE/ESP/AH sockets"),
        "half_open_timeout": ("duration", "30s", "a responder SA whose peer never answered goes after"),
        "half_open_limit": ("integer", "20000", "half-open SAs at most (the oldest makes room)"),
        "half_open_per_source": ("integer", "10", "half-open SAs per peer address at most"),
        "new_sa_rate": (
            "number",
            "2000",
            "new IKE SAs (MM1/AM1, zero responder cookie) parsed per second at most, from all "
            "sources (the quietest /24 or /64 first); the rest are shed before parsing",
        ),
        "new_sa_burst": ("integer", "2000", "new IKE SAs parsed at once after a quiet spell"),
        "new_sa_rate_under_load": (
            "number",
            "200",
            "`new_sa_rate` while the UDP socket has a backlog (at most `new_sa_rate`)",
        ),
        "new_sa_burst_under_load": ("integer", "20", "`new_sa_burst` under load (at most `new_sa_burst`)"),
        "fragment_size": ("integer", "1280", "largest IP datagram of a sent IKE fragment (576..65535)"),
        "metrics": ("string", "-", "Prometheus endpoint `ADDRESS:PORT` (an address literal)"),
        "dh_precompute": (
            "boolean",
            "true",
            "MODP key pairs made ahead of need by a helper process (another core); false: each "
            "exchange makes its own",
        ),
        "workers": (
            "integer",
            "1",
            "data-plane workers, one per core (1..64): the daemon and `workers - 1` processes, each on a "
            "queue of a multi-queue TUN device, ESP SAs spread over them by SPI; restart to change it",
        ),
        "state": (
            "choice",
            "sqlite",
            "`sqlite`: SAs persisted and restored after a restart (no renegotiation); `none`: not kept; "
            "`etcd`: shared by a cluster (`[cluster]`)",
        ),
        "state_file": (
            "string",
            "<control socket>.state",
            "the SQLite state file (absolute path); its sealing key is `<state_file>.key` (0600)",
        ),
    },
    "[connections.<name>]": {
        "version": ("integer", "1", "IKE version: 1 only"),
        "local_addrs": ("addresses", "%any", "our addresses, names, subnets or ranges"),
        "remote_addrs": ("addresses", "required", "the peer's; `%any` for a responder-only connection"),
        "local_port": ("integer", "[daemon] port", "our IKE port"),
        "remote_port": ("integer", "500", "the peer's IKE port"),
        "proposals": ("proposals", "default", "IKE proposals in strongSwan syntax, `aes128-sha256-modp2048`"),
        "vips": ("addresses", "-", "virtual IPs to ask for by Mode Config (`0.0.0.0`, `::`: any)"),
        "aggressive": ("boolean", "false", "Aggressive Mode instead of Main Mode"),
        "pull": ("boolean", "true", "Mode Config pulled by the client (false: pushed by the gateway)"),
        "encap": ("boolean", "false", "force UDP encapsulation (NAT-T) even without a NAT"),
        "mobike": ("boolean", "false", "(fail closed) IKEv2 only"),
        "dpd_delay": ("duration", "0s", "R-U-THERE after this much silence (0: no DPD)"),
        "dpd_timeout": ("duration", "0s", "peer dead after (0: the retransmission budget)"),
        "fragmentation": (
            "choice",
            "yes",
            "`yes` (send fragments when the peer announced them), `accept` (announce, never send), "
            "`force` (send even without the peer's vendor ID), `no` (not announced); received "
            "fragments are reassembled in every case, as swanctl",
        ),
        "send_certreq": ("boolean", "true", "send CERTREQs for the CAs we trust"),
        "send_cert": ("choice", "ifasked", "`always`, `never` or `ifasked`: send our certificate (chain)"),
        "keyingtries": ("integer", "1", "(fail closed) one try per initiation"),
        "unique": ("choice", "no", "`no`, `never`, `keep` or `replace`, as swanctl"),
        "reauth_time": ("duration", "0s", "renew the ISAKMP SA after (IKEv1 has no rekeying)"),
        "rekey_time": ("duration", "4h", "renew the ISAKMP SA after (when reauth_time is 0)"),
        "over_time": ("duration", "10% of rekey", "added to the renewal time for the lifetime"),
        "rand_time": ("duration", "over_time", "jitter subtracted from the renewal time"),
        "ike_life_bytes": ("volume", "-", "ISAKMP SA volume lifetime (snakeswan key)"),
        "ike_lifetime_check": (
            "choice",
            "lenient",
            "`lenient` (run with the shorter, tell the peer) or "
            "`strict` (refuse a longer lifetime, as Cisco)",
        ),
        "commit_bit": (
            "boolean",
            "false",
            "set the commit bit (RFC 2408 4.6) in the Quick Modes we start (snakeswan key; a peer's "
            "commit bit is honoured whatever this says)",
        ),
        "pools": ("names", "-", "pools to lease virtual IPs from (gateway)"),
        "children": ("tables", "-", "the connection's IPsec SAs, below"),
        "local": ("table", "-", "our authentication round 1 (also `local-<suffix>` for round 2: XAUTH)"),
        "remote": ("table", "-", "the peer's (also `remote-<suffix>`)"),
    },
    "local / remote (authentication rounds)": {
        "auth": (
            "choice",
            "pubkey",
            "`psk`, `pubkey` (`rsa`, `ecdsa`), `pubkey-enc` / `pubkey-enc-revised` (RFC 2409 "
            "5.2 / 5.3 public key encryption, RSA, both sides alike), `xauth`, `xauth-generic`, "
            "`xauth-radius`; `xauth` alone in round 1 is hybrid authentication",
        ),
        "id": ("identity", "our address / %any", "IKE identity (address, FQDN, `@name`, DN...)"),
        "certs": (
            "files",
            "-",
            "local: our certificate, then the intermediate CAs that issued it; "
            "remote: pinned peer certificates (with `pubkey-enc*`: the keys we encrypt to)",
        ),
        "cacerts": ("files", "-", "remote only: the CAs trusted for the peer"),
        "crls": ("files", "-", "remote only: CRLs of those CAs (snakeswan key; nothing is fetched)"),
        "ocsp_uris": (
            "URLs",
            "-",
            "remote only: OCSP responders (`http://...`) asked about the peer's certificate",
        ),
        "ocsp_aia": (
            "boolean",
            "false",
            "remote only: also ask the OCSP responder named in the peer certificate's AIA",
        ),
        "revocation": (
            "choice",
            "relaxed",
            "remote only: `strict` (no good OCSP/CRL status fails), `ifuri` (fails when a "
            "responder was configured but gave no answer), `relaxed` (only a revocation fails)",
        ),
        "pubkeys": (
            "files",
            "-",
            "raw RSA public keys instead of certs, with `pubkey-enc*` only (local: ours; remote: the peer's)",
        ),
        "xauth_id": ("string", "our IKE id", "XAUTH user name (client) or the one accepted (gateway)"),
        "round": ("integer", "0", "authentication round (1, 2)"),
    },
    "[connections.<name>.children.<child>]": {
        "local_ts": ("selectors", "dynamic", "our traffic selector, `10.1.0.0/24[tcp/80]`"),
        "remote_ts": ("selectors", "dynamic", "the peer's"),
        "esp_proposals": ("proposals", "default", "ESP proposals, `aes128gcm16-modp2048` (a group: PFS)"),
        "ah_proposals": (
            "proposals",
            "-",
            "AH proposals; with esp_proposals too, an AH+ESP bundle (same PFS groups, no NAT-T)",
        ),
        "mode": ("choice", "tunnel", "`tunnel`, `transport`, or a shunt: `pass`, `drop`"),
        "rekey_time": ("duration", "1h", "rekey the IPsec SA after"),
        "life_time": ("duration", "rekey + 10%", "hard lifetime"),
        "rand_time": ("duration", "life - rekey", "rekey jitter"),
        "rekey_bytes": ("volume", "-", "rekey after this many bytes"),
        "life_bytes": ("volume", "rekey + 10%", "hard byte limit"),
        "rand_bytes": ("volume", "-", "(fail closed) not implemented"),
        "rekey_packets": ("integer", "-", "(fail closed) not implemented"),
        "life_packets": ("integer", "-", "(fail closed) not implemented"),
        "rand_packets": ("integer", "-", "(fail closed) not implemented"),
        "start_action": ("choice", "none", "`none`, `trap` (negotiate on traffic) or `start`"),
        "close_action": ("choice", "none", "after the peer deleted the IPsec SA: `none`, `trap`, `start`"),
        "dpd_action": ("choice", "clear", "after DPD declared the peer dead: `clear`, `trap`, `restart`"),
        "replay_window": ("integer", "32", "anti-replay window (packets)"),
        "inactivity": ("duration", "0s", "(fail closed) not implemented"),
        "reqid": ("integer", "0", "(fail closed) no kernel reqids here"),
        "ipcomp": ("boolean", "false", "(fail closed) IPComp is not supported"),
        "updown": ("string", "-", "(fail closed) updown scripts are not implemented"),
        "hostaccess": ("boolean", "false", "(fail closed) not implemented"),
        "policies": ("boolean", "true", "(fail closed) children without policies are not implemented"),
        "if_id_in": ("integer", "0", "route-based child: its interface ID (as XFRM's); 0: policy-based"),
        "if_id_out": ("integer", "0", "must equal if_id_in: one interface carries both directions"),
        "interface": (
            "string",
            "vti<if_id>",
            "route-based child: the TUN device created for it; `ip route ... dev` decides what enters",
        ),
    },
    "[pools.<name>]": {
        "addrs": ("subnet or range", "required", "addresses to lease (a subnet's own address is not)"),
        "dns": ("addresses", "-", "DNS servers sent by Mode Config"),
        "nbns": ("addresses", "-", "NBNS (WINS) servers"),
        "split_include": ("subnets", "-", "networks behind the gateway (Cisco Unity split-include)"),
        "subnet": ("subnets", "-", "the same as split_include (swanctl's name)"),
        "split_exclude": ("subnets", "-", "(fail closed) not implemented"),
        "banner": ("string", "-", "Cisco Unity banner"),
        "default_domain": ("string", "-", "Cisco Unity default domain"),
    },
    "[radius]": {
        "address": ("address", "required", "the RADIUS server"),
        "port": ("integer", "1812", "its authentication port"),
        "secret": ("secret", "required", "the shared secret (text, `0x` hex or `0s` base64)"),
        "timeout": ("duration", "3s", "wait for an answer"),
        "retries": ("integer", "2", "requests sent again before a rejection"),
        "nas_identifier": ("string", "snakeswan", "NAS-Identifier sent"),
    },
    "[cluster]": {
        "endpoints": ("strings", "required", "etcd client URLs `http://HOST:PORT`, one per member"),
        "node": ("string", "required", "this gateway's name, unique in the cluster"),
        "name": ("string", "snakeswan", "the cluster's name: its keys live under `/snakeswan/<name>/`"),
        "lease_ttl": ("integer", "3", "seconds; a dead node's shares are taken over after this"),
        "timeout": ("duration", "1s", "one request to one etcd member (then the next is tried)"),
        "prefer": ("strings", "-", "shares this node campaigns for at start (others: after one TTL)"),
        "key_file": ("string", "required", "the sealing key (32 bytes, 0600), the same file on every node"),
        "shares": ("tables", "required", "one table per share, `[cluster.shares.<name>]`"),
    },
    "[cluster.shares.<name>]": {
        "address": ("address/prefix", "required", "the share's virtual address, `10.0.5.10/24`"),
        "interface": ("string", "required", "the interface it is added to (with gratuitous ARP)"),
    },
    "[authorities.<name>]": {
        "cacert": ("file", "required", "a CA certificate (trust still comes from `remote.cacerts`)"),
        "ocsp_uris": ("URLs", "required", "OCSP responders (`http://...`) for the certificates it issued"),
    },
    "[secrets.private-<name>] (private keys)": {
        "file": ("file", "required", "PEM or DER private key"),
        "secret": ("string", "-", "its passphrase"),
    },
}


def render() -> str:
    lines = [
        "# snakeswan configuration reference",
        "",
        "Generated from `src/snakeswan/config/reference.py` (`python -m snakeswan.config.reference`); a",
        "test holds it to the keys the loader accepts. The file is TOML with swanctl.conf's names.",
        'An unknown key, or a value snakeswan does not act on ("fail closed"), is refused at load',
        "with the file, the key and the reason. `snakeswan check -c FILE` validates a file offline.",
        "",
    ]
    for section, keys in REFERENCE.items():
        lines += [f"## {section}", "", "| key | type | default | what |", "|---|---|---|---|"]
        lines += [f"| `{key}` | {kind} | {default} | {what} |" for key, (kind, default, what) in keys.items()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
