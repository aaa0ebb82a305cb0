#!/bin/sh
# Container entry point: check the configuration (exit 2 with file, key and reason), make sure the
# TUN device can exist, then run the daemon in the foreground as PID 1's only child (exec), so that
# `docker stop` (SIGTERM) removes its routes, rules and SAs cleanly. Extra arguments go to the daemon.
set -eu
config=${SNAKESWAN_CONFIG:-/etc/snakeswan/snakeswan.toml}
control=${SNAKESWAN_CONTROL:-/run/snakeswan/control.sock}
snakeswan check -c "$config"
if [ ! -c /dev/net/tun ] && ! grep -q 'dataplane *= *false' "$config"; then
  echo "snakeswan: /dev/net/tun is missing: run the container with --device /dev/net/tun (and --cap-add NET_ADMIN)" >&2
  exit 1
fi
mkdir -p "$(dirname "$control")"
exec snakeswan daemon -c "$config" --control "$control" "$@"
