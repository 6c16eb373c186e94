#!/usr/bin/env bash
# gatehouse load harness: one command that brings the whole stack up on loopback, measures
# gatehouse against the bare-Pingora ceiling, nginx, HAProxy and Apache mod_auth_openidc in the
# same run, writes the report and plots, and tears everything down.
#
#   ./loadtest/run.sh [--quick]
#
#   --quick   ~5 s per run, 1 round, 20 000 cache-miss tokens (a couple of minutes)
#   default   10 s per run, 3 rounds, 60 000 cache-miss tokens (about 13-15 minutes)
#
# Environment (all optional): LT_DURATION (seconds per run), LT_ROUNDS, LT_CONNS (64),
# LT_MISS_TOKENS, LT_IDLE_CONNS (10000), LT_TENANTS (10000), LT_PORT_BASE (18180),
# LT_SKIP_BUILD=1, LT_SKIP_INSTALL=1, LT_KEEP=1 (keep the temp dir), LT_SCENARIOS (space-separated
# subset of: plain jwt-warm jwt-miss mix-80-20 tenants-1-vs-10000 jwt-tracing session ws-echo ratelimit
# dpop idle-10k instructions), LT_DPOP_PROOFS (200 000, 40 000 with --quick: DPoP proofs made for the
# dpop scenario, split evenly over the rounds; at most 250 000, below the memory replay store's
# 262 144), LT_WS_CONNS (LT_CONNS; WebSockets held open by ws-echo's client), LT_WS_MESSAGES
# (3000, 1000 with --quick: messages echoed per WebSocket), LT_WS_SIZE (64: bytes per message),
# LT_INSTR_SECONDS (4; the measured wrk run of each server under callgrind), LT_INSTR_ROUNDS (1;
# rounds of the gatehouse and baseline instruction counts, medians reported), LT_INSTR_CONNS (16;
# wrk's connections there: 1 makes every request its own wake-up, the steadiest A/B),
# LT_INSTR_FEATURES (1; 0 leaves out the JWT route with an identity assertion and with a rate
# limit), LT_INSTR_KEEP (a folder: keeps each counted callgrind profile there, to read with
# callgrind_annotate), LT_BASELINE (a
# gatehouse binary built from an earlier commit: the instructions step also counts its
# white-listed and JWT routes, as baseline-*, for a before/after in one run),
# LT_REDIS_BASE (21400: the session scenario's 6-node Redis Cluster on BASE..BASE+5, and one
# standalone Redis on BASE+10 for Apache mod_auth_openidc, which cannot use a cluster),
# CARGO_TARGET_DIR (where the release binaries are built; default ./target).
#
# Everything listens on 127.0.0.1; every load loop is bounded in time (wrk -d, idle.py --timeout)
# and in count (rounds x scenarios x peers; the miss scenario stops after its token set).
set -euo pipefail

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

LT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$LT/.." && pwd)"
if [[ $QUICK == 1 ]]; then
  DURATION=${LT_DURATION:-5}; ROUNDS=${LT_ROUNDS:-1}; MISS_TOKENS=${LT_MISS_TOKENS:-20000}
else
  DURATION=${LT_DURATION:-10}; ROUNDS=${LT_ROUNDS:-3}; MISS_TOKENS=${LT_MISS_TOKENS:-60000}
fi
CONNS=${LT_CONNS:-64}
WS_CONNS=${LT_WS_CONNS:-$CONNS}
WS_MESSAGES=${LT_WS_MESSAGES:-$([[ $QUICK == 1 ]] && echo 1000 || echo 3000)}
WS_SIZE=${LT_WS_SIZE:-64}
IDLE_CONNS=${LT_IDLE_CONNS:-10000}
TENANTS=${LT_TENANTS:-10000}
SCENARIOS=${LT_SCENARIOS:-"plain jwt-warm jwt-miss mix-80-20 tenants-1-vs-10000 jwt-tracing session ws-echo ratelimit dpop idle-10k instructions"}
DPOP_PROOFS=${LT_DPOP_PROOFS:-$([[ $QUICK == 1 ]] && echo 40000 || echo 200000)}
REDIS_BASE=${LT_REDIS_BASE:-21400}
ISSUER="http://127.0.0.1:18090/realms/demo"   # only a string in the tokens: no IdP is started
TOKEN_TTL=$(( 3600 + ROUNDS * 1200 ))

B=${LT_PORT_BASE:-18180}
P_UP=$((B + 1)); P_BARE=$((B + 2)); P_NGINX=$((B + 3)); P_HAP=$((B + 4)); P_HAPJWT=$((B + 5))
P_APACHE=$((B + 6)); P_GH=$((B + 7)); P_GH10K=$((B + 8)); P_GHMISS=$((B + 9))
P_IDLE=$((B + 10))
# session scenario: the test IdP and three gatehouse instances (memory, Redis Cluster with the
# local cache off, Redis Cluster with local-cache-ttl 5s)
P_IDP=$((B + 11)); P_GHS_MEM=$((B + 12)); P_GHS_R0=$((B + 13)); P_GHS_R5=$((B + 14))
# ... and Apache mod_auth_openidc as OIDC client with its session cache in one Redis node
P_APACHE_S=$((B + 15)); REDIS_APACHE=$((REDIS_BASE + 10))
P_CG_ADMIN=$((B + 16))  # the admin listener of the gatehouse under callgrind (its /readyz)
# ws-echo: the WebSocket echo upstream (ws-bench echo), and bare-proxy, nginx and gatehouse in
# front of it; ratelimit: one gatehouse with the JWT route plain and rate limited
P_WS_UP=$((B + 17)); P_WS_BARE=$((B + 18)); P_WS_NGINX=$((B + 19)); P_WS_GH=$((B + 20))
P_RL_GH=$((B + 21)); P_RL_ADMIN=$((B + 22))
# jwt-tracing: gatehouse with OpenTelemetry tracing (ratio 0.01) and the OTLP sink it exports to
P_GHTR=$((B + 23)); P_SINK=$((B + 24))
# dpop: one gatehouse with the bearer JWT route /api/* and the same route with `dpop: required`
P_GHDP=$((B + 25))
SESSION=0; [[ " $SCENARIOS " == *" session "* ]] && SESSION=1
WS=0; [[ " $SCENARIOS " == *" ws-echo "* ]] && WS=1
RL=0; [[ " $SCENARIOS " == *" ratelimit "* ]] && RL=1
DPOP=0; [[ " $SCENARIOS " == *" dpop "* ]] && DPOP=1
if ((DPOP)); then
  [[ $DPOP_PROOFS =~ ^[0-9]+$ ]] && ((DPOP_PROOFS <= 250000 && DPOP_PROOFS / ROUNDS >= 1000)) \
    || { echo "run.sh: LT_DPOP_PROOFS must be 1000 x rounds .. 250000 (the memory replay store keeps 262 144 proofs)" >&2; exit 2; }
fi
# The Redis Cluster serves the session scenario and the ratelimit scenario's `shared: true` route.
CLUSTER=0; ((SESSION || RL)) && CLUSTER=1
IDP_ISSUER="http://127.0.0.1:$P_IDP/realms/demo"

