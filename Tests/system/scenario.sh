#!/bin/bash
# Runs inside the booted container (see boot.sh), as root at boot: installs Shipyard's unit as
# README's "Installing as a systemd service" says, then uses it as operators would. Each step
# appends "ok STEP" or "FAIL STEP: why" to /out/results; "done" ends them; then it powers off.
set -u
results=/out/results
: > "$results"
exec >> /out/scenario.log 2>&1
start=$(date +%s)
ok() { echo "ok $* (+$(( $(date +%s) - start ))s)" >> "$results"; }
fail() { echo "FAIL $* (+$(( $(date +%s) - start ))s)" >> "$results"; }
check() { local step=$1; shift; if "$@"; then ok "$step"; else fail "$step: $*"; fi; }
# wait_for STEP SECONDS COMMAND...: polls COMMAND every 0.2 s, at most SECONDS.
wait_for() {
  local step=$1 seconds=$2; shift 2
  for _ in $(seq 1 $((seconds * 5))); do
    if "$@" > /dev/null 2>&1; then ok "$step"; return 0; fi
    sleep 0.2
  done
  fail "$step: $* never held within ${seconds}s"; return 1
}
finish() {
  journalctl -u shipyardd --no-pager -o short-iso > /out/journal.txt 2>&1
  echo done >> "$results"
  systemctl poweroff
  exit 0
}
trap finish EXIT
as() { local user=$1; shift; runuser -u "$user" -- "$@"; }
approval_id() { as alice shipyardctl approvals --output json | grep -o '"id" *: *"[^"]*"' | head -1 | sed 's/.*"\([^"]*\)"$/\1/'; }
stage_state() {  # stage_state CONTEXT STAGE STATE
  as alice shipyardctl sequences | awk -v c="$1" -v s="$2" -v t="$3" '$1 == c && $3 == s && $6 == t { found = 1 } END { exit !found }'
}

echo "== an upstream owned by its maintainers, not by the daemon"
useradd -r -m -d /srv/git maintainer
runuser -u maintainer -- git init -q --bare -b main /srv/git/fulltour.git
runuser -u maintainer -- sh -c 'cd /srv/git && git init -q -b main work && cd work &&
  git config user.email m@example.invalid && git config user.name maintainer &&
  mkdir -p charts/helloservice && echo "replicas: 1" > charts/helloservice/values.yaml &&
  cp /root/shipyard-with-approval.yaml shipyard.yaml 2>/dev/null || true'
cp /root/shipyard-with-approval.yaml /srv/git/work/shipyard.yaml && chown maintainer /srv/git/work/shipyard.yaml
runuser -u maintainer -- sh -c 'cd /srv/git/work && git add -A && git commit -qm tutorial && git push -q /srv/git/fulltour.git HEAD:main'

echo "== task programs: deploy writes to /var/log/fulltour, which the drop-in opens"
mkdir -p /usr/local/libexec/fulltour
cat > /usr/local/libexec/fulltour/deploy <<'EOF'
#!/bin/sh
set -e
nice -n 5 true
echo "$SHIPYARD_STAGE $SHIPYARD_SERVICE ${SHIPYARD_IMAGE:-none} home=$HOME" >> /var/log/fulltour/deploy.log
EOF
printf '#!/bin/sh\necho tested\n' > /usr/local/libexec/fulltour/test
chmod 755 /usr/local/libexec/fulltour/deploy /usr/local/libexec/fulltour/test

echo "== README: Installing as a systemd service"
check "systemd-sysusers" systemd-sysusers
check "systemd-tmpfiles --create" systemd-tmpfiles --create
check "install the example config" install -m 640 -g shipyard /etc/shipyardd/config.yaml.example /etc/shipyardd/config.yaml
cat > /etc/shipyardd/config.yaml <<'EOF'
projects:
  - name: fulltour
    upstream: file:///srv/git/fulltour.git
    pollInterval: 1s
tasks:
  je-deployment:
    command: ["/usr/local/libexec/fulltour/deploy"]
    timeout: 5m
  je-test:
    command: ["/usr/local/libexec/fulltour/test"]
approvers:
  users: [alice]
EOF
check "shipyardd --check-config" shipyardd --check-config /etc/shipyardd/config.yaml
mkdir -p /var/log/fulltour && chown shipyard:shipyard /var/log/fulltour
mkdir -p /etc/systemd/system/shipyardd.service.d
printf '[Service]\nReadWritePaths=/var/log/fulltour\n' > /etc/systemd/system/shipyardd.service.d/tasks.conf
systemctl daemon-reload
check "systemctl enable --now shipyardd" systemctl enable --now shipyardd
check "it runs as the shipyard user, in its sandbox" sh -c 'pid=$(systemctl show -p MainPID --value shipyardd) &&
  [ "$(stat -c %U /proc/$pid)" = shipyard ] && grep -q "^NoNewPrivs:[[:space:]]*1" /proc/$pid/status &&
  grep -q "^CapEff:[[:space:]]*0000000000000000" /proc/$pid/status'
