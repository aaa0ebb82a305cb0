#!/usr/bin/env bash
# Installs everything snakeswan's demo and tests need on a fresh Debian machine (run as root):
# Debian packages (strongSwan, vpnc and FreeRADIUS for interop, etcd for the cluster tests, openssl for the OCSP
# responder, tshark, iproute2, nftables, iperf3) and the package itself with its development extras. Skips what
# is already there, so running it again is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS="tshark iproute2 nftables iperf3 tcpdump iputils-ping vpnc strongswan-charon strongswan-swanctl libcharon-extra-plugins libcharon-extauth-plugins libstrongswan-standard-plugins strongswan-pki freeradius groff-base etcd-server etcd-client openssl"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "setup: need root to install:$missing" >&2; exit 1; fi
  echo "setup: installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
bash scripts/setup_libreswan.sh  # Libreswan 4.10 unpacked for tests/interop/test_libreswan.py
if ! python3 -c "import snakeswan, pytest, hypothesis, importlinter, pyrad, prometheus_client, dpkt, pyroute2" >/dev/null 2>&1 \
   || [ "$(python3 -c 'import snakeswan, os; print(os.path.realpath(snakeswan.__file__))' 2>/dev/null)" != "$(realpath src/snakeswan/__init__.py)" ] \
   || { command -v cc >/dev/null && ! python3 -c "import snakeswan.io._mmsg" >/dev/null 2>&1; }; then
  # (the last test: the optional sendmmsg/recvmmsg extension, see setup.py, is not built yet)
  echo "setup: installing snakeswan (editable) with its dev extras"
  python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
fi
# benchmarks only: strongSwan's vici client (bench/scale_gateway.py drives a charon initiator with
# it) and py-spy (bench/flood.py --profile)
python3 -c "import vici" >/dev/null 2>&1 && command -v py-spy >/dev/null \
  || python3 -m pip install -q --disable-pip-version-check 'vici>=6,<7' 'py-spy>=0.3'
