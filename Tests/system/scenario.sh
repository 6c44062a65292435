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
  # CONTEXT (its first 8 characters) PROJECT SERVICE STAGE SEQUENCE IMAGE STATE …
  as alice shipyardctl sequences | awk -v c="$(printf %.8s "$1")" -v s="$2" -v t="$3" '$1 == c && $4 == s && $7 == t { found = 1 } END { exit !found }'
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
check "shipyardd --check-config, as the daemon's user" runuser -u shipyard -- shipyardd --check-config /etc/shipyardd/config.yaml
mkdir -p /var/log/fulltour && chown shipyard:shipyard /var/log/fulltour
mkdir -p /etc/systemd/system/shipyardd.service.d
printf '[Service]\nReadWritePaths=/var/log/fulltour\n' > /etc/systemd/system/shipyardd.service.d/tasks.conf
systemctl daemon-reload
check "systemctl enable --now shipyardd" systemctl enable --now shipyardd
check "it runs as the shipyard user, in its sandbox" sh -c 'pid=$(systemctl show -p MainPID --value shipyardd) &&
  [ "$(stat -c %U /proc/$pid)" = shipyard ] && grep -q "^NoNewPrivs:[[:space:]]*1" /proc/$pid/status &&
  grep -q "^CapEff:[[:space:]]*0000000000000000" /proc/$pid/status'
check "the socket is systemd's, for the shipyard group (660 root:shipyard)" sh -c '[ "$(stat -c "%a %U:%G" /run/shipyardd/shipyardd.sock)" = "660 root:shipyard" ]'
check "the record is the daemon's alone" sh -c 'for f in /var/lib/shipyardd/shipyard.db*; do [ "$(stat -c "%a %U" "$f")" = "600 shipyard" ] || exit 1; done'
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
echo "== mallory, a member who is not an approver, tries what the shared files once allowed"
useradd -m -s /bin/bash mallory && usermod -aG shipyard mallory
# Her own client (perl comes with git): a proxy header naming alice, over the socket.
forged=$(runuser -u mallory -- perl -MIO::Socket::UNIX -e '
  my $s = IO::Socket::UNIX->new(Peer => "/run/shipyardd/shipyardd.sock") or die "connect: $!";
  print $s "POST /api/v1/approvals/$ARGV[0]/approve HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nX-Forwarded-User: alice\r\nContent-Length: 2\r\n\r\n{}";
  my $r = join("", <$s>); print((split / /, $r)[1], "\n");' "$(approval_id)" 2>&1)
check "her proxy header over the socket decides nothing (403: ${forged})" sh -c "[ '$forged' = 403 ] && runuser -u alice -- shipyardctl approvals | grep -q production"
check "she can create nothing in the state directory" sh -c '! runuser -u mallory -- touch /var/lib/shipyardd/planted 2>/dev/null && ! runuser -u mallory -- touch /var/lib/shipyardd/approvals/planted 2>/dev/null'
check "she cannot open the record" sh -c '! runuser -u mallory -- cat /var/lib/shipyardd/shipyard.db > /dev/null 2>&1'
runuser -u mallory -- perl -e 'for my $f (glob("/var/lib/shipyardd/*.json /var/lib/shipyardd/approvals/*.json")) { open(my $h, "<", $f) or next; flock($h, 1); push @h, $h } sleep 60' &
holder=$!
sleep 1
before=$(date +%s%N)
check "approve as a member" as alice shipyardctl approve "$(approval_id)" --reason "release notes checked"
took=$(( ($(date +%s%N) - before) / 1000000 ))
check "her locks on what she can read held nothing up (approve took ${took} ms)" test "$took" -lt 5000
kill "$holder" 2>/dev/null
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

echo "== requests while the daemon is down or restarting wait in the socket and are answered"
check "systemctl stop shipyardd (its socket stays)" sh -c 'systemctl stop shipyardd && systemctl is-active --quiet shipyardd.socket'
out=$(as alice shipyardctl trigger delivery --project fulltour --service other --timeout 60 --output json 2>/tmp/trigger.err); code=$?
check "a member's trigger starts the daemon through its socket and is answered" sh -c "[ $code -eq 0 ] && echo \"\$1\" | grep -q '\"context\"' && systemctl is-active --quiet shipyardd" sh "$out"
check "a service never delivered is warned of" grep -q "warning: fulltour has never delivered other (it has delivered helloservice)" /tmp/trigger.err
third=$(echo "$out" | sed -n 's/.*"context":"\([^"]*\)".*/\1/p')
# Nothing runs while it restarts (a task cut short would be run again, with a warning).
wait_for "that delivery waits for approval" 90 stage_state "$third" production waitingForApproval
as alice shipyardctl sync --timeout 60 > /tmp/during-restart.out 2>&1 &
cli=$!
systemctl restart shipyardd
wait $cli; code=$?
check "a member's request during systemctl restart is answered" sh -c "[ $code -eq 0 ] && grep -q 'fulltour: main is at' /tmp/during-restart.out"

echo "== the daemon's journal has no warning this scenario did not provoke"
unexpected=$(journalctl _SYSTEMD_UNIT=shipyardd.service -p warning --no-pager -o cat | grep -v -e 'config reload refused' -e 'mallory may not resolve approvals' || true)
check "no unprovoked warnings: ${unexpected:-none}" test -z "$unexpected"
