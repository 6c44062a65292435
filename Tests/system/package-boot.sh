#!/usr/bin/env bash
# The .deb under a real systemd: boots a copy of the minimal Debian root (debian-root.sh) with
# systemd-nspawn -b and, from a unit inside, installs the package without a config (the daemon
# stays off), with one (enabled and started), again (restarted: an upgrade), then removes it
# (stopped, config and state kept) and purges it (gone). Prints "ok …"/"FAIL …" lines and
# "done"; exits 0 only when every check passed.
#
#   Tests/system/package-boot.sh PACKAGE.deb      (as root)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
deb=$(realpath "$1")
root=$("$repo/Tests/system/debian-root.sh")
work=$(mktemp -d /tmp/shipyard-package-boot.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$root" "$work/root"
cp "$deb" "$work/root/shipyard.deb"
cp "$repo/examples/demo/shipyard.yaml" "$work/root/shipyard.yaml"
mkdir -p "$work/out"

cat > "$work/root/usr/local/sbin/package-scenario" <<'SCENARIO'
#!/bin/sh
exec > /out/results 2>/out/scenario.log
failed=0
check() {
  what=$1; shift
  if "$@" >>/out/scenario.log 2>&1; then echo "ok $what"; else echo "FAIL $what: $*"; failed=1; fi
}
wait_for() { i=0; while [ $i -lt 100 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; i=$((i+1)); done; return 1; }
pid() { systemctl show -p MainPID --value shipyardd; }

# An upstream repository for the config to watch.
git init -q -b main /srv/upstream.git --bare
git clone -q /srv/upstream.git /tmp/work && cp /shipyard.yaml /tmp/work/ && \
  git -C /tmp/work add . && git -C /tmp/work -c user.name=t -c user.email=t@t commit -qm demo && git -C /tmp/work push -q origin main

check "install without a config" dpkg -i /shipyard.deb
check "not enabled without a config" sh -c '! systemctl is-enabled --quiet shipyardd'
check "not running without a config" sh -c '! systemctl is-active --quiet shipyardd'
printf 'projects:\n  - name: demo\n    upstream: file:///srv/upstream.git\n' > /etc/shipyardd/config.yaml
chgrp shipyard /etc/shipyardd/config.yaml && chmod 640 /etc/shipyardd/config.yaml
check "install again with a config" dpkg -i /shipyard.deb
check "enabled once configured" systemctl is-enabled --quiet shipyardd
check "started once configured" wait_for systemctl is-active --quiet shipyardd
first=$(pid)
check "an upgrade (the same version again)" dpkg -i /shipyard.deb
check "an upgrade restarts the daemon" wait_for sh -c "systemctl is-active --quiet shipyardd && [ \"\$(systemctl show -p MainPID --value shipyardd)\" != $first ] && [ \"\$(systemctl show -p MainPID --value shipyardd)\" != 0 ]"
check "the daemon made its record" wait_for test -e /var/lib/shipyardd/shipyard.db
check "the socket is enabled and listening" sh -c 'systemctl is-enabled --quiet shipyardd.socket && systemctl is-active --quiet shipyardd.socket && [ "$(stat -c "%a %U:%G" /run/shipyardd/shipyardd.sock)" = "660 root:shipyard" ]'
check "shipyardctl status over the socket" shipyardctl status
check "remove" dpkg -r shipyard
check "remove stopped the daemon and its socket" sh -c '! systemctl is-active --quiet shipyardd && ! systemctl is-active --quiet shipyardd.socket'
check "remove kept the config and the record" test -e /etc/shipyardd/config.yaml -a -e /var/lib/shipyardd/shipyard.db
check "purge" dpkg -P shipyard
check "purge deleted the config and the state" sh -c '! test -e /etc/shipyardd && ! test -e /var/lib/shipyardd'
[ "$failed" = 0 ] && echo done
systemctl poweroff
SCENARIO
chmod 755 "$work/root/usr/local/sbin/package-scenario"
cat > "$work/root/etc/systemd/system/package-scenario.service" <<'UNIT'
[Unit]
Description=Shipyard system test: the .deb under systemd
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/package-scenario
UNIT
ln -s /etc/systemd/system/package-scenario.service "$work/root/etc/systemd/system/multi-user.target.wants/package-scenario.service"

status=0
timeout 300 systemd-nspawn -q --register=no --keep-unit --private-network -D "$work/root" -b \
  --bind="$work/out:/out" > "$work/console.log" 2>&1 || status=$?
cat "$work/out/results" 2>/dev/null || echo "FAIL no results: the scenario did not run (nspawn exit $status)"
if ! grep -q '^done$' "$work/out/results" 2>/dev/null; then
  echo "--- scenario log"; tail -40 "$work/out/scenario.log" 2>/dev/null
  echo "--- console"; tail -30 "$work/console.log"
  exit 1
fi
