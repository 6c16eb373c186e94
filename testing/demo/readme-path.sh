#!/usr/bin/env bash
# The README's new-user path ("Quick start"), run as written on a clean clone of this
# repository's HEAD. The commands come from README.md itself (the fenced block after each
# `<!-- readme-test: NAME -->` marker), so the README cannot drift from what works:
#   setup        the set-up command, started in its own process group (as a terminal would)
#   curl, token  every line run in one shell; a comment starting with a status (`# 401: ...`)
#                must be the first HTTP status the line prints, a "quoted text" in the comment
#                must be in its output, and an assignment (`TOKEN=$(...)`) must set a value
#   browser      the first URL is opened in Chromium (testing/browser/e2e.mjs) as each user of
#                the table: the provider's login, the upstream's page showing the user's
#                identity, each route's status from the table, userinfo, logout
#   (Ctrl-C)     SIGINT to the set-up command's process group stops the gateway and the provider
#   without-idp  the same binary alone, without the provider: every line as for curl
# Prints `readme: N passed, M failed` last; exits 1 if anything failed. A missing tool (git,
# node, chromium) fails under CI=true and is reported as SKIPPED otherwise. The demo's fixed
# ports (8080, 9100, 18080, 18090) must be free.
#
# GATEHOUSE_PROFILE (default dev) is passed to scripts/setup.sh: the debug build the test suite
# already has, instead of a release build.
set -uo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gatehouse-target}"
export GATEHOUSE_PROFILE="${GATEHOUSE_PROFILE:-dev}"
BASE_PORTS=(8080 9100 18080 18090)
SETUP_TIMEOUT=${README_SETUP_TIMEOUT:-900}

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -z "${2:-}" ] || sed 's/^/       /' "$2" | tail -40; }
finish() {
  echo "readme: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}
skip_or_fail() {
  if [ "${CI:-}" = "true" ]; then
    fail "$1 (CI=true: a skipped real-component test is a failure)"
    finish
  fi
  echo "SKIPPED readme-path: $1"
  exit 0
}

command -v git >/dev/null 2>&1 || skip_or_fail "git is not installed"
for port in "${BASE_PORTS[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port is taken: the demo listens on 8080, 9100, 18080 and 18090 (stop what holds it)"
    ss -ltnp 2>/dev/null | grep ":$port " | sed 's/^/       /'
    finish
  fi
done

work="$(mktemp -d)"
setup_pgid=""
alone_pid=""
cleanup() {
  [ -z "$setup_pgid" ] || kill -KILL -- "-$setup_pgid" 2>/dev/null
  [ -z "$alone_pid" ] || kill -KILL "$alone_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# -- a clean clone of HEAD
if ! git clone -q "$here" "$work/gatehouse" 2>"$work/clone.err"; then
  fail "git clone of $here" "$work/clone.err"
  finish
fi
clone="$work/gatehouse"
cd "$clone" || exit 1
pass "clean clone of $(git rev-parse --short HEAD)"

# The fenced block after `<!-- readme-test: NAME -->`, or for `browser` the text up to the next
# fenced block or heading.
block() {
  awk -v name="$1" '
    $0 == "<!-- readme-test: " name " -->" { found = 1; next }
    found && name == "browser" { if (/^```/ || /^#/ || /^<!-- readme-test:/) exit; print; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }
  ' README.md
}
for name in setup curl token browser without-idp; do
  [ -n "$(block "$name")" ] || fail "README.md has no block after <!-- readme-test: $name -->"
done
[ "$failed" -eq 0 ] || finish

# Runs each line of block $1 in one bash process (so variables carry over) and checks what its
# comment promises. The lines are the README's, byte for byte.
run_lines() { # name label
  local script="$work/$1.sh" n=0 line expect quoted var
  : >"$script"
  echo 'fails=0' >>"$script"
  while IFS= read -r line; do
    [[ -z "${line// /}" || "$line" =~ ^[[:space:]]*# ]] && continue
    n=$((n + 1))
    expect="" quoted="" var=""
    if [[ "$line" =~ \#[[:space:]]+([1-5][0-9][0-9])([^0-9]|$) ]]; then expect="${BASH_REMATCH[1]}"; fi
    if [[ "$line" =~ \#.*\"([^\"]+)\" ]]; then quoted="${BASH_REMATCH[1]}"; fi
    if [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=\$\( ]]; then var="${BASH_REMATCH[1]}"; fi
    printf -v shown '%q' "$line"
    {
      echo "out=\"\$(mktemp)\""
      echo "{"
      echo "$line"
      echo "} >\"\$out\" 2>&1"
      echo "rc=\$?"
      echo "why=''"
      echo "[ \"\$rc\" -eq 0 ] || why=\"exit \$rc\""
      if [ -n "$expect" ]; then
        echo "got=\$(grep -m1 -o '^HTTP/[0-9.]* [0-9][0-9][0-9]' \"\$out\" | awk '{print \$2}')"
        echo "[ \"\$got\" = '$expect' ] || why=\"\$why status '\$got', the README says $expect\""
      else
        echo "[ -n \"$var\" ] || [ -s \"\$out\" ] || why=\"\$why no output\""
      fi
      if [ -n "$quoted" ]; then
        printf 'grep -qF -- %q "$out" || why="$why output lacks %q"\n' "$quoted" "\"$quoted\""
      fi
      if [ -n "$var" ]; then
        echo "[ -n \"\${$var:-}\" ] && [ \"\${$var}\" != null ] || why=\"\$why \\\$$var is empty\""
      fi
      echo "if [ -z \"\$why\" ]; then echo \"ok   $2: \"$shown; else echo \"FAIL $2:\$why: \"$shown; head -c 600 \"\$out\" | sed 's/^/       /'; echo; fails=\$((fails + 1)); fi"
      echo "rm -f \"\$out\""
    } >>"$script"
  done < <(block "$1")
  echo 'exit "$fails"' >>"$script"
  [ "$n" -gt 0 ] || { fail "$2: the README block $1 has no command"; return; }
  local out
  out="$(bash "$script" 2>&1)"
  local bad=$?
  echo "$out"
  passed=$((passed + n - bad))
  failed=$((failed + bad))
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# -- the set-up command, in its own process group
setup_cmd="$(block setup)"
setsid bash -c "$setup_cmd" >"$work/setup.log" 2>&1 </dev/null &
setup_pid=$!
setup_pgid=$setup_pid
echo "== $setup_cmd (GATEHOUSE_PROFILE=$GATEHOUSE_PROFILE; log: tail follows on failure)"
up=0
for _ in $(seq 1 $((SETUP_TIMEOUT * 2))); do
  if ! kill -0 "$setup_pid" 2>/dev/null; then break; fi
  if curl -s --max-time 2 'http://127.0.0.1:9100/readyz?verbose' 2>/dev/null | grep -q 'identity-provider demo-idp: up'; then
    up=1
    break
  fi
  sleep 0.5
done
if [ "$up" -ne 1 ]; then
  fail "$setup_cmd did not bring up the gateway with its identity provider within ${SETUP_TIMEOUT}s" "$work/setup.log"
  finish
fi
pass "$setup_cmd: the gateway is ready and its identity provider up"

run_lines curl "curl"
run_lines token "token"

# -- the browser, as each user of the README's table
url="$(block browser | grep -o 'http://[^ )>]*' | head -1)"
users="$(block browser | awk -F'|' 'NR > 0 && /^\|/ { for (i = 2; i < NF; i++) { gsub(/^[ `]+|[ `]+$/, "", $i) } if ($2 != "user" && $2 !~ /^-+$/) print $2, $3, $5, $6 }')"
header="$(block browser | grep -m1 '^| user |')"
if [ -z "$url" ] || [ -z "$users" ]; then
  fail "the README's browser paragraph names no URL or no users (url '$url')"
elif [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM_PATH:-}" ]; then
  skip_or_fail "/usr/bin/chromium is missing (apt-get install chromium)"
elif ! command -v node >/dev/null 2>&1 || [ ! -d testing/browser/node_modules/playwright-core ]; then
  skip_or_fail "node or testing/browser/node_modules is missing (./scripts/install-deps.sh)"
else
  origin="$(echo "$url" | grep -o '^http://[^/]*')"
  app_path="${url#"$origin"}"
  # The table's route columns, in order: `/app/` and `/admin/`.
  mapfile -t paths < <(echo "$header" | grep -o '`/[^`]*`' | tr -d '`')
  # Kept after the run: a failing step leaves its screenshot there.
  shots="${TMPDIR:-/tmp}/gatehouse-readme-screenshots"
  rm -rf "$shots"
  while read -r user password app admin; do
    checks=(--check "${paths[0]}=$app" --check "${paths[1]}=$admin")
    if node testing/browser/e2e.mjs --base "$origin" --app-path "$app_path" --user "$user" \
      --password "$password" --expect-user "$user" --expect-text "$user@example.com" \
      --idp http://127.0.0.1:18090/realms/demo --post-logout "$origin/" "${checks[@]}" \
      --screenshot "$shots/$user" >"$work/e2e-$user.json" 2>"$work/e2e-$user.err"; then
      pass "chromium: $user logs in at $url, sees the identity the upstream received, ${paths[0]} $app, ${paths[1]} $admin, logs out"
    else
      cat "$work/e2e-$user.err" >>"$work/e2e-$user.json"
      fail "chromium as $user at $url (screenshots in $shots/$user)" "$work/e2e-$user.json"
    fi
  done <<<"$users"
fi

# -- Ctrl-C: SIGINT to the process group, as a terminal sends it
kill -INT -- "-$setup_pgid" 2>/dev/null
stopped=0
for _ in $(seq 1 40); do
  if ! kill -0 "$setup_pid" 2>/dev/null && ! pgrep -g "$setup_pgid" >/dev/null 2>&1; then stopped=1; break; fi
  sleep 0.25
done
if [ "$stopped" -eq 1 ] && ! listening 8080 && ! listening 18090; then
  pass "Ctrl-C stops the gateway and the identity provider"
  setup_pgid=""
else
  pgrep -a -g "$setup_pgid" >"$work/left" 2>&1
  fail "Ctrl-C left processes or ports behind (8080 listening: $(listening 8080 && echo yes || echo no), 18090: $(listening 18090 && echo yes || echo no))" "$work/left"
  kill -KILL -- "-$setup_pgid" 2>/dev/null
  setup_pgid=""
  sleep 1
fi

# -- the binary alone, without the provider
case "$GATEHOUSE_PROFILE" in dev) bin="$CARGO_TARGET_DIR/debug/gatehouse" ;; *) bin="$CARGO_TARGET_DIR/$GATEHOUSE_PROFILE/gatehouse" ;; esac
"$bin" run >"$work/alone.log" 2>&1 </dev/null &
alone_pid=$!
for _ in $(seq 1 60); do
  curl -s --max-time 2 -o /dev/null http://127.0.0.1:9100/readyz && listening 8080 && break
  sleep 0.5
done
if kill -0 "$alone_pid" 2>/dev/null && listening 8080; then
  pass "gatehouse run starts without the identity provider"
  run_lines without-idp "without the provider"
else
  fail "gatehouse run did not start without the identity provider" "$work/alone.log"
fi
kill -INT "$alone_pid" 2>/dev/null
wait "$alone_pid" 2>/dev/null
alone_pid=""

finish
