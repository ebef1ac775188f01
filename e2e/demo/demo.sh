#!/usr/bin/env bash
# make demo: the istio-sidecar driver end to end on this machine, as root, on a fresh Debian host.
#
# Installs what it needs (build/host-setup.sh), builds pilot-agent, Nomad v1.6.3, the plugin, the stand-in
# Envoy (unless ISTIO_SIDECAR_ENVOY names a real one) and the testapp; starts a throwaway Nomad agent (server and
# client on loopback, ports 14646-14648 unless DEMO_HTTP_PORT, DEMO_RPC_PORT, DEMO_SERF_PORT say otherwise,
# everything under one temporary directory); stores a throwaway mesh root certificate in Nomad Variables; runs
# example/bridge-mode.nomad.hcl, whose app calls a second service through the sidecar; shows the proof and where
# to look; then stops everything and checks that no process, network namespace or rule is left. It cleans up the
# same way on failure and on Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

HTTP_PORT=${DEMO_HTTP_PORT:-14646}
RPC_PORT=${DEMO_RPC_PORT:-14647}
SERF_PORT=${DEMO_SERF_PORT:-14648}
EXAMPLE=example/bridge-mode.nomad.hcl
UPSTREAM=e2e/demo/upstream.nomad.hcl
UPSTREAM_JOB=demo-upstream
CGROUP_PARENT=/istio-sidecar-demo
ISTIO_TAG=istio-sidecar:alloc=

DEMO_DIR=""
AGENT_PID=""
MESH_JOB=""
ALLOCS=()
CLEANED=0

