#!/usr/bin/env bash
# Makes (once) and prints the path of a minimal Debian bookworm root for the system tests:
# debootstrap --variant=minbase with systemd and the libraries Shipyard loads, cached in
# .build/nspawn/ and made again when the package list changes. Run as root.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=$repo/.build/nspawn
root=$cache/bookworm
packages=systemd,systemd-sysv,dbus,git,libgit2-1.5,libyaml-0-2,libsqlite3-0,libpq5,libcurl4,passwd
mkdir -p "$cache"
if [ ! -f "$root/.shipyard-root-$packages" ]; then
  rm -rf "$root" "$root.tmp"
  echo "debian-root.sh: debootstrap --variant=minbase bookworm into $root (once)" >&2
  if ! debootstrap --variant=minbase --include="$packages" bookworm "$root.tmp" http://deb.debian.org/debian > "$cache/debootstrap.log" 2>&1; then
    tail -20 "$cache/debootstrap.log" >&2
    exit 2
  fi
  mv "$root.tmp" "$root"
  touch "$root/.shipyard-root-$packages"
fi
echo "$root"
