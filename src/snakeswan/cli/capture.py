"""``snakeswan capture -w FILE``: IKE and ESP/AH captured (tcpdump) into a pcap file, and the
daemon's key log (``daemon --keylog``) turned into the Wireshark/tshark preferences that decrypt
it: IKEv1 (``ikev1_decryption_table``) and ESP (``esp_sa``). They are written beside the capture
(``FILE.wireshark``, one ``-o`` option per line) and printed as a ready command line."""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from snakeswan.cli.common import add_verb
from snakeswan.errors import LocalError

FILTER = "udp port 500 or udp port 4500 or ip proto 50 or ip proto 51 or ip6 proto 50 or ip6 proto 51"


def add_parser(sub: Any) -> None:
    p = add_verb(sub, "capture", "capture IKE and ESP into a pcap that Wireshark decrypts with the keys", run)
    p.add_argument("-w", "--write", required=True, metavar="FILE", help="the pcap file to write")
    p.add_argument("-i", "--interface", default="any", help="the interface (default: any)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds to capture (default: until Ctrl-C)")
    p.add_argument(
        "--keylog", metavar="FILE", help="the daemon's --keylog file: its keys decrypt the capture"
    )


def wireshark_options(keylog_text: str) -> list[str]:
    """``-o`` options for the key log's lines: IKEv1 ``icookie,key`` and ESP's quoted 8 fields."""
    opts: list[str] = []
    esp = False
    for raw in keylog_text.splitlines():
        line = raw.strip()
        if line.startswith('"'):
            opts += ["-o", f"uat:esp_sa:{line}"]
            esp = True
        elif line.count(",") == 1:
            opts += ["-o", f"uat:ikev1_decryption_table:{line}"]
    if esp:
        opts = ["-o", "esp.enable_encryption_decode:TRUE", *opts]
    return opts


def run(args: argparse.Namespace) -> int:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise LocalError("capture needs tcpdump (apt-get install tcpdump)")
    out = Path(args.write)
    cmd = [tcpdump, "-i", args.interface, "-U", "-n", "-w", str(out), FILTER]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + args.duration if args.duration > 0 else None
        while proc.poll() is None and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # tcpdump flushes and closes the file
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    if not out.exists():
        err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
        raise LocalError(f"tcpdump wrote no capture: {err[-1] if err else 'no reason given'}")
    print(f"captured to {out}")
    if args.keylog:
        try:
            opts = wireshark_options(Path(args.keylog).read_text())
        except OSError as e:
            raise LocalError(f"cannot read the key log {args.keylog}: {e.strerror}") from None
        prefs = out.with_name(out.name + ".wireshark")
        prefs.write_text("".join(f"{shlex.join(opts[i : i + 2])}\n" for i in range(0, len(opts), 2)))
        print(f"keys for Wireshark in {prefs}; open it with:", file=sys.stderr)
        print(shlex.join(["wireshark", "-r", str(out), *opts]))
    return 0
