#!/usr/bin/env bash
# Libreswan 4.10 (pluto) for tests/interop/test_libreswan.py: unpacked, not installed (the Debian
# package conflicts with strongSwan's starter). Its libraries are ordinary packages; gcc builds the
# LD_PRELOAD XFRM shim at test time; /usr/libexec/ipsec is the (empty) mount point the harness
# bind-mounts the unpacked helpers on inside each test's private mount namespace (pluto hard-wires
# /usr/libexec/ipsec/addconn).
set -euo pipefail
LIBRESWAN_ROOT="${SNAKESWAN_LIBRESWAN_ROOT:-/opt/snakeswan-libreswan}"
LS_PKGS="gcc libc6-dev linux-libc-dev libnss3-tools libcurl3-nss libevent-core-2.1-7 libevent-pthreads-2.1-7 libldns3 libunbound8 libnspr4 libnss3 libcap-ng0 libaudit1 libldap-2.5-0 libpam0g dns-root-data"
missing=""
for p in $LS_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "setup: need root to install:$missing" >&2; exit 1; fi
  echo "setup: installing Debian packages for the Libreswan interop tests:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ ! -x "$LIBRESWAN_ROOT/usr/libexec/ipsec/pluto" ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "setup: need root to unpack Libreswan into $LIBRESWAN_ROOT" >&2; exit 1; fi
  echo "setup: unpacking Debian's libreswan into $LIBRESWAN_ROOT"
  tmp="$(mktemp -d)"
  chmod 755 "$tmp"  # apt's sandbox user writes the download here
  (cd "$tmp" && apt-get download -qq libreswan 2>/dev/null || { apt-get update -qq && apt-get download -qq libreswan; })
  rm -rf "$LIBRESWAN_ROOT.new"
  dpkg -x "$tmp"/libreswan_*.deb "$LIBRESWAN_ROOT.new"
  rm -rf "$tmp" "$LIBRESWAN_ROOT"
  mv "$LIBRESWAN_ROOT.new" "$LIBRESWAN_ROOT"
fi
[ -d /usr/libexec/ipsec ] || { [ "$(id -u)" -eq 0 ] && mkdir -p /usr/libexec/ipsec; } || true
