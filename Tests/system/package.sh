#!/usr/bin/env bash
# Installs the built .deb into a copy of the minimal Debian root (debian-root.sh) with dpkg, in a
# container without the Swift toolchain, and checks what Debian's users rely on: every file where
# the unit and README say, the user and state directory made, the example config a conffile, the
# binaries running with Debian's libraries alone, remove keeping the state and the config, purge
# deleting them. Prints "ok …"/"FAIL …" lines and "done"; exits 0 only when every check passed.
#
#   Tests/system/package.sh PACKAGE.deb      (as root)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
deb=$(realpath "$1")
root=$("$repo/Tests/system/debian-root.sh")
work=$(mktemp -d /tmp/shipyard-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$root" "$work/root"
cp "$deb" "$work/root/shipyard.deb"
cp "$repo/examples/demo/shipyard.yaml" "$work/root/shipyard.yaml"

cat > "$work/root/check.sh" <<'CHECK'
#!/bin/sh
failed=0
check() {
  what=$1; shift
  if "$@" > /tmp/out 2>&1; then echo "ok $what"; else echo "FAIL $what: $*"; sed 's/^/  /' /tmp/out | head -20; failed=1; fi
}
mode() { stat -c '%a %U:%G' "$1"; }

check "dpkg -i" dpkg -i /shipyard.deb
check "the binaries are where the unit runs them" test -x /usr/bin/shipyardd -a -x /usr/bin/shipyardctl
check "the unit names /usr/bin/shipyardd" grep -q '^ExecStart=/usr/bin/shipyardd ' /lib/systemd/system/shipyardd.service
check "sysusers and tmpfiles snippets" test -f /usr/lib/sysusers.d/shipyardd.conf -a -f /usr/lib/tmpfiles.d/shipyardd.conf
check "man pages and completions" test -f /usr/share/man/man8/shipyardd.8.gz -a -f /usr/share/man/man1/shipyardctl.1.gz -a -f /usr/share/man/man5/shipyardd.yaml.5.gz -a -f /usr/share/bash-completion/completions/shipyardctl
check "the config reference names every top-level key" sh -c 'for key in stateDirectory projects tasks approvers eventSenders sequenceControl approvalPolicies notify http history stopGracePeriod taskStartTimeout taskFinishTimeout maxSequencesPerContext pollThreads; do zcat /usr/share/man/man5/shipyardd.yaml.5.gz | grep -q "$key" || { echo "no $key"; exit 1; }; done'
check "the license and README" sh -c 'grep -q "^License: Apache-2.0$" /usr/share/doc/shipyard/copyright && grep -q /usr/share/common-licenses/Apache-2.0 /usr/share/doc/shipyard/copyright && zcat /usr/share/doc/shipyard/README.md.gz | grep -q "^# Shipyard"'
check "the unit's documentation is installed" sh -c 'grep -q "^Documentation=man:shipyardd(8) man:shipyardd.yaml(5) man:shipyardctl(1)$" /lib/systemd/system/shipyardd.service'
check "the example config points at the installed reference" grep -q "shipyardd.yaml(5)" /etc/shipyardd/config.yaml.example
check "the user and group were made" sh -c 'getent passwd shipyard && getent group shipyard'
check "the state directory (2750 shipyard:shipyard)" sh -c '[ "$(stat -c "%a %U:%G" /var/lib/shipyardd)" = "2750 shipyard:shipyard" ]'
check "no request spool any more" sh -c '! test -e /var/lib/shipyardd/requests'
check "the socket unit" sh -c 'grep -q "^ListenStream=/run/shipyardd/shipyardd.sock$" /lib/systemd/system/shipyardd.socket && grep -q "^SocketMode=0660$" /lib/systemd/system/shipyardd.socket'
check "the example config is a conffile" sh -c 'dpkg-query -W -f="\${Conffiles}" shipyard | grep -q "/etc/shipyardd/config.yaml.example "'
check "no Swift toolchain here" sh -c '! ls /opt/swift 2>/dev/null && ! ldconfig -p | grep -q libswiftCore'
check "shipyardd --version is the package's version" sh -c '[ "$(shipyardd --version)" = "$(dpkg-query -W -f="\${Version}" shipyard)" ]'
# The untouched example names a token and programs this host does not have: said, in one pass.
check "shipyardd --check-config on the example names what is missing" sh -c '! shipyardd --check-config /etc/shipyardd/config.yaml.example 2>/tmp/check &&
  grep -q "error: passwordFile /etc/shipyardd/fulltour.token does not exist" /tmp/check &&
  grep -q "error: task \"je-deployment\": the program /usr/local/libexec/fulltour/deploy does not exist" /tmp/check &&
  grep -q "error: task \"je-test\": the program /usr/local/libexec/fulltour/test does not exist" /tmp/check &&
  [ "$(grep -c "error:" /tmp/check)" = 3 ] && grep -q "warning: approvers: no user \"alice\"" /tmp/check'
check "shipyardctl lint on the demo shipyard" shipyardctl lint /shipyard.yaml
check "not started without a config (no systemd running here either)" sh -c '! test -e /etc/shipyardd/config.yaml'

# remove keeps the state and the config; purge deletes them.
cp /etc/shipyardd/config.yaml.example /etc/shipyardd/config.yaml
touch /var/lib/shipyardd/history-marker
check "dpkg -r" dpkg -r shipyard
check "remove took the binaries" sh -c '! test -e /usr/bin/shipyardd'
check "remove kept the state" test -e /var/lib/shipyardd/history-marker
check "remove kept the config and the conffile" test -e /etc/shipyardd/config.yaml -a -e /etc/shipyardd/config.yaml.example
check "dpkg -P" dpkg -P shipyard
check "purge deleted the state" sh -c '! test -e /var/lib/shipyardd'
check "purge deleted the config" sh -c '! test -e /etc/shipyardd'
check "dpkg -i again after a purge" dpkg -i /shipyard.deb
[ "$failed" = 0 ] && echo done
CHECK
chmod 755 "$work/root/check.sh"

# Not booted: dpkg runs the maintainer scripts as on a host being installed (no running systemd).
status=0
timeout 300 systemd-nspawn -q --register=no --keep-unit --private-network --console=pipe -D "$work/root" /check.sh < /dev/null || status=$?
exit "$status"