useradd -m -s /bin/bash alice && useradd -m -s /bin/bash eve
check "usermod -aG shipyard alice" usermod -aG shipyard alice
wait_for "the daemon loads the shipyard from an upstream it does not own" 60 sh -c 'runuser -u alice -- shipyardctl status --output json | grep -q "\"shipyardCommit\" *: *\"[0-9a-f]\{40\}\""'
check "shipyardctl sync as a member" as alice shipyardctl sync

echo "== a member triggers and approves; production deploys"
context=$(as alice shipyardctl trigger delivery --project fulltour --service helloservice --image ghcr.io/podtato-head/podtatoserver:v0.1.1 --output json | sed 's/.*"context":"\([^"]*\)".*/\1/')
check "trigger as a member" test -n "$context"
wait_for "qa runs, production waits for approval" 90 stage_state "$context" production waitingForApproval
out=$(as eve shipyardctl approvals 2>&1); code=$?
check "a non-member is refused with what to do" sh -c "[ $code -eq 1 ] && echo \"\$1\" | grep -q 'usermod -aG shipyard eve'" sh "$out"
out=$(as eve shipyardctl approve "$(approval_id)" 2>&1); code=$?
check "a non-member cannot approve" sh -c "[ $code -eq 1 ] && echo \"\$1\" | grep -q 'permission denied'" sh "$out"
check "approve as a member" as alice shipyardctl approve "$(approval_id)" --reason "release notes checked"
wait_for "production deploys" 90 stage_state "$context" production finished
check "the task wrote where the drop-in opened, with HOME set" grep -q "^production helloservice ghcr.io/podtato-head/podtatoserver:v0.1.1 home=/var/lib/shipyardd/home$" /var/log/fulltour/deploy.log

echo "== systemctl reload: works without procps, and fails on a refused config"
check "no /bin/kill here (no procps)" sh -c '! command -v kill >/dev/null 2>&1 || [ "$(command -v kill)" = kill ]'
check "systemctl reload" systemctl reload shipyardd
cp /etc/shipyardd/config.yaml /root/config.good
echo "pollIntervall: 5s" >> /etc/shipyardd/config.yaml
check "systemctl reload fails on a refused config" sh -c '! systemctl reload shipyardd'
check "the daemon runs on with the config it had" systemctl is-active --quiet shipyardd
cp /root/config.good /etc/shipyardd/config.yaml
check "systemctl reload after the fix" systemctl reload shipyardd

echo "== a restart keeps a pending approval; SIGKILL is followed by a restart that carries on"
second=$(as alice shipyardctl trigger delivery --project fulltour --service helloservice --image ghcr.io/podtato-head/podtatoserver:v0.1.2 --output json | sed 's/.*"context":"\([^"]*\)".*/\1/')
wait_for "the second delivery waits for approval" 90 stage_state "$second" production waitingForApproval
pending=$(approval_id)
check "systemctl restart" systemctl restart shipyardd
wait_for "the approval is still pending after the restart" 30 sh -c "runuser -u alice -- shipyardctl approvals | grep -q '${pending:0:8}'"
before=$(systemctl show -p MainPID --value shipyardd)
check "SIGKILL the daemon (bash's own kill: there is no /bin/kill)" kill -KILL "$before"
wait_for "systemd restarts the daemon" 30 sh -c "p=\$(systemctl show -p MainPID --value shipyardd); [ \"\$p\" != 0 ] && [ \"\$p\" != $before ] && systemctl is-active --quiet shipyardd && runuser -u alice -- shipyardctl status >/dev/null"
wait_for "the approval is still pending after SIGKILL" 30 sh -c "runuser -u alice -- shipyardctl approvals | grep -q '${pending:0:8}'"
check "approve after the restart" as alice shipyardctl approve "$pending"
wait_for "the second delivery deploys" 90 stage_state "$second" production finished

echo "== the daemon's journal has no warning this scenario did not provoke"
unexpected=$(journalctl _SYSTEMD_UNIT=shipyardd.service -p warning --no-pager -o cat | grep -v 'config reload refused' || true)
check "no unprovoked warnings: ${unexpected:-none}" test -z "$unexpected"
