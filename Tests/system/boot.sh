#!/usr/bin/env bash
# Boots a minimal Debian bookworm under a real systemd (systemd-nspawn -b, no network) and runs
# scenario.sh in it: Shipyard installed as README's "Installing as a systemd service" says, then
# used by operators. Prints scenario.sh's results; exits 0 only when every step passed.
#
#   Tests/system/boot.sh [BIN_DIR]       (as root; BIN_DIR defaults to .build/debug)
#
# The root is made once by debian-root.sh (debootstrap --variant=minbase, cached in .build/nspawn/).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
configuration=${CONFIGURATION:-debug}
root=$("$repo/Tests/system/debian-root.sh")

work=$(mktemp -d /tmp/shipyard-boot.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$root" "$work/root"

# README: `sudo make install PREFIX=/usr` = a build, then make install-files; the build is the
# one the tests run with, installed into the container's root exactly where make puts it.
make -s -C "$repo" install-files CONFIGURATION="$configuration" PREFIX=/usr DESTDIR="$work/root" > "$work/install.log" 2>&1 \
  || { cat "$work/install.log" >&2; exit 2; }
install -m 755 "$repo/Tests/system/scenario.sh" "$work/root/usr/local/sbin/shipyard-scenario"
cp "$repo/examples/demo/shipyard-with-approval.yaml" "$work/root/root/shipyard-with-approval.yaml"
cat > "$work/root/etc/systemd/system/shipyard-scenario.service" <<'UNIT'
[Unit]
Description=Shipyard system test: README's installation, used by operators
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/shipyard-scenario
StandardOutput=file:/out/scenario.log
StandardError=inherit
UNIT
ln -s /etc/systemd/system/shipyard-scenario.service "$work/root/etc/systemd/system/multi-user.target.wants/shipyard-scenario.service"
mkdir -p "$work/out"

# The debug build loads the Swift runtime from the toolchain: lend it read-only.
toolchain=()
[ -d /opt/swift ] && toolchain=(--bind-ro=/opt/swift)
status=0
timeout 600 systemd-nspawn -q --register=no --keep-unit --private-network -D "$work/root" -b \
  "${toolchain[@]}" --bind="$work/out:/out" > "$work/console.log" 2>&1 || status=$?

cat "$work/out/results" 2>/dev/null || echo "FAIL no results: the scenario did not run (nspawn exit $status)"
if [ "$status" -ne 0 ] || ! grep -q '^done$' "$work/out/results" 2>/dev/null || grep -q '^FAIL' "$work/out/results"; then
  echo "--- scenario log" ; cat "$work/out/scenario.log" 2>/dev/null | tail -60
  echo "--- shipyardd journal"; cat "$work/out/journal.txt" 2>/dev/null | tail -60
  echo "--- console"; tail -40 "$work/console.log"
  exit 1
fi