log() { printf '[loadtest %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# 1. Install what is missing (Debian packages), stop the services the packages start.
# ---------------------------------------------------------------------------------------------
install_missing() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v apache2 >/dev/null || missing+=(apache2)
  [[ -e /usr/lib/apache2/modules/mod_auth_openidc.so ]] || missing+=(libapache2-mod-auth-openidc)
  [[ " $SCENARIOS " != *" instructions "* ]] || command -v valgrind >/dev/null || missing+=(valgrind)
  if ((${#missing[@]})); then
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]}: run as root or: sudo apt-get install -y --no-install-recommends ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The packages start system services on their default ports; the harness runs its own.
    for s in nginx haproxy apache2; do service "$s" stop >/dev/null 2>&1 || true; done
  fi
  command -v node >/dev/null || die "node is required (testing/idp needs it too)"
  [[ -d "$ROOT/testing/idp/node_modules/jose" ]] || (cd "$ROOT/testing/idp" && npm ci --silent) \
    || die "jose missing: cd testing/idp && npm ci"
  ((DPOP == 0)) || [[ -d "$ROOT/testing/dpop/node_modules/dpop" ]] || (cd "$ROOT/testing/dpop" && npm ci --silent) \
    || die "dpop missing: cd testing/dpop && npm ci"
  command -v python3 >/dev/null || die "python3 is required"
}
[[ ${LT_SKIP_INSTALL:-0} == 1 ]] || install_missing

# ---------------------------------------------------------------------------------------------
# 2. Build gatehouse and bare-proxy in release (workspace profile: fat LTO, 1 codegen unit).
# ---------------------------------------------------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ ${LT_SKIP_BUILD:-0} != 1 ]]; then
  log "building gatehouse, bare-proxy and ws-bench (release) into $TARGET_DIR"
  # Two invocations: built together, ws-bench's dependencies' features would be unified into
  # gatehouse's and move (and rebuild) the binaries measured.
  (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --quiet -p gatehouse -p bare-proxy \
    && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --quiet -p ws-bench) \
    || die "cargo build failed"
fi
GATEHOUSE="$TARGET_DIR/release/gatehouse"
BARE="$TARGET_DIR/release/bare-proxy"
WSBENCH="$TARGET_DIR/release/ws-bench"
[[ -x $GATEHOUSE && -x $BARE ]] || die "binaries not found in $TARGET_DIR/release"
((WS == 0)) || [[ -x $WSBENCH ]] || die "ws-bench not found in $TARGET_DIR/release"

# ---------------------------------------------------------------------------------------------
# 3. Work dir, teardown, file descriptors.
# ---------------------------------------------------------------------------------------------
# Apache's children run as www-data and must read the dir: 755, no secrets beyond a test key.
WORK=$(mktemp -d /tmp/gatehouse-loadtest.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/logs" "$WORK/nginx-tmp"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULTS="$LT/results/$STAMP"
RAW="$RESULTS/raw"
mkdir -p "$RAW"

declare -A PIDS=()   # name -> pid of a server this script started (in the foreground)
stop_server() {
  local name=$1 pid=${PIDS[$1]:-}
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "PIDS[$name]"
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for name in "${!PIDS[@]}"; do stop_server "$name"; done
  if [[ -d $WORK/redis ]]; then
    timeout 30 "$ROOT/testing/redis/cluster.sh" stop "$WORK/redis" >/dev/null 2>&1 \
      || log "WARNING: Redis Cluster stop failed (pidfiles in $WORK/redis)"
  fi
  if [[ -d $WORK/redis-apache ]]; then
    timeout 30 "$ROOT/testing/redis/cluster.sh" stop "$WORK/redis-apache" >/dev/null 2>&1 \
      || log "WARNING: Apache's Redis node stop failed (pidfile in $WORK/redis-apache)"
  fi
  if [[ ${LT_KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HARD_NOFILE=$(ulimit -Hn)
[[ $HARD_NOFILE == unlimited ]] && HARD_NOFILE=1048576
ulimit -n "$HARD_NOFILE" 2>/dev/null || true
NOFILE=$(ulimit -n)
if (( IDLE_CONNS + 300 > NOFILE )); then
  log "open-file limit $NOFILE: idle scenario reduced from $IDLE_CONNS connections"
  IDLE_CONNS=$(( NOFILE - 300 ))
fi

LT_PORTS="$P_UP $P_BARE $P_NGINX $P_HAP $P_HAPJWT $P_APACHE $P_GH $P_GH10K $P_GHMISS $P_IDLE $P_CG_ADMIN"
((SESSION)) && LT_PORTS+=" $P_IDP $P_GHS_MEM $P_GHS_R0 $P_GHS_R5 $P_APACHE_S $REDIS_APACHE"
((CLUSTER)) && LT_PORTS+=" $(seq -s ' ' "$REDIS_BASE" $((REDIS_BASE + 5)))"
((WS)) && LT_PORTS+=" $P_WS_UP $P_WS_BARE $P_WS_NGINX $P_WS_GH"
((RL)) && LT_PORTS+=" $P_RL_GH $P_RL_ADMIN"
((DPOP)) && LT_PORTS+=" $P_GHDP"
for p in $LT_PORTS; do
  if ss -Hltn "sport = :$p" | grep -q .; then die "port $p is taken (set LT_PORT_BASE)"; fi
done

# ---------------------------------------------------------------------------------------------
# 4. Keys and tokens.
# ---------------------------------------------------------------------------------------------
KEYS="$WORK/keys"
DPOP_CLIENT="$ROOT/testing/dpop/client.mjs"
# The DPoP client's key pair (ES256, made by panva's `dpop` library): the token is bound to it.
DPOP_JWK=()
if ((DPOP)); then
  mkdir -p "$KEYS"
  echo '{"alg":"ES256","proofs":[]}' | node "$DPOP_CLIENT" > "$KEYS/dpop-key.json" 2> "$WORK/logs/dpop-key.err" \
    || { cat "$WORK/logs/dpop-key.err" >&2; die "testing/dpop/client.mjs failed"; }
  python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["public_jwk"]))' \
    "$KEYS/dpop-key.json" > "$KEYS/dpop-jwk.json"
  DPOP_JWK=("$KEYS/dpop-jwk.json")
fi
log "minting the RS256 key and $MISS_TOKENS + 17 tokens (exp +${TOKEN_TTL}s)"
node "$LT/mint.mjs" "$KEYS" "$ISSUER" "$TOKEN_TTL" "$MISS_TOKENS" "${DPOP_JWK[@]}" 2> "$WORK/logs/mint.err" \
  || { cat "$WORK/logs/mint.err" >&2; die "mint.mjs failed"; }
chmod 755 "$KEYS"
chmod 644 "$KEYS"/*.txt "$KEYS"/pubkey.pem "$KEYS"/jwks.json
# dpop_proofs N OUT: N proofs (GET, htu of the /dpop/* route as wrk's Host reaches it, ath of the
# bound token), each with its own jti, from the client's key: one a line into OUT. Made right
# before they are used (a round's runs), so their iat stays inside `dpop-proof-window`.
DPOP_HTU="http://lt.localhost/dpop/x"
dpop_proofs() {
  local n=$1 out=$2
  python3 - "$KEYS/dpop-key.json" "$KEYS/dpop-token.txt" "$DPOP_HTU" "$n" <<'PY' \
    | node "$DPOP_CLIENT" 2> "$WORK/logs/dpop-proofs.err" \
    | python3 -c 'import json, sys; sys.stdout.write("".join(p + "\n" for p in json.load(sys.stdin)["proofs"]))' > "$out" \
    || { cat "$WORK/logs/dpop-proofs.err" >&2; die "testing/dpop/client.mjs failed to make $n proofs"; }
import json, sys
key, token, htu, n = sys.argv[1:]
print(json.dumps({"key_pkcs8": json.load(open(key))["key_pkcs8"],
                  "proofs": [{"htm": "GET", "htu": htu, "access_token": open(token).read().strip(),
                              "count": int(n)}]}))
PY
  [[ $(wc -l < "$out") == "$n" ]] || die "dpop: $out has $(wc -l < "$out") proofs, expected $n"
}

# ---------------------------------------------------------------------------------------------
# 5. Configs (one worker thread/process per gateway, keep-alive everywhere).
# ---------------------------------------------------------------------------------------------
NGX_TEMPS="client_body_temp_path $WORK/nginx-tmp/b; proxy_temp_path $WORK/nginx-tmp/p;
  fastcgi_temp_path $WORK/nginx-tmp/f; uwsgi_temp_path $WORK/nginx-tmp/u; scgi_temp_path $WORK/nginx-tmp/s;"

cat > "$WORK/upstream.conf" <<EOF
# The fast upstream: a fixed 20-byte body.
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
error_log $WORK/logs/upstream.err warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  $NGX_TEMPS
  server {
    listen 127.0.0.1:$P_UP backlog=4096;
    location / { default_type text/plain; return 200 "gatehouse loadtest\r\n"; }
  }
  # jwt-tracing's OTLP/HTTP sink: accepts every export (an empty 200 is a full success).
  server {
    listen 127.0.0.1:$P_SINK;
    client_max_body_size 64m;
    location / { return 200; }
  }
}
EOF

nginx_proxy_conf() {  # $1 port, $2 pidfile
  cat <<EOF
# nginx plain proxy_pass, one worker, keep-alive to the upstream.
worker_processes 1;
daemon off;
pid $2;
error_log $WORK/logs/nginx-$1.err warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $(( NOFILE - 100 )); }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  $NGX_TEMPS
  upstream app { server 127.0.0.1:$P_UP; keepalive 128; }
  server {
    listen 127.0.0.1:$1 backlog=4096;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
}
nginx_proxy_conf "$P_NGINX" "$WORK/nginx.pid" > "$WORK/nginx.conf"
nginx_proxy_conf "$P_IDLE" "$WORK/nginx-idle.pid" > "$WORK/nginx-idle.conf"

cat > "$WORK/haproxy.cfg" <<EOF
# HAProxy 2.6: plain, and jwt_verify RS256 with alg/iss/exp checks (as in HAProxy's docs).
global
  nbthread 1
  maxconn 4000
  pidfile $WORK/haproxy.pid
defaults
  mode http
  timeout connect 2s
  timeout client 300s
  timeout server 30s
  timeout http-keep-alive 300s
  option http-keep-alive
  http-reuse always
backend app
  server s1 127.0.0.1:$P_UP maxconn 1000
frontend plain
  bind 127.0.0.1:$P_HAP
  default_backend app
frontend jwt
  bind 127.0.0.1:$P_HAPJWT
  http-request deny deny_status 401 unless { req.hdr(authorization) -m found }
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny deny_status 401 unless { var(txn.jwt_alg) -m str RS256 }
  http-request set-var(txn.jwt_iss) var(txn.bearer),jwt_payload_query('\$.iss')
  http-request deny deny_status 401 unless { var(txn.jwt_iss) -m str "$ISSUER" }
  http-request set-var(txn.jwt_exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 if { var(txn.jwt_exp),sub(txn.now) -m int lt 0 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.jwt_alg,"$KEYS/pubkey.pem") -m int 1 }
  default_backend app
EOF

# What both Apache configs share: the modules, one process (event MPM, 2 x CONNS threads: with
# exactly one thread per connection the event MPM closes keep-alive connections whenever no
# worker is idle, which shows up as wrk read errors), keep-alive 300 s.
# $1 name (pid and log files), $2 port, $3 ServerName.
apache_base() {
  cat <<EOF
ServerRoot /etc/apache2
PidFile $WORK/$1.pid
ErrorLog $WORK/logs/$1.err
LogLevel warn
Listen 127.0.0.1:$2
ServerName $3
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
LoadModule auth_openidc_module /usr/lib/apache2/modules/mod_auth_openidc.so
User www-data
Group www-data
StartServers 1
ServerLimit 1
ThreadLimit $(( CONNS * 2 ))
ThreadsPerChild $(( CONNS * 2 ))
MinSpareThreads 1
MaxSpareThreads $(( CONNS * 2 ))
MaxRequestWorkers $(( CONNS * 2 ))
MaxConnectionsPerChild 0
KeepAlive On
KeepAliveTimeout 300
MaxKeepAliveRequests 0
EOF
}
# Apache 2.4 + mod_auth_openidc as an OAuth 2.0 resource server. OIDCOAuthVerifyJwksUri only
# takes https URLs, so the key is given statically (OIDCOAuthVerifyCertFiles kid#pem), as
# HAProxy gets it.
{ apache_base apache "$P_APACHE" 127.0.0.1; cat <<EOF
OIDCCryptoPassphrase loadtest-only-passphrase
OIDCOAuthVerifyCertFiles loadtest-rs256#$KEYS/pubkey.pem
OIDCOAuthRemoteUserClaim sub
ProxyPass / http://127.0.0.1:$P_UP/
<Location />
  AuthType oauth20
  <RequireAll>
    Require valid-user
    Require claim iss:$ISSUER
  </RequireAll>
</Location>
EOF
} > "$WORK/apache.conf"

gatehouse_conf() {  # $1 port, $2 name, $3 number of tenants in total
  cat <<EOF
# gatehouse, one worker thread; access log on (stdout to /dev/null: formatting and the writer
# thread are paid, the disk is not); default log filter (denials are logged at info).
listen: 127.0.0.1:$1
threads: 1
upgrade-sock: $WORK/$2.sock
pid-file: $WORK/$2.pid
watch-config: false
keepalive-timeout: 300s
identity-providers:
  - name: lt
    issuer: $ISSUER
    jwks-file: $KEYS/jwks.json
    client-id: gatehouse
    audiences: [gatehouse]
tenants:
  - name: lt
    hosts: [lt.localhost, 127.0.0.1, localhost]
    identity-provider: lt
    upstreams:
      - name: app
        targets: ["127.0.0.1:$P_UP"]
    identity-headers:
      X-Auth-Subject: sub
      X-Auth-Username: preferred_username
      X-Auth-Roles: realm_access.roles
    routes:
      - uri: /public/*
        white-listed: true
      - uri: /api/*
        roles: [user]
EOF
  local i
  for ((i = 1; i < $3; i++)); do
    printf '  - name: t%05d\n    hosts: [t%05d.example.test, "*.t%05d.example.test"]\n    identity-provider: lt\n    upstreams:\n      - name: app\n        targets: ["127.0.0.1:%d"]\n        health-check: { interval: 1h }\n    routes:\n      - uri: /public/*\n        white-listed: true\n      - uri: /api/*\n        roles: [user]\n' \
      "$i" "$i" "$i" "$P_UP"
  done
}
gatehouse_conf "$P_GH" gatehouse 1 > "$WORK/gatehouse.yaml"
gatehouse_conf "$P_GHMISS" gatehouse-miss 1 > "$WORK/gatehouse-miss.yaml"
gatehouse_conf "$P_IDLE" gatehouse-idle 1 > "$WORK/gatehouse-idle.yaml"
if [[ " $SCENARIOS " == *" tenants-1-vs-10000 "* ]]; then
  gatehouse_conf "$P_GH10K" gatehouse-10k "$TENANTS" > "$WORK/gatehouse-10k.yaml"
fi
# The JWT instance with OpenTelemetry tracing at the default ratio, exporting to the sink.
tracing_conf() {  # $1 port, $2 name
  printf 'tracing:\n  otlp-endpoint: http://127.0.0.1:%d/v1/traces\n  sampling-ratio: 0.01\n' "$P_SINK"
  gatehouse_conf "$1" "$2" 1
}
if [[ " $SCENARIOS " == *" jwt-tracing "* ]]; then
  tracing_conf "$P_GHTR" gatehouse-tracing > "$WORK/gatehouse-tracing.yaml"
  "$GATEHOUSE" check --config "$WORK/gatehouse-tracing.yaml" > /dev/null || die "gatehouse-tracing.yaml does not validate"
fi
"$GATEHOUSE" check --config "$WORK/gatehouse.yaml" > /dev/null || die "gatehouse.yaml does not validate"

REDIS_URL="redis-cluster://$(for i in 0 1 2 3 4 5; do printf '127.0.0.1:%d,' $((REDIS_BASE + i)); done | sed 's/,$//')"

# ws-echo: the same gatehouse config with the WebSocket echo upstream (ws-bench echo) as its
# app: the handshake is a request of the JWT route /api/* (bearer token, role user), as for
# jwt-warm; nginx proxies the upgrade as its documentation says (no auth: the handshake's cost
# is outside the measured window anyway, the frames are what is measured).
if ((WS)); then
  gatehouse_conf "$P_WS_GH" gatehouse-ws 1 | sed "s/\"127.0.0.1:$P_UP\"/\"127.0.0.1:$P_WS_UP\"/" > "$WORK/gatehouse-ws.yaml"
  grep -q "127.0.0.1:$P_WS_UP" "$WORK/gatehouse-ws.yaml" || die "gatehouse-ws.yaml has no WebSocket upstream"
  "$GATEHOUSE" check --config "$WORK/gatehouse-ws.yaml" > /dev/null || die "gatehouse-ws.yaml does not validate"
  cat > "$WORK/nginx-ws.conf" <<EOF
# nginx WebSocket proxy (proxy_pass with Upgrade/Connection passed on), one worker.
worker_processes 1;
daemon off;
pid $WORK/nginx-ws.pid;
error_log $WORK/logs/nginx-ws.err warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections 4096; }
http {
  access_log off;
  $NGX_TEMPS
  upstream ws { server 127.0.0.1:$P_WS_UP; }
  server {
    listen 127.0.0.1:$P_WS_NGINX backlog=4096;
    location / {
      proxy_pass http://ws;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }
}
EOF
fi

# ratelimit: one instance, the JWT route /api/* plain and three copies of it with a client-ip
# limit (every wrk connection comes from 127.0.0.1: one key): one too high to refuse anything
# (the limiter's cost), one that refuses nearly every request with 429 (the refusal's cost), and
# the first one counted in the Redis Cluster (`shared: true`: one Lua script call per request).
if ((RL)); then
  { printf 'admin-listen: 127.0.0.1:%d\nsession-store:\n  url: "%s"\n' "$P_RL_ADMIN" "$REDIS_URL"
    gatehouse_conf "$P_RL_GH" gatehouse-rl 1
    cat <<EOF
      - uri: /rl-local/*
        roles: [user]
        rate-limits:
          - { key: client-ip, rate: 1000000/s, burst: 1000000 }
      - uri: /rl-refuse/*
        roles: [user]
        rate-limits:
          - { key: client-ip, rate: 10/m, burst: 10 }
      - uri: /rl-shared/*
        roles: [user]
        rate-limits:
          - { key: client-ip, rate: 1000000/s, burst: 1000000, shared: true }
EOF
  } > "$WORK/gatehouse-rl.yaml"
  "$GATEHOUSE" check --config "$WORK/gatehouse-rl.yaml" > /dev/null || die "gatehouse-rl.yaml does not validate"
fi

# Session scenario: a tenant with `login` + `cookie` behind the test IdP; the same config on
# three session stores. /public/* is white-listed (the baseline), /app/* needs a session.
gatehouse_session_conf() {  # $1 port, $2 name, $3 store url, $4 local-cache-ttl
  cat <<EOF
# gatehouse, one worker thread, browser sessions ($3, local-cache-ttl $4)
listen: 127.0.0.1:$1
threads: 1
upgrade-sock: $WORK/$2.sock
pid-file: $WORK/$2.pid
watch-config: false
keepalive-timeout: 300s
session-store:
  url: "$3"
  local-cache-ttl: $4
identity-providers:
  - name: idp
    issuer: $IDP_ISSUER
    allow-insecure-http: true
    client-id: gatehouse
    client-secret: gatehouse-secret
tenants:
  - name: demo
    hosts: [demo.localhost]
    identity-provider: idp
    upstreams:
      - name: app
        targets: ["127.0.0.1:$P_UP"]
    identity-headers:
      X-Auth-Subject: sub
      X-Auth-Username: preferred_username
      X-Auth-Roles: realm_access.roles
    login:
      redirect-url: http://demo.localhost:$1/oauth/callback
    cookie:
      secure: false
      encryption-key: "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
    routes:
      - uri: /public/*
        white-listed: true
      - uri: /app/*
        roles: [user]
EOF
}
if ((SESSION)); then
  gatehouse_session_conf "$P_GHS_MEM" gatehouse-session-memory "memory://" 5s > "$WORK/gatehouse-session-memory.yaml"
  # local-cache-ttl 0s: CachedStore never answers from its local cache, every get is a Redis
  # round trip (an unchanged record keeps its parsed claims: session/src/store/cached.rs)
  gatehouse_session_conf "$P_GHS_R0" gatehouse-session-redis-nocache "$REDIS_URL" 0s > "$WORK/gatehouse-session-redis-nocache.yaml"
  gatehouse_session_conf "$P_GHS_R5" gatehouse-session-redis-5s "$REDIS_URL" 5s > "$WORK/gatehouse-session-redis-5s.yaml"
  for f in gatehouse-session-memory gatehouse-session-redis-nocache gatehouse-session-redis-5s; do
    "$GATEHOUSE" check --config "$WORK/$f.yaml" > /dev/null || die "$f.yaml does not validate"
  done

  # Apache 2.4 + mod_auth_openidc 2.4.12 as OpenID Connect client (relying party) of the same
  # IdP, client `gatehouse`, with its sessions server-side in Redis: the cookie carries only the
  # session id, every request reads the session from Redis. Same process model as apache.conf.
  # Found in mod_auth_openidc 2.4.12.3's source (src/cache/redis.c, src/mod_auth_openidc.c):
  # - Redis: one hiredis connection to one host:port (OIDCRedisCacheServer), no Cluster
  #   support (a MOVED reply is an error: the lookup fails), so it gets ONE standalone Redis
  #   node ($REDIS_APACHE), not the gatehouse instances' cluster. Every get/set holds a global
  #   mutex around that connection: the process's Redis round trips are serialised.
  # - No in-process cache in front of Redis for sessions: each request does a GET of the
  #   session (key hashed with the passphrase, value AES-GCM encrypted: OIDCCacheEncrypt
  #   defaults to On for redis) and, because the provider is configured by
  #   OIDCProviderMetadataURL, a GET of the cached provider metadata too (the provider is
  #   resolved through the cache on every request). The session is re-saved (SETEX) at most
  #   once a minute (sliding inactivity timeout).
  # - OIDCProviderMetadataURL accepts http:// (a startup warning only); the static endpoint
  #   directives (OIDCProviderAuthorizationEndpoint, ...TokenEndpoint, ...JwksUri) accept only
  #   https URLs, and the test IdP is plain http on loopback, so discovery it is.
  # OIDCPassClaimsAs headers: the claims go to the upstream as headers only (not also as
  # environment variables, which nothing reads behind ProxyPass).
  { apache_base apache-session "$P_APACHE_S" demo.localhost; cat <<EOF
OIDCProviderMetadataURL $IDP_ISSUER/.well-known/openid-configuration
OIDCClientID gatehouse
OIDCClientSecret gatehouse-secret
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCRedirectURI http://demo.localhost:$P_APACHE_S/oauth2callback
OIDCCryptoPassphrase loadtest-only-passphrase
OIDCRemoteUserClaim sub
OIDCPassClaimsAs headers
OIDCSessionType server-cache
OIDCSessionInactivityTimeout 86400
OIDCCacheType redis
OIDCRedisCacheServer 127.0.0.1:$REDIS_APACHE
ProxyPass /oauth2callback !
ProxyPass / http://127.0.0.1:$P_UP/
<Location /app/>
  AuthType openid-connect
  Require valid-user
</Location>
<Location /oauth2callback>
  AuthType openid-connect
  Require valid-user
</Location>
EOF
  } > "$WORK/apache-session.conf"
  apache2 -t -f "$WORK/apache-session.conf" > "$WORK/logs/apache-session-configtest.txt" 2>&1 \
    || { cat "$WORK/logs/apache-session-configtest.txt" >&2; die "apache-session.conf does not validate (see $WORK/logs/apache-session-configtest.txt)"; }
fi
# dpop: the JWT route /api/* and /dpop/* = the same route with `dpop: required`, in one instance;
# the provider accepts ES256 proofs (the tokens stay RS256). dpop-proof-window is the longest
# allowed (10m): a round's proofs are made before its runs and must stay fresh through them.
if ((DPOP)); then
  { gatehouse_conf "$P_GHDP" gatehouse-dpop 1 | sed 's/^    audiences: \[gatehouse\]$/&\n    algorithms: [RS256, ES256]/'
    cat <<EOF
      - uri: /dpop/*
        roles: [user]
        dpop: required
        dpop-proof-window: 10m
EOF
  } > "$WORK/gatehouse-dpop.yaml"
  grep -q 'algorithms: \[RS256, ES256\]' "$WORK/gatehouse-dpop.yaml" || die "gatehouse-dpop.yaml has no ES256 in algorithms"
  "$GATEHOUSE" check --config "$WORK/gatehouse-dpop.yaml" > /dev/null || die "gatehouse-dpop.yaml does not validate"
fi
cp "$WORK"/*.conf "$WORK"/*.cfg "$WORK"/gatehouse.yaml "$WORK"/gatehouse-session-*.yaml "$WORK"/gatehouse-ws.yaml \
  "$WORK"/gatehouse-rl.yaml "$WORK"/gatehouse-dpop.yaml "$RESULTS/" 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
# 6. Servers (each in the foreground of a background job: its pid is ours to stop).
# ---------------------------------------------------------------------------------------------
wait_port() {  # $1 port, $2 name, [$3 timeout in tenths of a second, default 300]
  for _ in $(seq "${3:-300}"); do
    if ss -Hltn "sport = :$1" | grep -q .; then return 0; fi
    kill -0 "${PIDS[$2]}" 2>/dev/null || die "$2 exited at start (see $WORK/logs/$2.err, LT_KEEP=1 keeps it)"
    sleep 0.1
  done
  die "$2 did not listen on $1 within $(( ${3:-300} / 10 )) s"
}
start_server() {  # $1 name, $2 port, $3... command
  local name=$1 port=$2; shift 2
  "$@" > "$WORK/logs/$name.out" 2> "$WORK/logs/$name.err" &
  PIDS[$name]=$!
  wait_port "$port" "$name"
}

log "starting the upstream and the servers on 127.0.0.1:$((B + 1))-$((B + 9))"
start_server upstream "$P_UP" nginx -p "$WORK" -c "$WORK/upstream.conf"
start_server bare-proxy "$P_BARE" env BARE_PROXY_THREADS=1 "$BARE" "127.0.0.1:$P_BARE" "127.0.0.1:$P_UP"
start_server nginx "$P_NGINX" nginx -p "$WORK" -c "$WORK/nginx.conf"
start_server haproxy "$P_HAP" haproxy -db -f "$WORK/haproxy.cfg"
start_server apache "$P_APACHE" apache2 -f "$WORK/apache.conf" -DFOREGROUND
# gatehouse's stdout (the access log) goes to /dev/null, stderr (its log) to the logs dir.
gh_start() {  # $1 name, $2 port, [$3 timeout in tenths of a second]
  "$GATEHOUSE" run --config "$WORK/$1.yaml" > /dev/null 2> "$WORK/logs/$1.err" &
  PIDS[$1]=$!
  wait_port "$2" "$1" "${3:-300}"
}
gh_start gatehouse "$P_GH"
[[ -f $WORK/gatehouse-tracing.yaml ]] && gh_start gatehouse-tracing "$P_GHTR"
STARTUP_10K=null
if [[ -f $WORK/gatehouse-10k.yaml ]]; then
  # Started before any measurement and alone: its start-up is CPU-bound and would distort runs.
  log "starting gatehouse with $TENANTS tenants (waits up to ${LT_TENANTS_START_TIMEOUT:-600} s)"
  t0=$(date +%s%N)
  gh_start gatehouse-10k "$P_GH10K" $(( ${LT_TENANTS_START_TIMEOUT:-600} * 10 ))
  STARTUP_10K=$(( ($(date +%s%N) - t0) / 1000000 ))
  log "gatehouse with $TENANTS tenants listened after $(( STARTUP_10K / 1000 )).$(( STARTUP_10K % 1000 / 100 )) s"
fi

if ((CLUSTER)); then
  log "Redis Cluster on 127.0.0.1:$REDIS_BASE-$((REDIS_BASE + 5)) (session, ratelimit)"
  mkdir -p "$WORK/redis"
  timeout 120 "$ROOT/testing/redis/cluster.sh" start "$WORK/redis" "$REDIS_BASE" > "$WORK/logs/redis-cluster.out" 2>&1 \
    || { cat "$WORK/logs/redis-cluster.out" >&2; die "Redis Cluster did not start"; }
fi
if ((WS)); then
  log "ws-echo: ws-bench echo on :$P_WS_UP, bare-proxy :$P_WS_BARE, nginx :$P_WS_NGINX, gatehouse :$P_WS_GH"
  start_server ws-echo "$P_WS_UP" "$WSBENCH" echo --listen "127.0.0.1:$P_WS_UP" --handshake-delay-ms 50
  start_server bare-proxy-ws "$P_WS_BARE" env BARE_PROXY_THREADS=1 "$BARE" "127.0.0.1:$P_WS_BARE" "127.0.0.1:$P_WS_UP"
  start_server nginx-ws "$P_WS_NGINX" nginx -p "$WORK" -c "$WORK/nginx-ws.conf"
  gh_start gatehouse-ws "$P_WS_GH"
fi
((RL)) && gh_start gatehouse-rl "$P_RL_GH"
((DPOP)) && gh_start gatehouse-dpop "$P_GHDP"

declare -A COOKIE=()   # session scenario: instance -> Cookie header value (login.py)
if ((SESSION)); then
  log "session: test IdP on :$P_IDP"
  # mod_auth_openidc cannot use a Redis Cluster (see apache-session.conf): one plain node.
  log "session: one standalone Redis on 127.0.0.1:$REDIS_APACHE for Apache mod_auth_openidc"
  timeout 60 "$ROOT/testing/redis/cluster.sh" single "$WORK/redis-apache" "$REDIS_APACHE" > "$WORK/logs/redis-apache.out" 2>&1 \
    || { cat "$WORK/logs/redis-apache.out" >&2; die "Apache's Redis node did not start (see $WORK/logs/redis-apache.out)"; }
  start_server idp "$P_IDP" env IDP_PORT="$P_IDP" IDP_ACCESS_TOKEN_TTL=3600 IDP_REFRESH_TOKEN_TTL=7200 \
    IDP_REDIRECT_URIS="http://demo.localhost:$P_GHS_MEM/oauth/callback,http://demo.localhost:$P_GHS_R0/oauth/callback,http://demo.localhost:$P_GHS_R5/oauth/callback,http://demo.localhost:$P_APACHE_S/oauth2callback" \
    IDP_POST_LOGOUT_REDIRECT_URIS="http://demo.localhost:$P_GHS_MEM/" node "$ROOT/testing/idp/idp.mjs"
  for _ in $(seq 100); do grep -q '^IDP READY' "$WORK/logs/idp.out" && break; sleep 0.1; done
  grep -q '^IDP READY' "$WORK/logs/idp.out" || die "the test IdP did not print IDP READY"
  gh_start gatehouse-session-memory "$P_GHS_MEM"
  gh_start gatehouse-session-redis-nocache "$P_GHS_R0"
  gh_start gatehouse-session-redis-5s "$P_GHS_R5"
  for inst in "memory $P_GHS_MEM" "redis-nocache $P_GHS_R0" "redis-5s $P_GHS_R5"; do
    set -- $inst
    c=""
    for _ in 1 2 3 4 5; do  # the instance may still be fetching the IdP's discovery document
      c=$(timeout 60 python3 "$LT/login.py" --port "$2" --host demo.localhost --path /app/x 2>> "$WORK/logs/login.err") && break
      c=""; sleep 1
    done
    [[ -n $c ]] || { cat "$WORK/logs/login.err" >&2; die "browser login against gatehouse-session-$1 failed"; }
    COOKIE[$1]=$c
  done
  start_server apache-session "$P_APACHE_S" apache2 -f "$WORK/apache-session.conf" -DFOREGROUND
  c=""
  for _ in 1 2 3 4 5; do  # the first request makes mod_auth_openidc fetch the discovery document
    c=$(timeout 60 python3 "$LT/login.py" --port "$P_APACHE_S" --host demo.localhost --path /app/x \
      --cookie-name mod_auth_openidc_session --callback-path /oauth2callback 2>> "$WORK/logs/login.err") && break
    c=""; sleep 1
  done
  [[ -n $c ]] || { cat "$WORK/logs/login.err" >&2
    die "browser login against apache-session failed (see $WORK/logs/login.err and $WORK/logs/apache-session.err, LT_KEEP=1 keeps them)"; }
  COOKIE[apache]=$c
  log "session: alice logged in on the three gatehouse instances and on Apache mod_auth_openidc (login.py)"
fi

# ---------------------------------------------------------------------------------------------
# 7. Preflight: every peer answers what the scenario expects, or the run stops here.
# ---------------------------------------------------------------------------------------------
TOKEN=$(head -1 "$KEYS/token.txt")
# gatehouse-rl's shared-limit fallbacks so far (gatehouse_rate_limit_shared_fallback_total)
rl_fallbacks() {
  curl -s --max-time 5 "http://127.0.0.1:$P_RL_ADMIN/metrics" \
    | awk '/^gatehouse_rate_limit_shared_fallback_total/ { n += $NF } END { printf "%d\n", n }'
}
FORGED=$(head -1 "$KEYS/forged.txt")
expect() {  # $1 expected status, $2 what, curl args...
  local want=$1 what=$2; shift 2
  local got
  got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true)
  [[ $got == "$want" ]] || die "preflight: $what answered $got, expected $want"
}
expect 200 upstream "http://127.0.0.1:$P_UP/public/x"
expect 200 bare-proxy "http://127.0.0.1:$P_BARE/public/x"
expect 200 nginx "http://127.0.0.1:$P_NGINX/public/x"
expect 200 haproxy "http://127.0.0.1:$P_HAP/public/x"
expect 200 "gatehouse white-listed" -H 'Host: lt.localhost' "http://127.0.0.1:$P_GH/public/x"
for peer in "gatehouse $P_GH" "haproxy-jwt $P_HAPJWT" "apache-jwt $P_APACHE"; do
  set -- $peer
  expect 200 "$1 with a valid token" -H 'Host: lt.localhost' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$2/api/x"
  expect 401 "$1 without a token" -H 'Host: lt.localhost' "http://127.0.0.1:$2/api/x"
  expect 401 "$1 with a forged token" -H 'Host: lt.localhost' -H "Authorization: Bearer $FORGED" "http://127.0.0.1:$2/api/x"
done
if [[ -n ${PIDS[gatehouse-10k]:-} ]]; then
  expect 200 "gatehouse (10k tenants)" -H 'Host: lt.localhost' "http://127.0.0.1:$P_GH10K/public/x"
  expect 200 "gatehouse (10k tenants), last tenant" -H "Host: t$(printf %05d $((TENANTS - 1))).example.test" "http://127.0.0.1:$P_GH10K/public/x"
fi
if ((SESSION)); then
  for inst in "memory $P_GHS_MEM" "redis-nocache $P_GHS_R0" "redis-5s $P_GHS_R5"; do
    set -- $inst
    expect 200 "gatehouse-session-$1 public route" -H 'Host: demo.localhost' "http://127.0.0.1:$2/public/x"
    expect 200 "gatehouse-session-$1 with the session cookie" -H 'Host: demo.localhost' -H "Cookie: ${COOKIE[$1]}" "http://127.0.0.1:$2/app/x"
    expect 401 "gatehouse-session-$1 without a cookie (API call)" -H 'Host: demo.localhost' "http://127.0.0.1:$2/app/x"
    expect 302 "gatehouse-session-$1 without a cookie (navigation)" -H 'Host: demo.localhost' -H 'Accept: text/html' "http://127.0.0.1:$2/app/x"
    expect 401 "gatehouse-session-$1 with a forged cookie" -H 'Host: demo.localhost' -H 'Cookie: gatehouse_session=AAAAforgedAAAA' "http://127.0.0.1:$2/app/x"
  done
  expect 200 "apache-session with the session cookie" -H 'Host: demo.localhost' -H "Cookie: ${COOKIE[apache]}" "http://127.0.0.1:$P_APACHE_S/app/x"
  expect 302 "apache-session without a cookie" -H 'Host: demo.localhost' "http://127.0.0.1:$P_APACHE_S/app/x"
  expect 302 "apache-session with an unknown session id" -H 'Host: demo.localhost' \
    -H 'Cookie: mod_auth_openidc_session=AAAAforgedAAAA' "http://127.0.0.1:$P_APACHE_S/app/x"
  loc=$(curl -s -o /dev/null -w '%{redirect_url}' --max-time 5 -H 'Host: demo.localhost' "http://127.0.0.1:$P_APACHE_S/app/x" || true)
  [[ $loc == "$IDP_ISSUER/protocol/openid-connect/auth?"* ]] \
    || die "preflight: apache-session without a cookie redirected to '$loc', expected the IdP's authorization endpoint (see $WORK/logs/apache-session.err)"
fi
if ((WS)); then
  # A few echoes through each WebSocket proxy; gatehouse refuses a handshake without a token.
  for peer in "bare-proxy $P_WS_BARE" "nginx $P_WS_NGINX" "gatehouse $P_WS_GH"; do
    set -- $peer
    timeout 30 "$WSBENCH" client --url "ws://127.0.0.1:$2/api/ws" --host lt.localhost \
      --header "Authorization: Bearer $TOKEN" --conns 2 --messages 10 --timeout 20 > "$WORK/logs/ws-preflight-$1.txt" 2>&1 \
      || die "preflight: WebSocket echo through $1 failed (see $WORK/logs/ws-preflight-$1.txt)"
  done
  expect 401 "gatehouse-ws handshake without a token" -H 'Host: lt.localhost' -H 'Connection: Upgrade' \
    -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
    "http://127.0.0.1:$P_WS_GH/api/ws"
fi
if ((RL)); then
  for path in /api/x /rl-local/x /rl-shared/x; do
    expect 200 "gatehouse-rl $path with a valid token" -H 'Host: lt.localhost' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P_RL_GH$path"
    expect 401 "gatehouse-rl $path without a token" -H 'Host: lt.localhost' "http://127.0.0.1:$P_RL_GH$path"
  done
  for _ in $(seq 12); do  # past the burst of 10
    curl -s -o /dev/null --max-time 5 -H 'Host: lt.localhost' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P_RL_GH/rl-refuse/x" || true
  done
  expect 429 "gatehouse-rl /rl-refuse/x past its burst" -H 'Host: lt.localhost' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P_RL_GH/rl-refuse/x"
  curl -s --max-time 5 "http://127.0.0.1:$P_RL_ADMIN/metrics" | grep -q '^gatehouse_rate_limited_total{' \
    || die "preflight: gatehouse-rl's metrics show no rate-limit refusal"
  # The shared route counts in Redis, not in its local fallback (the first requests may have
  # come before the cluster connection was up: counted from here on).
  sleep 1
  f0=$(rl_fallbacks)
  for _ in $(seq 20); do
    curl -s -o /dev/null --max-time 5 -H 'Host: lt.localhost' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P_RL_GH/rl-shared/x" || true
  done
  [[ $(rl_fallbacks) == "$f0" ]] || die "preflight: gatehouse-rl's shared limit fell back to its local bucket (Redis Cluster not used)"
fi
if ((DPOP)); then
  DPOP_TOKEN=$(head -1 "$KEYS/dpop-token.txt")
  dpop_proofs 1 "$KEYS/dpop-preflight.txt"
  proof=$(head -1 "$KEYS/dpop-preflight.txt")
  url="http://127.0.0.1:$P_GHDP"
  expect 200 "gatehouse-dpop /api/x with a valid bearer token" -H 'Host: lt.localhost' -H "Authorization: Bearer $TOKEN" "$url/api/x"
  expect 401 "gatehouse-dpop /dpop/x with a bearer token" -H 'Host: lt.localhost' -H "Authorization: Bearer $TOKEN" "$url/dpop/x"
  expect 401 "gatehouse-dpop /dpop/x, the bound token without a proof" -H 'Host: lt.localhost' -H "Authorization: DPoP $DPOP_TOKEN" "$url/dpop/x"
  expect 200 "gatehouse-dpop /dpop/x with the bound token and a fresh proof" -H 'Host: lt.localhost' \
    -H "Authorization: DPoP $DPOP_TOKEN" -H "DPoP: $proof" "$url/dpop/x"
  expect 401 "gatehouse-dpop /dpop/x with the same proof again (replay)" -H 'Host: lt.localhost' \
    -H "Authorization: DPoP $DPOP_TOKEN" -H "DPoP: $proof" "$url/dpop/x"
fi
log "preflight passed: every peer answers 200 / 401 / 302 as expected"

# ---------------------------------------------------------------------------------------------
# 8. The matrix: rounds x scenarios x peers, peers rotated every round so drift cancels.
# ---------------------------------------------------------------------------------------------
LUA="$LT/lua/lt.lua"
peers_of() {
  case $1 in
    plain) echo "bare-proxy nginx haproxy gatehouse" ;;
    jwt-warm) echo "bare-proxy gatehouse haproxy-jwt apache-jwt" ;;
    jwt-miss) echo "gatehouse haproxy-jwt" ;;
    mix-80-20) echo "gatehouse haproxy-jwt" ;;
    tenants-1-vs-10000) echo "gatehouse-1-tenant gatehouse-10000-tenants" ;;
    jwt-tracing) echo "gatehouse gatehouse-tracing" ;;
    session) echo "bare-proxy gatehouse-public gatehouse-session-memory gatehouse-session-redis-nocache gatehouse-session-redis-5s apache-session" ;;
    ws-echo) echo "bare-proxy nginx gatehouse" ;;
    ratelimit) echo "gatehouse-jwt gatehouse-rl-local gatehouse-rl-refuse gatehouse-rl-shared" ;;
    dpop) echo "gatehouse gatehouse-dpop" ;;
  esac
}
# ws-bench client arguments of a ws-echo peer, one per line: every handshake carries the same
# Host and bearer token (gatehouse's route needs it; the others pass it on unread).
ws_target_of() {
  local port
  case $1 in bare-proxy) port=$P_WS_BARE ;; nginx) port=$P_WS_NGINX ;; gatehouse) port=$P_WS_GH ;; esac
  printf '%s\n' --url "ws://127.0.0.1:$port/api/ws" --host lt.localhost --header "Authorization: Bearer $TOKEN"
}
# wrk arguments ([-H HEADER] URL -- MODE HOST FILES) of one scenario x peer, one per line
target_of() {
  local s=$1 p=$2 port
  case $p in
    bare-proxy) port=$P_BARE ;; nginx) port=$P_NGINX ;; haproxy) port=$P_HAP ;;
    haproxy-jwt) port=$P_HAPJWT ;; apache-jwt) port=$P_APACHE ;;
    gatehouse|gatehouse-1-tenant) port=$P_GH ;; gatehouse-10000-tenants) port=$P_GH10K ;;
    gatehouse-tracing) port=$P_GHTR ;;
  esac
  [[ $s == jwt-miss && $p == gatehouse ]] && port=$P_GHMISS
  case $p in
    gatehouse-public|gatehouse-session-memory) port=$P_GHS_MEM ;;
    gatehouse-session-redis-nocache) port=$P_GHS_R0 ;; gatehouse-session-redis-5s) port=$P_GHS_R5 ;;
    apache-session) port=$P_APACHE_S ;;
  esac
  case $s in
    session)
      # The session cookie rides on every request of the scenario (bare-proxy and the public
      # route too: the same request bytes). The plain mode of lt.lua keeps wrk's -H headers.
      local c=${COOKIE[memory]} path=/app/x
      case $p in
        gatehouse-session-redis-nocache) c=${COOKIE[redis-nocache]} ;;
        gatehouse-session-redis-5s) c=${COOKIE[redis-5s]} ;;
        apache-session) c=${COOKIE[apache]} ;;
        bare-proxy|gatehouse-public) path=/public/x ;;
      esac
      printf '%s\n' -H "Cookie: $c" "http://127.0.0.1:$port$path" -- plain demo.localhost; return ;;
  esac
  case $s in
    ratelimit)
      local path=/api/x
      case $p in gatehouse-rl-local) path=/rl-local/x ;; gatehouse-rl-refuse) path=/rl-refuse/x ;; gatehouse-rl-shared) path=/rl-shared/x ;; esac
      printf '%s\n' "http://127.0.0.1:$P_RL_GH$path" -- token lt.localhost "$KEYS/token.txt"; return ;;
  esac
  case $s in
    dpop)
      # The bearer peer: jwt-warm's request on this instance. The DPoP peer: the bound token and
      # the round's proofs ($DPOP_PROOF_FILE), each used once; the run stops before they run out.
      case $p in
        gatehouse) printf '%s\n' "http://127.0.0.1:$P_GHDP/api/x" -- token lt.localhost "$KEYS/token.txt" ;;
        gatehouse-dpop) printf '%s\n' "http://127.0.0.1:$P_GHDP/dpop/x" -- dpop lt.localhost \
          "$KEYS/dpop-token.txt" "$DPOP_PROOF_FILE" 0 ;;
      esac
      return ;;
  esac
  case $s in
    plain|tenants-1-vs-10000) printf '%s\n' http://127.0.0.1:$port/public/x -- plain lt.localhost ;;
    jwt-warm|jwt-tracing) printf '%s\n' http://127.0.0.1:$port/api/x -- token lt.localhost $KEYS/token.txt ;;
    jwt-miss) printf '%s\n' http://127.0.0.1:$port/api/x -- miss lt.localhost $KEYS/miss.txt - $MISS_TOKENS ;;
    mix-80-20) printf '%s\n' http://127.0.0.1:$port/api/x -- mix lt.localhost $KEYS/valid.txt $KEYS/forged.txt ;;
  esac
}
rotate() {  # $1 shift, rest: words
  local n=$1; shift
  local a=("$@") i
  for ((i = 0; i < ${#a[@]}; i++)); do printf '%s ' "${a[$(( (i + n) % ${#a[@]} ))]}"; done
}

LOAD_SCENARIOS=()
for s in $SCENARIOS; do [[ $s == idle-10k || $s == instructions ]] || LOAD_SCENARIOS+=("$s"); done
TOTAL=0
for s in "${LOAD_SCENARIOS[@]}"; do set -- $(peers_of "$s"); TOTAL=$(( TOTAL + $# * ROUNDS )); done

cat > "$RESULTS/run.json" <<EOF
{"stamp": "$STAMP", "quick": $QUICK, "duration_s": $DURATION, "rounds": $ROUNDS,
 "connections": $CONNS, "instr_conns": ${LT_INSTR_CONNS:-16}, "wrk_threads": 1, "miss_tokens": $MISS_TOKENS, "tenants": $TENANTS,
 "idle_conns": $IDLE_CONNS, "dpop_proofs": $DPOP_PROOFS, "ws_conns": $WS_CONNS, "ws_messages": $WS_MESSAGES, "ws_size": $WS_SIZE, "scenarios": "$SCENARIOS", "tenants_startup_ms": $STARTUP_10K,
 "host": "$(uname -srm)", "cpus": $(nproc), "load_at_start": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "versions": {"gatehouse": "$("$GATEHOUSE" version | awk '{print $2}')", "nginx": "$(nginx -v 2>&1 | sed 's/.*nginx\///')",
   "haproxy": "$(haproxy -v | head -1 | awk '{print $3}')", "apache": "$(apache2 -v | head -1 | sed 's/.*Apache\///; s/ .*//')",
   "mod_auth_openidc": "$(dpkg-query -W -f='${Version}' libapache2-mod-auth-openidc 2>/dev/null || echo '?')",
   "redis": "$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p')",
   "wrk": "$(wrk -v 2>&1 | head -1 | awk '{print $2}')"}}
EOF

if ((${#LOAD_SCENARIOS[@]})); then
  log "warm-up: 1 s per peer (upstream pools, verified-token cache)"
  for p in bare-proxy nginx haproxy gatehouse; do
    wrk -t1 -c"$CONNS" -d1s -s "$LUA" $(target_of plain "$p") > /dev/null 2>&1 || true
  done
  for p in gatehouse haproxy-jwt apache-jwt; do
    wrk -t1 -c"$CONNS" -d1s -s "$LUA" $(target_of jwt-warm "$p") > /dev/null 2>&1 || true
  done
  if [[ -n ${PIDS[gatehouse-tracing]:-} ]]; then
    wrk -t1 -c"$CONNS" -d1s -s "$LUA" $(target_of jwt-tracing gatehouse-tracing) > /dev/null 2>&1 || true
  fi
  if [[ -n ${PIDS[gatehouse-10k]:-} ]]; then
    wrk -t1 -c"$CONNS" -d1s -s "$LUA" $(target_of tenants-1-vs-10000 gatehouse-10000-tenants) > /dev/null 2>&1 || true
  fi
  if ((SESSION)); then
    for p in $(peers_of session); do
      mapfile -t targs < <(target_of session "$p")
      wrk -t1 -c"$CONNS" -d1s -s "$LUA" "${targs[@]}" > /dev/null 2>&1 || true
    done
  fi
  if ((WS)); then
    for p in $(peers_of ws-echo); do
      mapfile -t wargs < <(ws_target_of "$p")
      timeout 60 "$WSBENCH" client "${wargs[@]}" --conns "$WS_CONNS" --messages 100 --timeout 30 > /dev/null 2>&1 || true
    done
  fi
  if ((RL)); then
    for p in $(peers_of ratelimit); do
      mapfile -t targs < <(target_of ratelimit "$p")
      wrk -t1 -c"$CONNS" -d1s -s "$LUA" "${targs[@]}" > /dev/null 2>&1 || true
    done
  fi
  # dpop: the bearer route only (the upstream pool is the route's; proofs are kept for the runs)
  if ((DPOP)); then
    mapfile -t targs < <(target_of dpop gatehouse)
    wrk -t1 -c"$CONNS" -d1s -s "$LUA" "${targs[@]}" > /dev/null 2>&1 || true
  fi
  log "measuring: $TOTAL runs of ${DURATION}s, $ROUNDS round(s), wrk -t1 -c$CONNS"
fi

N=0
for ((r = 1; r <= ROUNDS; r++)); do
  for s in "${LOAD_SCENARIOS[@]}"; do
    read -ra peers <<< "$(peers_of "$s")"
    for p in $(rotate $((r - 1)) "${peers[@]}"); do
      N=$((N + 1))
      if [[ $s == jwt-miss && $p == gatehouse ]]; then
        # A fresh process per run: an empty verified-token cache, so every token is a miss.
        stop_server gatehouse-miss
        gh_start gatehouse-miss "$P_GHMISS"
        expect 200 "gatehouse-miss" -H 'Host: lt.localhost' "http://127.0.0.1:$P_GHMISS/public/x"
      fi
      out="$RAW/${s}__${p}__r${r}.txt"
      if [[ $p == gatehouse-dpop ]]; then  # this round's proofs, made now (fresh iat)
        DPOP_PROOF_FILE="$KEYS/dpop-proofs-r$r.txt"
        log "dpop: making $((DPOP_PROOFS / ROUNDS)) proofs for round $r"
        dpop_proofs $((DPOP_PROOFS / ROUNDS)) "$DPOP_PROOF_FILE"
      fi
      mapfile -t targs < <(target_of "$s" "$p")
      if [[ $p == apache-session ]]; then  # count mod_auth_openidc's Redis commands in this run
        timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_APACHE" config resetstat > /dev/null 2>&1 \
          || log "WARNING: CONFIG RESETSTAT on Apache's Redis node failed"
      fi
      if [[ $p == gatehouse-rl-shared ]]; then  # count the Redis Cluster's commands in this run
        for port in $(seq "$REDIS_BASE" $((REDIS_BASE + 5))); do
          timeout 5 redis-cli -h 127.0.0.1 -p "$port" config resetstat > /dev/null 2>&1 \
            || log "WARNING: CONFIG RESETSTAT on Redis node $port failed"
        done
      fi
      if [[ $s == ws-echo ]]; then
        # Bounded by count (connections x messages) and by --timeout.
        mapfile -t wargs < <(ws_target_of "$p")
        timeout $((DURATION + 90)) "$WSBENCH" client "${wargs[@]}" --conns "$WS_CONNS" --messages "$WS_MESSAGES" \
          --size "$WS_SIZE" --timeout $((DURATION + 60)) > "$out" 2> "$RAW/${s}__${p}__r${r}.err" \
          || log "ws-bench client exited non-zero for $s/$p (see $out and its .err)"
      else
        # shellcheck disable=SC2046
        timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s --latency -s "$LUA" \
          "${targs[@]}" > "$out" 2>&1 || log "wrk exited non-zero for $s/$p (see $out)"
      fi
      [[ $p == gatehouse-dpop ]] && rm -f "$DPOP_PROOF_FILE"  # used up (and ~35 MB)
      if [[ $p == gatehouse-rl-shared ]]; then  # not named *__*__rN.txt: report.py reads it apart
        for port in $(seq "$REDIS_BASE" $((REDIS_BASE + 5))); do
          timeout 5 redis-cli -h 127.0.0.1 -p "$port" info commandstats 2>&1 || true
        done > "$RAW/ratelimit-shared-redis-r$r.txt"
      fi
      if [[ $p == apache-session ]]; then  # not named *__*__rN.txt: report.py reads it apart
        timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_APACHE" info commandstats > "$RAW/apache-session-redis-r$r.txt" 2>&1 \
          || log "WARNING: INFO commandstats on Apache's Redis node failed"
      fi
      awk -v n="$N" -v t="$TOTAL" -v r="$r" -v R="$ROUNDS" -v s="$s" -v p="$p" -v unit="$([[ $s == ws-echo ]] && echo 'msg/s' || echo 'req/s')" '
        /^LT_SUMMARY/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
        /^LT_WINDOW/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); w[kv[1]] = kv[2] } }
        /^LT_PCT 99 / { p99 = $3 }
        /^LT_PCT 50 / { p50 = $3 }
        END {
          rps = v["duration_us"] > 0 ? v["requests"] / (v["duration_us"] / 1e6) : 0
          if (w["elapsed_us"] > 0) rps = w["requests"] / (w["elapsed_us"] / 1e6)
          err = v["connect"] + v["read"] + v["write"] + v["timeout"]
          printf "[%3d/%d] round %d/%d  %-19s %-24s %8.1fk %s  p50 %6.2f ms  p99 %6.2f ms  non-2xx %d  errors %d\n",
            n, t, r, R, s, p, rps / 1000, unit, p50 / 1000, p99 / 1000, v["status"], err
        }' "$out" >&2
    done
  done
done
stop_server gatehouse-miss
if ((RL)); then  # report.py: the shared limit's local fallbacks over the whole run
  echo "LT_RL_FALLBACKS $(rl_fallbacks)" > "$RAW/ratelimit-fallbacks.txt"
fi

# ---------------------------------------------------------------------------------------------
# 9. Idle keep-alive connections: a fresh instance of each server, IDLE_CONNS connections that
#    each carried one proxied request, then RSS of the serving process.
# ---------------------------------------------------------------------------------------------
if [[ " $SCENARIOS " == *" idle-10k "* ]]; then
  log "idle: $IDLE_CONNS keep-alive connections per server (fresh instances on :$P_IDLE)"
  idle_run() {  # $1 label, $2 pid to measure, $3 host header
    python3 "$LT/idle.py" --target "127.0.0.1:$P_IDLE" --pid "$2" --name "$1" --conns "$IDLE_CONNS" \
      --sources 8 --host "$3" --path /public/x --hold 3 --timeout 120 > "$RAW/idle__$1.txt" 2>&1 \
      || log "idle client reported failures for $1 (see $RAW/idle__$1.txt)"
    grep -h '^\[idle\]' "$RAW/idle__$1.txt" >&2 || true
  }
  start_server idle-bare "$P_IDLE" env BARE_PROXY_THREADS=1 "$BARE" "127.0.0.1:$P_IDLE" "127.0.0.1:$P_UP"
  idle_run bare-proxy "${PIDS[idle-bare]}" lt.localhost
  stop_server idle-bare
  start_server idle-bare-4k "$P_IDLE" env BARE_PROXY_THREADS=1 BARE_PROXY_READ_BUFFER=4096 "$BARE" "127.0.0.1:$P_IDLE" "127.0.0.1:$P_UP"
  idle_run bare-proxy-read-buffer-4k "${PIDS[idle-bare-4k]}" lt.localhost
  stop_server idle-bare-4k
  gh_start gatehouse-idle "$P_IDLE"
  idle_run gatehouse "${PIDS[gatehouse-idle]}" lt.localhost
  stop_server gatehouse-idle
  start_server nginx-idle "$P_IDLE" nginx -p "$WORK" -c "$WORK/nginx-idle.conf"
  worker=""
  for _ in $(seq 50); do worker=$(pgrep -P "${PIDS[nginx-idle]}" | head -1 || true); [[ -n $worker ]] && break; sleep 0.1; done
  [[ -n $worker ]] && idle_run nginx-worker "$worker" lt.localhost
  stop_server nginx-idle
fi

# ---------------------------------------------------------------------------------------------
# 10. Instructions per request under callgrind: the user-space work of one proxied request,
#     which moves only with the code (req/s above also move with the machine). Each server runs
#     alone under valgrind on :$P_IDLE, gets a 2 s warm-up, then its counters are zeroed, wrk
#     runs LT_INSTR_SECONDS and the counters are dumped. The bare proxies and the JWT and
#     white-listed routes get the same bytes (Host and the warm token); with the session
#     scenario, the session route (cache warm, Redis Cluster) gets alice's cookie instead.
# ---------------------------------------------------------------------------------------------
if [[ " $SCENARIOS " == *" instructions "* ]]; then
  if ! command -v valgrind >/dev/null; then
    log "instructions: valgrind is not installed, skipped"
  else
    log "instructions: callgrind, ${LT_INSTR_SECONDS:-4} s of wrk -c${LT_INSTR_CONNS:-16} per server"
    instr_run() {  # $1 label, $2 Host, $3 header, $4 path, $5... command (under valgrind; env set by the caller)
      local name=$1 host=$2 header=$3 path=$4 out="$WORK/callgrind.$1"; shift 4
      # stdout is gatehouse's access log: paid for, not kept (as in the load runs)
      valgrind --tool=callgrind --callgrind-out-file="$out" "$@" > /dev/null 2> "$WORK/logs/cg-$name.err" &
      PIDS[cg-$name]=$!
      wait_port "$P_IDLE" "cg-$name" 1200
      # A gatehouse is measured once ready: its first health-check round loads the system's CA
      # certificates for upstream TLS, several seconds of work under callgrind that would
      # otherwise land in the counted window.
      if [[ $name != bare-proxy* ]]; then
        for _ in $(seq 1200); do
          curl -fsS -o /dev/null "http://127.0.0.1:$P_CG_ADMIN/readyz" 2>/dev/null && break
          sleep 0.1
        done
      fi
      local args=(-t1 "-c${LT_INSTR_CONNS:-16}" -H "Host: $host" -H "$header" "http://127.0.0.1:$P_IDLE$path")
      wrk -d2s "${args[@]}" > /dev/null 2>&1 || true
      callgrind_control -z "${PIDS[cg-$name]}" > /dev/null 2>&1 || true
      local res
      res=$(timeout 120 wrk -d"${LT_INSTR_SECONDS:-4}s" "${args[@]}" 2>&1 || true)
      callgrind_control -d "${PIDS[cg-$name]}" > /dev/null 2>&1 || true
      for _ in $(seq 300); do [[ -s $out.1 ]] && break; sleep 0.1; done
      # The same length of time with no requests: the process's own background work (health
      # checks, timers), which a run that serves fewer requests spreads over fewer of them.
      sleep "${LT_INSTR_SECONDS:-4}"
      callgrind_control -d "${PIDS[cg-$name]}" > /dev/null 2>&1 || true
      for _ in $(seq 300); do [[ -s $out.2 ]] && break; sleep 0.1; done
      stop_server "cg-$name"
      # LT_INSTR_KEEP=DIR keeps each counted profile for callgrind_annotate (NAME.ROUND.callgrind).
      if [[ -n ${LT_INSTR_KEEP:-} && -s $out.1 ]]; then
        mkdir -p "$LT_INSTR_KEEP"
        cp "$out.1" "$LT_INSTR_KEEP/$name.${INSTR_ROUND:-1}.callgrind"
      fi
      local requests non2xx instructions idle
      requests=$(awk '/requests in/ {print $1}' <<< "$res")
      non2xx=$(awk '/Non-2xx/ {print $NF}' <<< "$res")
      instructions=$(awk '/^(summary|totals):/ {print $2; exit}' "$out.1" 2>/dev/null || true)
      idle=$(awk '/^(summary|totals):/ {print $2; exit}' "$out.2" 2>/dev/null || true)
      if [[ -z $requests || -z $instructions ]]; then
        log "instructions: no result for $name (see $WORK/logs/cg-$name.err)"
        return 0
      fi
      printf 'LT_INSTR {"server": "%s", "path": "%s", "requests": %d, "non_2xx": %d, "instructions": %d, "idle_instructions": %d}\n' \
        "$name" "$path" "$requests" "${non2xx:-0}" "$instructions" "${idle:-0}" >> "$RAW/instructions__$name.txt"
      log "instructions: $name $path $(( instructions / requests )) per request, $(( (instructions - ${idle:-0}) / requests )) net of the idle window ($requests requests)"
    }
    bearer="Authorization: Bearer $TOKEN"
    BARE_PROXY_THREADS=1 instr_run bare-proxy lt.localhost "$bearer" /public/x \
      "$BARE" "127.0.0.1:$P_IDLE" "127.0.0.1:$P_UP"
    BARE_PROXY_THREADS=1 BARE_PROXY_TIMEOUTS=1 instr_run bare-proxy-timeouts lt.localhost "$bearer" /public/x \
      "$BARE" "127.0.0.1:$P_IDLE" "127.0.0.1:$P_UP"
    { echo "admin-listen: 127.0.0.1:$P_CG_ADMIN"; gatehouse_conf "$P_IDLE" gatehouse-cg 1; } > "$WORK/gatehouse-cg.yaml"
    # Keys the baseline does not know yet are left out of its copy of the config.
    grep -v -E '^\s*(allow-insecure-http):' "$WORK/gatehouse-cg.yaml" > "$WORK/gatehouse-cg-baseline.yaml"
    # The JWT route with one feature on (the first tenant gets the lines after its
    # identity-provider): a signed identity assertion per request (cached per identity), and a
    # client-ip rate limit too high to refuse anything.
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/assertion.pem" 2> /dev/null
    with_tenant_lines() {  # $1 output, then the lines
      local out=$1; shift
      awk -v add="$(printf '%s\n' "$@")" '{ print } !done && /^    identity-provider: lt$/ { print add; done = 1 }' \
        "$WORK/gatehouse-cg.yaml" > "$out"
      "$GATEHOUSE" check --config "$out" > /dev/null || die "$out does not validate"
    }
    with_tenant_lines "$WORK/gatehouse-cg-assertion.yaml" "    identity-assertion:" \
      "      header: X-Gatehouse-Assertion" "      signing-key: $WORK/assertion.pem"
    with_tenant_lines "$WORK/gatehouse-cg-ratelimit.yaml" "    rate-limits:" \
      "      - { key: client-ip, rate: 1000000/s, burst: 1000000 }"
    # OpenTelemetry tracing at the default ratio 0.01, exporting to the sink.
    { echo "admin-listen: 127.0.0.1:$P_CG_ADMIN"; tracing_conf "$P_IDLE" gatehouse-cg; } > "$WORK/gatehouse-cg-tracing.yaml"
    gatehouse_instr() {
      instr_run gatehouse-white-listed lt.localhost "$bearer" /public/x "$GATEHOUSE" run --config "$WORK/gatehouse-cg.yaml"
      instr_run gatehouse-jwt lt.localhost "$bearer" /api/x "$GATEHOUSE" run --config "$WORK/gatehouse-cg.yaml"
      if [[ ${LT_INSTR_FEATURES:-1} == 1 ]]; then
        instr_run gatehouse-jwt-assertion lt.localhost "$bearer" /api/x "$GATEHOUSE" run --config "$WORK/gatehouse-cg-assertion.yaml"
        instr_run gatehouse-jwt-ratelimit lt.localhost "$bearer" /api/x "$GATEHOUSE" run --config "$WORK/gatehouse-cg-ratelimit.yaml"
        instr_run gatehouse-jwt-tracing lt.localhost "$bearer" /api/x "$GATEHOUSE" run --config "$WORK/gatehouse-cg-tracing.yaml"
      fi
    }
    baseline_instr() {  # the same routes on a gatehouse built from an earlier commit (LT_BASELINE)
      [[ -n ${LT_BASELINE:-} ]] || return 0
      instr_run baseline-white-listed lt.localhost "$bearer" /public/x "$LT_BASELINE" run --config "$WORK/gatehouse-cg-baseline.yaml"
      instr_run baseline-jwt lt.localhost "$bearer" /api/x "$LT_BASELINE" run --config "$WORK/gatehouse-cg-baseline.yaml"
    }
    # Before/after in one run; with LT_INSTR_ROUNDS > 1 the two alternate which goes first, and
    # the report takes the median: one run's count moves by about 1 % with the batching.
    for round in $(seq "${LT_INSTR_ROUNDS:-1}"); do
      INSTR_ROUND=$round
      if ((round % 2)); then gatehouse_instr; baseline_instr; else baseline_instr; gatehouse_instr; fi
    done
    if ((SESSION)); then
      # A fresh instance of the Redis Cluster configuration (local cache 5 s) knows alice's
      # session from the cluster: the session route with its cache warm, as (d).
      { echo "admin-listen: 127.0.0.1:$P_CG_ADMIN"; gatehouse_session_conf "$P_IDLE" gatehouse-session-cg "$REDIS_URL" 5s; } > "$WORK/gatehouse-session-cg.yaml"
      instr_run gatehouse-session demo.localhost "Cookie: ${COOKIE[redis-5s]}" /app/x \
        "$GATEHOUSE" run --config "$WORK/gatehouse-session-cg.yaml"
    fi
  fi
fi

# ---------------------------------------------------------------------------------------------
# 11. Report.
# ---------------------------------------------------------------------------------------------
for name in "${!PIDS[@]}"; do stop_server "$name"; done
# mod_auth_openidc's error log (a Redis or session failure during the runs would show here)
[[ -f $WORK/logs/apache-session.err ]] && cp "$WORK/logs/apache-session.err" "$RESULTS/apache-session-error.log"
# matplotlib draws the plots: the Python tools' venv (created once, scripts/python-venv.sh)
PY=$("$ROOT/scripts/python-venv.sh") || die "could not set up the Python tools' venv (scripts/python-venv.sh)"
"$PY" "$LT/report.py" "$RESULTS" || die "report.py failed"
ln -sfn "$STAMP" "$LT/results/latest"
log "report: $RESULTS/report.md (also loadtest/results/latest/)"