step() { printf '\n==> %s\n' "$*"; }
say() { printf '    %s\n' "$*"; }
indent() { sed 's/^/      /'; }
die() {
  printf '\ndemo: %s\n' "$*" >&2
  exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds; gives up early if the agent died.
wait_for() {
  local timeout=$1 what=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$AGENT_PID" ] && ! kill -0 "$AGENT_PID" 2>/dev/null; then
      die "the Nomad agent exited while waiting for $what; its log is $DEMO_DIR/agent.log"
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${timeout}s waiting for $what"
    sleep 0.5
  done
}

# The demo's own agent only: no NOMAD_* setting of the user's shell (address, token, namespace) may leak in.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^NOMAD_' || true)
export NOMAD_ADDR="http://127.0.0.1:$HTTP_PORT"

preflight() {
  [ "$(id -u)" = 0 ] || die "run as root: the Nomad client manages cgroups, network namespaces and iptables"
  for p in "$HTTP_PORT" "$RPC_PORT" "$SERF_PORT"; do
    if ! [[ $p =~ ^[0-9]+$ ]] || [ "$p" -lt 1024 ] || [ "$p" -gt 65535 ]; then
      die "port $p is not a number in 1024-65535"
    fi
  done
  MESH_JOB=$(sed -n 's/^job "\([A-Za-z0-9_-]*\)".*/\1/p' "$EXAMPLE")
  [ -n "$MESH_JOB" ] || die "no job name found in $EXAMPLE"
}

build() {
  step "Host setup and builds (cached after the first run; a cold build of Nomad and pilot-agent takes minutes)"
  build/host-setup.sh
  command -v ss >/dev/null || die "ss (iproute2) is missing"
  for p in "$HTTP_PORT" "$RPC_PORT" "$SERF_PORT"; do
    [ -z "$(ss -Htuln "sport = :$p")" ] || die "port $p is in use; set DEMO_HTTP_PORT, DEMO_RPC_PORT, DEMO_SERF_PORT"
  done
  PILOT_AGENT=$(build/pilot-agent.sh)
  TEMPLATE="$(dirname "$PILOT_AGENT")/envoy_bootstrap_tmpl.json"
  NOMAD=$(build/nomad.sh)
  make -s --no-print-directory build
  if [ -n "${ISTIO_SIDECAR_ENVOY:-}" ]; then
    ENVOY=$(cd "$(dirname "$ISTIO_SIDECAR_ENVOY")" && pwd)/$(basename "$ISTIO_SIDECAR_ENVOY")
    [ -x "$ENVOY" ] || die "ISTIO_SIDECAR_ENVOY=$ISTIO_SIDECAR_ENVOY is not executable"
  else
    make -s --no-print-directory standin
    ENVOY=$ROOT/bin/standin-envoy
  fi
  go build -o bin/testapp ./testdoubles/testapp
  # The stand-in marks itself with an all-zero build SHA in `envoy --version`.
  if "$ENVOY" --version 2>&1 | grep -q 0000000000000000000000000000000000000000; then
    ENVOY_KIND="the stand-in Envoy (testdoubles/standin-envoy), not a real Envoy"
  else
    ENVOY_KIND="a real Envoy: $("$ENVOY" --version 2>&1 | grep -m1 version || true)"
  fi
  say "Nomad:       $NOMAD ($("$NOMAD" version | head -n1))"
  say "pilot-agent: $PILOT_AGENT"
  say "Envoy:       $ENVOY, $ENVOY_KIND"
  say "plugin:      $ROOT/bin/istio-sidecar; app: $ROOT/bin/testapp"
}

start_agent() {
  step "Starting a Nomad agent (server and client) on 127.0.0.1:$HTTP_PORT"
  DEMO_DIR=$(mktemp -d /tmp/istio-sidecar-demo.XXXXXX)
  chmod 755 "$DEMO_DIR" # the proxy runs as istio-proxy in a task directory below it
  mkdir "$DEMO_DIR/data" "$DEMO_DIR/plugins"
  cp bin/istio-sidecar "$DEMO_DIR/plugins/istio-sidecar"
  iptables-save -t filter | grep '^[:-]' | sed 's/ \[[0-9:]*\]$//' | sort >"$DEMO_DIR/host-filter.before" || true
  iptables-save -t nat | grep '^[:-]' | sed 's/ \[[0-9:]*\]$//' | sort >"$DEMO_DIR/host-nat.before" || true
  cat >"$DEMO_DIR/agent.hcl" <<EOF
name                 = "istio-sidecar-demo"
data_dir             = "$DEMO_DIR/data"
plugin_dir           = "$DEMO_DIR/plugins"
bind_addr            = "127.0.0.1"
log_level            = "INFO"
disable_update_check = true

ports {
  http = $HTTP_PORT
  rpc  = $RPC_PORT
  serf = $SERF_PORT
}

advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

server {
  enabled          = true
  bootstrap_expect = 1
}

client {
  enabled       = true
  servers       = ["127.0.0.1:$RPC_PORT"]
  cni_path      = "/usr/lib/cni"
  cgroup_parent = "$CGROUP_PARENT"
}

consul {
  auto_advertise   = false
  server_auto_join = false
  client_auto_join = false
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}

plugin "istio-sidecar" {
  config {
    pilot_agent_path        = "$PILOT_AGENT"
    envoy_path              = "$ENVOY"
    bootstrap_template_path = "$TEMPLATE"
  }
}
EOF
  # Its own session: a Ctrl-C in the terminal must reach this script, which stops the jobs first, and not the
  # agent, which would exit and leave the tasks running.
  setsid "$NOMAD" agent -config "$DEMO_DIR/agent.hcl" >"$DEMO_DIR/agent.log" 2>&1 &
  AGENT_PID=$!
  say "agent pid $AGENT_PID, config $DEMO_DIR/agent.hcl, log $DEMO_DIR/agent.log"
  wait_for 90 "the node with a healthy istio-sidecar driver" driver_healthy
  say "node ready; driver istio-sidecar detected and healthy"
  say "try it yourself meanwhile: NOMAD_ADDR=$NOMAD_ADDR $NOMAD node status -self -verbose"
}

driver_healthy() {
  [ "$(nomad_cli node status -self -t '{{with index .Drivers "istio-sidecar"}}{{.Healthy}}{{end}}')" = true ]
}

nomad_cli() { "$NOMAD" "$@"; }

root_cert() {
  step "A throwaway mesh root certificate, stored in Nomad Variables"
  local cert=$DEMO_DIR/root-cert.pem how
  if command -v openssl >/dev/null; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout /dev/null -days 1 \
      -subj "/O=istio-sidecar demo/CN=istio-sidecar demo root" -out "$cert" 2>/dev/null
    how=openssl
  else
    go run ./e2e/demo/mkrootcert >"$cert"
    how="Go (e2e/demo/mkrootcert)"
  fi
  # With no istiod in this demo the token is never presented; the example's template reads both keys.
  nomad_cli var put -force "nomad/jobs/$MESH_JOB" root_cert=@"$cert" istio_token=no-istiod-in-this-demo >/dev/null
  say "made with $how; stored at nomad/jobs/$MESH_JOB (keys root_cert, istio_token)"
  say "the example's template writes it to secrets/root-cert.pem, where the driver reads it"
}

# running_alloc JOB: prints the ID of the job's running allocation, fails while there is none.
running_alloc() {
  local out
  out=$(nomad_cli job allocs -t '{{range .}}{{if eq .ClientStatus "running"}}{{.ID}}{{"\n"}}{{end}}{{end}}' "$1")
  [ -n "$out" ] && printf '%s\n' "${out%%$'\n'*}"
}

note_allocs() {
  local job id
  for job in "$UPSTREAM_JOB" "$MESH_JOB"; do
    while read -r id; do
      [ -n "$id" ] && [[ " ${ALLOCS[*]} " != *" $id "* ]] && ALLOCS+=("$id")
    done < <(nomad_cli job allocs -t '{{range .}}{{.ID}}{{"\n"}}{{end}}' "$job" 2>/dev/null || true)
  done
  return 0
}

run_jobs() {
  step "Running the upstream service ($UPSTREAM): testapp serve in a bridge-mode group of its own"
  nomad_cli job run -detach -var "testapp_path=$ROOT/bin/testapp" "$UPSTREAM" >/dev/null
  wait_for 90 "the upstream allocation to run" running_alloc "$UPSTREAM_JOB"
  UP_ALLOC=$(running_alloc "$UPSTREAM_JOB")
  note_allocs
  UP_IP=$(nomad_cli alloc status -t '{{.NetworkStatus.Address}}' "$UP_ALLOC")
  [[ $UP_IP =~ ^[0-9.]+$ ]] || die "no address for allocation $UP_ALLOC: $UP_IP"
  TARGET=$UP_IP:8080
  say "allocation $UP_ALLOC listens on $TARGET inside its own network namespace"

  step "Running the example ($EXAMPLE): a meshed group whose client calls $TARGET"
  nomad_cli job run -detach -var "testapp_path=$ROOT/bin/testapp" -var "call_target=$TARGET" \
    -var drain_duration=1s "$EXAMPLE" >/dev/null
  wait_for 120 "the meshed allocation to run" running_alloc "$MESH_JOB"
  MESH_ALLOC=$(running_alloc "$MESH_JOB")
  note_allocs
  wait_for 60 "a successful call in the client's log" client_called_ok
  say "allocation $MESH_ALLOC runs: istio-proxy (prestart sidecar), server, client"
}

client_called_ok() {
  local out
  out=$(nomad_cli alloc logs "$MESH_ALLOC" client)
  [[ $out == *"call $TARGET ok"* ]]
}

show() {
  local client_log proxy_err line up_log
  step "What happened"
  client_log=$(nomad_cli alloc logs "$MESH_ALLOC" client)
  say "The app (task client) called $TARGET; its first lines (nomad alloc logs $MESH_ALLOC client):"
  sed -n '1,3p' <<<"$client_log" | indent

  if [[ $ENVOY_KIND == "the stand-in"* ]]; then
    proxy_err=$(nomad_cli alloc logs -stderr "$MESH_ALLOC" istio-proxy)
    line=$(grep -m1 -F "\"original_dst\":\"$TARGET\"" <<<"$proxy_err" || true)
    [ -n "$line" ] || die "the proxy logged no connection to $TARGET: the call did not go through the sidecar"
    say "The call went through the sidecar: iptables sent the app's connection to the proxy's outbound listener"
    say "(15001), which read the original destination and forwarded it. The proxy's connection log"
    say "(nomad alloc logs -stderr $MESH_ALLOC istio-proxy):"
    printf '%s\n' "$line" | indent
  else
    say "With a real Envoy there is no stand-in connection log; the REDIRECT counters below show the capture."
  fi
  up_log=$(nomad_cli alloc logs "$UP_ALLOC" server)
  say "The upstream saw it arrive (nomad alloc logs $UP_ALLOC server):"
  grep -m1 'GET /' <<<"$up_log" | indent || true

  step "Where to look: the istio-proxy task's events (nomad alloc status $MESH_ALLOC)"
  nomad_cli alloc status "$MESH_ALLOC" | awk '/^Task "istio-proxy"/ {on=1} /^Task "/ && !/istio-proxy/ {on=0} on' | indent

  step "Where to look: the rules in the group's namespace (ip netns exec $MESH_ALLOC iptables-save | grep ISTIO)"
  ip netns exec "$MESH_ALLOC" iptables-save | grep ISTIO | indent
  say "Connections the outbound capture redirected so far (nat sees the first packet of each; [packets:bytes]):"
  ip netns exec "$MESH_ALLOC" iptables-save -c -t nat | grep -F -- '-A ISTIO_REDIRECT' | indent
  say "Proxy: $ENVOY_KIND"
}

# leftover_procs: PIDs of processes whose executable, working directory, arguments or environment mention the
# demo directory: the plugin, executors, pilot-agent, Envoy and the apps all do.
leftover_procs() {
  local p pid exe cwd
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] && continue
    exe=$(readlink "$p/exe" 2>/dev/null || true)
    cwd=$(readlink "$p/cwd" 2>/dev/null || true)
    if [[ $exe == "$DEMO_DIR"/* || $cwd == "$DEMO_DIR"/* ]] ||
      grep -qaF "$DEMO_DIR/" "$p/cmdline" "$p/environ" 2>/dev/null; then
      printf '%s\n' "$pid"
    fi
  done
}

allocs_terminal() {
  local job out
  for job in "$UPSTREAM_JOB" "$MESH_JOB"; do
    out=$(nomad_cli job allocs -t '{{range .}}{{.ClientStatus}} {{end}}' "$job" 2>/dev/null || true)
    [[ $out != *running* && $out != *pending* ]] || return 1
  done
}

stop_all() {
  local job deadline
  if [ -z "$AGENT_PID" ] || ! kill -0 "$AGENT_PID" 2>/dev/null; then
    return 0
  fi
  note_allocs
  for job in "$MESH_JOB" "$UPSTREAM_JOB"; do
    [ -n "$job" ] && nomad_cli job stop -detach "$job" >/dev/null 2>&1 && say "nomad job stop $job"
  done
  deadline=$((SECONDS + 90))
  until allocs_terminal; do
    [ "$SECONDS" -lt "$deadline" ] || {
      say "allocations still not stopped after 90s"
      break
    }
    sleep 0.5
  done
  say "allocations stopped: ${ALLOCS[*]:-none}"
  kill -INT "$AGENT_PID" 2>/dev/null || true
  deadline=$((SECONDS + 30))
  while kill -0 "$AGENT_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  if kill -0 "$AGENT_PID" 2>/dev/null; then
    say "agent still running 30s after SIGINT: SIGKILL"
    kill -KILL "$AGENT_PID" 2>/dev/null || true
  fi
  wait "$AGENT_PID" 2>/dev/null || true
  say "agent (pid $AGENT_PID) stopped"
}

# verify prints what is left of the demo, removes it, and returns the number of leftovers.
verify() {
  local bad=0 pids id rules cmd line added
  step "Checking that nothing is left behind"
  mapfile -t pids < <(sleep 2; leftover_procs)
  if [ ${#pids[@]} -eq 0 ]; then
    say "processes (plugin, executors, pilot-agent, Envoy, apps): none left"
  else
    bad=$((bad + ${#pids[@]}))
    for id in "${pids[@]}"; do
      cmd=$(tr '\0' ' ' <"/proc/$id/cmdline" 2>/dev/null || true)
      say "LEFT: process $id: $cmd (now SIGKILLed)"
      kill -KILL "$id" 2>/dev/null || true
    done
  fi

  for id in "${ALLOCS[@]}"; do
    if [ -e "/var/run/netns/$id" ]; then
      bad=$((bad + 1))
      say "LEFT: network namespace $id (now deleted)"
      ip netns delete "$id" 2>/dev/null || true
    else
      say "network namespace of allocation $id: gone"
    fi
  done

  rules=$( (iptables-save; ip6tables-save) 2>/dev/null || true)
  if grep -qF -e "$ISTIO_TAG" -e ':ISTIO' <<<"$rules"; then
    bad=$((bad + 1))
    say "LEFT: interception rules in the host namespace:"
    grep -F -e "$ISTIO_TAG" -e ':ISTIO' <<<"$rules" | indent
  else
    say "interception rules (ISTIO_* chains, rules tagged $ISTIO_TAG<alloc>) in the host namespace: none"
  fi
  for id in "${ALLOCS[@]}"; do
    if grep -qF "$id" <<<"$rules"; then
      bad=$((bad + 1))
      say "LEFT: host iptables rules naming allocation $id:"
      grep -F "$id" <<<"$rules" | indent
    fi
  done
  [ ${#ALLOCS[@]} -eq 0 ] || say "host iptables rules naming the allocations (CNI's per-allocation chains): none"
  if [ -f "$DEMO_DIR/host-filter.before" ]; then
    added=$(
      for t in filter nat; do
        iptables-save -t "$t" | grep '^[:-]' | sed 's/ \[[0-9:]*\]$//' | sort | comm -13 "$DEMO_DIR/host-$t.before" -
      done
    )
    if [ -n "$added" ]; then
      say "Other changes to the host's iptables since the demo started, none naming the demo's allocations"
      say "(Nomad's shared bridge chains, which Nomad never removes, or another Nomad client on this host):"
      indent <<<"$added"
    else
      say "host iptables (filter, nat): the same as before the demo"
    fi
  fi

  while read -r line; do
    umount -l "$line" 2>/dev/null || true
  done < <(awk -v d="$DEMO_DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  for line in /sys/fs/cgroup/*"$CGROUP_PARENT" /sys/fs/cgroup/*/"${CGROUP_PARENT#/}"; do
    [ -d "$line" ] || continue
    find "$line" -depth -type d -exec rmdir {} + 2>/dev/null || {
      bad=$((bad + 1))
      say "LEFT: cgroup $line still has processes"
    }
  done
  say "cgroups under $CGROUP_PARENT: removed"
  return "$bad"
}

# diagnose shows, after a failure, the meshed allocations' events and the proxy's last words.
diagnose() {
  local id
  [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null || return 0
  note_allocs
  for id in "${ALLOCS[@]}"; do
    nomad_cli alloc status -t '{{.JobID}}' "$id" 2>/dev/null | grep -qx "$MESH_JOB" || continue
    printf '\nAllocation %s, task istio-proxy (nomad alloc status %s):\n' "$id" "$id" >&2
    nomad_cli alloc status "$id" 2>&1 | awk '/^Task "istio-proxy"/ {on=1} /^Task "/ && !/istio-proxy/ {on=0} on' >&2
    # Read from the alloc dir: Nomad serves no logs of a task that never reached "started".
    printf 'Its stderr, last lines (%s):\n' "$DEMO_DIR/data/alloc/$id/alloc/logs/istio-proxy.stderr.0" >&2
    tail -n 15 "$DEMO_DIR/data/alloc/$id/alloc/logs/istio-proxy.stderr.0" >&2 2>/dev/null || true
  done
  return 0
}

cleanup() {
  local rc=$? bad=0
  [ "$CLEANED" = 0 ] || return 0
  CLEANED=1
  trap - INT TERM
  set +e
  if [ -n "$DEMO_DIR" ]; then
    [ "$rc" = 0 ] || diagnose
    step "Stopping everything (job stop, agent stop)"
    stop_all
    verify
    bad=$?
    if [ "$rc" != 0 ] && [ -f "$DEMO_DIR/agent.log" ]; then
      printf '\nLast lines of the agent log:\n' >&2
      tail -n 40 "$DEMO_DIR/agent.log" >&2
    fi
    rm -rf "$DEMO_DIR"
  fi
  if [ "$bad" != 0 ]; then
    printf '\ndemo: %d leftover(s) found and removed (see LEFT above)\n' "$bad" >&2
    [ "$rc" != 0 ] || rc=1
  elif [ "$rc" = 0 ]; then
    printf '\nDemo complete: the call went through the sidecar, and nothing of the demo is left.\n'
  fi
  exit "$rc"
}

trap cleanup EXIT
trap 'printf "\ninterrupted: cleaning up\n" >&2; exit 130' INT TERM

preflight
build
start_agent
root_cert
run_jobs
show
