#!/usr/bin/env bash
# A throwaway 6-node Redis Cluster (3 masters, 3 replicas) on loopback, for the session-store tests.
#
#   cluster.sh start DIR BASEPORT   # nodes on 127.0.0.1:BASEPORT..BASEPORT+5; waits for cluster_state:ok
#   cluster.sh stop DIR             # kills the nodes (pidfiles in DIR) and removes DIR
#   cluster.sh single DIR PORT      # one plain (non-cluster) redis-server on 127.0.0.1:PORT
#
# Pick ports below the kernel's ephemeral range (net.ipv4.ip_local_port_range, usually from
# 32768), cluster-bus ports (PORT+10000) included: an outgoing connection may hold any port in
# that range and make a node abort with "Address already in use".
#
# Everything lives in DIR (configs, pidfiles, logs, nodes.conf); nothing is persisted (no RDB,
# no AOF). `start` is idempotent for its own DIR: nodes DIR started that still run are reused and
# an already formed cluster is not re-created; a port answered by any other Redis is an error
# (joining a stranger's node would mix two test clusters). Every wait is bounded. Needs
# redis-server and redis-cli (Redis >= 7).
set -euo pipefail

die() { echo "cluster.sh: $*" >&2; exit 1; }

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

# wait_until SECONDS CMD...: retry CMD every 50 ms until it succeeds or SECONDS pass; stops
# early (status 2) when CMD returns 2 (will never succeed).
wait_until() {
  local limit=$(( $1 * 20 )) i=0 rc
  shift
  while (( i < limit )); do
    rc=0
    "$@" >/dev/null 2>&1 || rc=$?
    if (( rc == 0 )); then return 0; fi
    if (( rc == 2 )); then return 2; fi
    sleep 0.05
    i=$(( i + 1 ))
  done
  return 1
}

pings() { [[ "$(cli "$1" ping 2>/dev/null)" == PONG ]]; }

# up DIR PORT: answers PING; status 2 if the node aborted (e.g. its port was taken).
up() {
  if grep -q 'aborting' "$1/redis-$2.log" 2>/dev/null; then return 2; fi
  pings "$2"
}

gone() { [[ ! -e "/proc/$1" ]] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

cluster_ok() { cli "$1" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

# ours DIR PORT: the node on PORT was started from DIR and still runs.
ours() {
  local pid
  pid=$(cat "$1/redis-$2.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && ! gone "$pid"
}

start_node() { # DIR PORT CLUSTER(yes|no)
  local dir=$1 port=$2 cluster=$3
  if pings "$port"; then
    ours "$dir" "$port" && return 0
    die "port $port is already served by a Redis not started from $dir"
  fi
  local conf="$dir/redis-$port.conf"
  cat >"$conf" <<CONF
bind 127.0.0.1
port $port
protected-mode yes
daemonize yes
pidfile $dir/redis-$port.pid
logfile $dir/redis-$port.log
dir $dir
save ""
appendonly no
CONF
  if [[ "$cluster" == yes ]]; then
    cat >>"$conf" <<CONF
cluster-enabled yes
cluster-config-file $dir/nodes-$port.conf
cluster-node-timeout 2000
CONF
  fi
  redis-server "$conf" || die "redis-server on port $port did not start (see $dir/redis-$port.log)"
}

cmd_start() {
  local dir=${1:?DIR} base=${2:?BASEPORT}
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
  command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local ports=() p
  for i in 0 1 2 3 4 5; do ports+=( $(( base + i )) ); done
  for p in "${ports[@]}"; do start_node "$dir" "$p" yes; done
  for p in "${ports[@]}"; do
    wait_until 5 up "$dir" "$p" || die "node $p does not answer PING (see $dir/redis-$p.log)"
  done
  if ! cluster_ok "${ports[0]}"; then
    local known
    known=$(cli "${ports[0]}" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')
    if [[ "$known" == 1 ]]; then
      local addrs=()
      for p in "${ports[@]}"; do addrs+=( "127.0.0.1:$p" ); done
      redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
        || die "redis-cli --cluster create failed (see $dir/create.log)"
    fi
  fi
  for p in "${ports[@]}"; do
    wait_until 8 cluster_ok "$p" || die "node $p never reached cluster_state:ok"
  done
}

cmd_single() {
  local dir=${1:?DIR} port=${2:?PORT}
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  start_node "$dir" "$port" no
  wait_until 5 up "$dir" "$port" || die "redis on $port does not answer PING (see $dir/redis-$port.log)"
}

cmd_stop() {
  local dir=${1:?DIR} f pid
  [[ -d "$dir" ]] || return 0
  local pids=()
  for f in "$dir"/redis-*.pid; do
    [[ -e "$f" ]] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
      pids+=( "$pid" )
    fi
  done
  # A killed daemon stays a zombie until init reaps it; its sockets are closed by then.
  for pid in ${pids[@]+"${pids[@]}"}; do
    wait_until 5 gone "$pid" || true
  done
  rm -rf "$dir"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  single) shift; cmd_single "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  *) die "usage: cluster.sh start DIR BASEPORT | single DIR PORT | stop DIR" ;;
esac
