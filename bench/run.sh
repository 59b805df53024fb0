#!/usr/bin/env bash
# Load benchmark: Tessera vs npm oidc-provider, side by side, with wrk.
# See bench/README.md. All traffic stays on 127.0.0.1.
#
# Scenarios (each after a discarded warm-up, every response checked):
#   health_live         GET /health/live, Tessera only: the HTTP ceiling
#   client_credentials  confidential client, client_secret_post, JWT access token
#   refresh_token       rotating refresh tokens, each spent once
#   introspection       RFC 7662, one valid user access token, "active":true
# RSS of each server is sampled every 200 ms into out/<stamp>/rss.csv; idle,
# peak and after-load RSS per scenario, and Tessera's restart-to-ready, go
# into the report; bench/chart.py draws throughput and RSS over time.
#
# Environment (all optional):
#   DURATION=15       seconds of measured load per run
#   CONNECTIONS=32    wrk connections
#   THREADS=2         wrk threads
#   WARMUP=3          seconds of discarded load before each measured run (0 = none)
#   SCENARIOS="health_live client_credentials refresh_token introspection"
#   SERVERS="tessera oidc-provider"   which servers to run
#   ALG=RS256         access-token algorithm on both servers: RS256, ES256 or EdDSA
#   IDLE=2            seconds of RSS samples before each scenario's load (idle RSS)
#   SETTLE=10         seconds after each load before the after-load RSS is read
#   RESTARTS=5        Tessera restarts on its data dir for restart-to-ready (0 = skip)
#   PG=0              1: also refresh_token on PostgreSQL, one node and two nodes
#   PG_URL=postgres://postgres@127.0.0.1:5432/postgres   where PG=1 creates (and
#                     drops at exit) a fresh database for the run
#   TESSERA_PORT=18080 TESSERA_PORT2=18082 OIDC_PORT=18081
#   TESSERA_BIN=path  use this binary instead of `cargo build --release -p tessera-cli`
#   OIDC_WORKERS=1    node:cluster workers for oidc-provider (1 = single process)
#   RESULTS_FILE=bench/RESULTS.md     where the results section is appended
#   CHART=bench/results.png           where the chart is copied (0 = no chart)
#   RUST_LOG=warn     Tessera's log filter during the run
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

# The exact command, with the overrides that were given, for RESULTS.md.
KNOBS="DURATION CONNECTIONS THREADS WARMUP SCENARIOS SERVERS ALG IDLE SETTLE RESTARTS PG PG_URL
  TESSERA_PORT TESSERA_PORT2 OIDC_PORT TESSERA_BIN OIDC_WORKERS RESULTS_FILE CHART RUST_LOG"
CMD=""
for v in $KNOBS; do
  if [ -n "${!v+x}" ]; then
    case "${!v}" in *" "*) CMD+="$v=\"${!v}\" ";; *) CMD+="$v=${!v} ";; esac
  fi
done
CMD+="bench/run.sh${*:+ $*}"

DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3}
SCENARIOS=${SCENARIOS:-health_live client_credentials refresh_token introspection}
SERVERS=${SERVERS:-tessera oidc-provider}
IDLE=${IDLE:-2}
SETTLE=${SETTLE:-10}
RESTARTS=${RESTARTS:-5}
PG=${PG:-0}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
TESSERA_PORT=${TESSERA_PORT:-18080}
TESSERA_PORT2=${TESSERA_PORT2:-18082}
OIDC_PORT=${OIDC_PORT:-18081}
export OIDC_WORKERS=${OIDC_WORKERS:-1}
RESULTS_FILE=${RESULTS_FILE:-$BENCH_DIR/RESULTS.md}
CHART=${CHART:-$BENCH_DIR/results.png}
export RUST_LOG=${RUST_LOG:-warn}
ALG=${ALG:-RS256}
case "$ALG" in RS256|ES256|EdDSA) ;; *) echo "ALG must be RS256, ES256 or EdDSA" >&2; exit 2;; esac
export BENCH_ALG=$ALG
for s in $SCENARIOS; do
  case "$s" in health_live|client_credentials|refresh_token|introspection) ;;
    *) echo "unknown scenario $s" >&2; exit 2;; esac
done

if [ "$CONNECTIONS" -lt "$THREADS" ]; then
  echo "CONNECTIONS ($CONNECTIONS) must be >= THREADS ($THREADS)" >&2; exit 2
fi
if [ "$PG" = 1 ] && [ "$CONNECTIONS" -lt 2 ]; then
  echo "PG=1 needs CONNECTIONS >= 2 (two nodes, half each)" >&2; exit 2
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }
has() { case " $SERVERS " in *" $1 "*) return 0;; *) return 1;; esac; }
wants() { case " $SCENARIOS " in *" $1 "*) return 0;; *) return 1;; esac; }
rand_secret() { head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$BENCH_DIR/out/$STAMP"          # raw wrk output, server logs, CSVs (gitignored)
mkdir -p "$OUT"
WORK=$(mktemp -d)                    # secrets, token files, data dirs
TESSERA_PID="" TESSERA2_PID="" OIDC_PID="" PG_DB=""
SAMPLER_PIDS=()

stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$TESSERA_PID"
  stop_pid "$TESSERA2_PID"
  stop_pid "$OIDC_PID"
  for p in "${SAMPLER_PIDS[@]}"; do stop_pid "$p"; done
  if [ -n "$PG_DB" ]; then
    psql "$PG_URL" -qAtc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
command -v curl >/dev/null || die "curl is required"
command -v jq >/dev/null || die "jq is required"
command -v python3 >/dev/null || die "python3 is required"
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
WRK_VERSION=$(wrk --version 2>&1 | head -1 | awk '{print $2}' || true)
if [ "$PG" = 1 ]; then
  command -v psql >/dev/null || die "PG=1 needs psql"
  psql "$PG_URL" -qAtc 'select 1' >/dev/null || die "PG=1: cannot connect to PG_URL=$PG_URL"
fi

if has oidc-provider; then
  command -v node >/dev/null || die "node is required for oidc-provider"
  if ! (cd "$BENCH_DIR" && npm ls oidc-provider >/dev/null 2>&1); then
    log "npm ci in bench/"
    (cd "$BENCH_DIR" && npm ci --no-audit --no-fund >/dev/null)
  fi
  OIDC_VERSION=$(node -p "require('$BENCH_DIR/node_modules/oidc-provider/package.json').version")
fi

if { has tessera || [ "$PG" = 1 ]; } && [ -z "${TESSERA_BIN:-}" ]; then
  log "cargo build --release -p tessera-cli"
  (cd "$REPO" && cargo build --release -p tessera-cli)
  TESSERA_BIN="$REPO/target/release/tessera"
fi

# ---------------------------------------------------------------- helpers
# http METHOD URL [curl args...]: sets STATUS and BODY (and HEADERS file).
http() {
  local method=$1 url=$2; shift 2
  STATUS=$(curl -sS -X "$method" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' \
    --max-time 30 "$@" "$url") || STATUS=000
  BODY=$(cat "$WORK/body" 2>/dev/null || true)
}
expect() { # expect CODE WHAT
  [ "$STATUS" = "$1" ] || die "$2: expected HTTP $1, got $STATUS: $BODY"
}

# Describe an access token: "JWT RS256 (typ at+jwt)" or "opaque (N chars)".
describe_token() {
  local tok=$1 hdr
  if [[ "$tok" =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]]; then
    hdr=$(b64url_decode "${tok%%.*}")
    echo "JWT $(jq -r '.alg' <<<"$hdr") (typ $(jq -r '.typ // "-"' <<<"$hdr"))"
  else
    echo "opaque (${#tok} chars)"
  fi
}
b64url_decode() {
  local s
  s=$(tr '_-' '/+' <<<"$1")
  case $(( ${#s} % 4 )) in 2) s+="==";; 3) s+="=";; esac
  base64 -d <<<"$s" 2>/dev/null || true
}

wait_http() { # wait_http URL PID WHAT
  for _ in $(seq 600); do
    kill -0 "$2" 2>/dev/null || return 1
    if curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

port_free() { ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null; }

peak_rss_kib() { # VmHWM of PID plus its direct children (cluster workers)
  local total=0 p v
  for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
    v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
mib_n() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

field() { # field NAME "BENCH_RESULT k=v ..."
  tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'
}

# ---------------------------------------------------------------- RSS sampling
# rss_now PID...: current VmRSS in KiB of the PIDs and their direct children
# (cluster workers), summed. Shell builtins only: it runs every 200 ms.
rss_now() {
  local total=0 p c k v _ kids
  for p in "$@"; do
    kids=()
    read -r -a kids 2>/dev/null < "/proc/$p/task/$p/children" || true
    for c in "$p" "${kids[@]}"; do
      while read -r k v _; do
        if [ "$k" = VmRSS: ]; then total=$(( total + v )); break; fi
      done 2>/dev/null < "/proc/$c/status" || true
    done
  done
  echo "$total"
}
RUN_T0_US=${EPOCHREALTIME/[.,]/}
# set_phase SERVER LABEL: what the sampler of SERVER writes next to its samples.
set_phase() { echo "$2" > "$OUT/.phase-$1.new" && mv "$OUT/.phase-$1.new" "$OUT/.phase-$1"; }
# start_sampler SERVER PID...: every 200 ms, append "SERVER,seconds since the
# run started,phase,RSS KiB" to $OUT/rss-SERVER.csv while the first PID lives.
start_sampler() {
  local server=$1; shift
  set_phase "$server" start
  : >> "$OUT/rss-$server.csv"
  (
    trap - EXIT
    f="$OUT/rss-$server.csv"
    while kill -0 "$1" 2>/dev/null; do
      now=${EPOCHREALTIME/[.,]/}
      read -r phase < "$OUT/.phase-$server" || phase=""
      ms=$(( (now - RUN_T0_US) / 1000 ))
      printf '%s,%d.%03d,%s,%d\n' "$server" $(( ms / 1000 )) $(( ms % 1000 )) "$phase" "$(rss_now "$@")" >> "$f"
      sleep 0.2
    done
  ) &
  SAMPLER_PIDS+=($!)
}
# peak_sampled SERVER SCENARIO: highest sampled RSS during its warm-up and load.
peak_sampled() {
  awk -F, -v p1="$2:warmup" -v p2="$2:load" '($3 == p1 || $3 == p2) && $4 > m { m = $4 } END { print m + 0 }' \
    "$OUT/rss-$1.csv"
}

# ---------------------------------------------------------------- wrk
ROWS=()
NOTES=()
echo "scenario,server,rps,p50_ms,p99_ms,non2xx,idle_rss_kib,peak_rss_kib,after_rss_kib" > "$OUT/summary.csv"

# wrk_once SECONDS THREADS CONNS SCRIPT URL OUTFILE [--latency]
wrk_once() {
  wrk -t"$2" -c"$3" -d"${1}s" ${7:-} --timeout 10s -s "$BENCH_DIR/$4" "$5" > "$6" 2>&1
}

# run_scenario SCENARIO SERVER SCRIPT URL [URL2]
# Runs the warm-up and the measured load (with two URLs: two wrk processes at
# once, each with half the threads and connections, one per node), samples
# RSS of RSS_PIDS under the label SERVER, and records a row.
# For refresh_token.lua, RT_BASE names token files: $RT_BASE.{warmup,measure}.{0,1}.
run_scenario() {
  local scenario=$1 server=$2 script=$3; shift 3
  local urls=("$@") n=$# raw="$OUT/$server-$scenario.txt" res i t c
  local idle peak after
  t=$THREADS c=$CONNECTIONS
  if [ "$n" -gt 1 ]; then t=$(( THREADS / n )); [ "$t" -ge 1 ] || t=1; c=$(( CONNECTIONS / n )); fi
  set_phase "$server" "$scenario:idle"
  sleep "$IDLE"
  idle=$(rss_now "${RSS_PIDS[@]}")
  if [ "$WARMUP" -gt 0 ]; then
    log "$server $scenario: ${WARMUP}s warm-up"
    set_phase "$server" "$scenario:warmup"
    local wpids=()
    for i in $(seq 0 $(( n - 1 ))); do
      BENCH_THREADS=$t BENCH_RT_FILE="${RT_BASE:-none}.warmup.$i" \
        wrk_once "$WARMUP" "$t" "$c" "$script" "${urls[$i]}" "$OUT/$server-$scenario.warmup.$i.txt" &
      wpids+=($!)
    done
    for i in "${!wpids[@]}"; do
      wait "${wpids[$i]}" || die "wrk warm-up failed, see $OUT/$server-$scenario.warmup.$i.txt"
    done
  fi
  log "$server $scenario: ${DURATION}s, $THREADS threads, $CONNECTIONS connections$([ "$n" -gt 1 ] && echo " over $n wrk processes")"
  set_phase "$server" "$scenario:load"
  local mpids=()
  for i in $(seq 0 $(( n - 1 ))); do
    BENCH_THREADS=$t BENCH_RT_FILE="${RT_BASE:-none}.measure.$i" \
      wrk_once "$DURATION" "$t" "$c" "$script" "${urls[$i]}" "$raw.$i" --latency &
    mpids+=($!)
  done
  for i in "${!mpids[@]}"; do
    wait "${mpids[$i]}" || { cat "$raw.$i" >&2; die "wrk failed"; }
  done
  set_phase "$server" "$scenario:after"
  cat "$raw".* > "$raw"; rm -f "$raw".*
  cat "$raw" >&2
  # One BENCH_RESULT per wrk process; two are summed (requests/s) and their
  # percentiles taken at the worse of the two.
  res=$(grep '^BENCH_RESULT' "$raw" | awk '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); k = kv[1]; v = kv[2]
        if (k ~ /^p[0-9]+_ms$|^max_ms$|^duration_s$/) { if (v > a[k]) a[k] = v } else if (k == "grant") g = v; else a[k] += v }
      n++ }
    END { if (n == 0) exit 1
      printf "BENCH_RESULT grant=%s wrk_processes=%d", g, n
      for (k in a) printf " %s=%s", k, a[k]; print "" }') || die "no BENCH_RESULT line in $raw"
  local non200 bad sock
  non200=$(field non200 "$res")
  bad=$(field bad_body "$res")
  sock=$(( $(field sock_connect "$res") + $(field sock_read "$res") + $(field sock_write "$res") + $(field sock_timeout "$res") ))
  [ "$n" -gt 1 ] && log "$server $scenario combined: $res"
  sleep "$SETTLE"
  after=$(rss_now "${RSS_PIDS[@]}")
  peak=$(peak_sampled "$server" "$scenario")
  set_phase "$server" "between"
  local rps p50 p99
  rps=$(awk -v r="$(field rps "$res")" 'BEGIN { printf "%.1f", r }')
  p50=$(field p50_ms "$res") p99=$(field p99_ms "$res")
  ROWS+=("| $scenario | $server | $rps | $p50 ms | $p99 ms | $non200 | $(mib_n "$idle") | $(mib_n "$peak") | $(mib_n "$after") |")
  echo "$scenario,$server,$rps,$p50,$p99,$non200,$idle,$peak,$after" >> "$OUT/summary.csv"
  if [ "$bad" != 0 ] || [ "$sock" != 0 ]; then
    NOTES+=("- $server $scenario: $bad 200-responses without the expected fields, $sock socket errors/timeouts")
  fi
  if [ "$non200" != 0 ]; then
    NOTES+=("- $server $scenario: $non200 non-200 responses (a correct run has 0); see $raw")
  fi
}

export BENCH_CLIENT_ID=bench
export BENCH_CLIENT_SECRET
BENCH_CLIENT_SECRET=$(rand_secret)
TESSERA_INFO="" OIDC_INFO="" PG_INFO="" READY_INFO=""
# Initial refresh tokens per wrk process: threads * (connections/threads + 1), see refresh_token.lua.
rt_count() { echo $(( $1 * ($2 / $1 + 1) )); }

# ---------------------------------------------------------------- Tessera
# tessera_start NAME PORT DATA_DIR [serve args...]: starts it in the
# background (TESSERA_PID_OUT), waits for /health/ready.
tessera_start() {
  local name=$1 port=$2 dir=$3; shift 3
  port_free "$port" || die "port $port is in use"
  mkdir -p "$dir"
  log "starting $TESSERA_BIN ($name) on 127.0.0.1:$port"
  "$TESSERA_BIN" serve --data-dir "$dir" --listen "127.0.0.1:$port" "$@" > "$OUT/$name.log" 2>&1 &
  TESSERA_PID_OUT=$!
  if ! wait_http "http://127.0.0.1:$port/health/ready" "$TESSERA_PID_OUT"; then
    tail -n 30 "$OUT/$name.log" >&2
    die "Tessera ($name) did not become ready at 127.0.0.1:$port/health/ready within 60 s"
  fi
  log "Tessera ($name) ready (pid $TESSERA_PID_OUT)"
}

# tessera_setup BASE: realm bench (ALG), confidential client bench, user
# bench-user (USER_PW), through the Admin REST API with ADMIN_PW.
tessera_setup() {
  local base=$1
  http POST "$base/realms/master/protocol/openid-connect/token" \
    -d grant_type=password -d client_id=admin-cli -d username=admin --data-urlencode "password=$ADMIN_PW"
  expect 200 "admin token (password grant, realm master, admin-cli)"
  local admin_token
  admin_token=$(jq -r '.access_token // empty' <<<"$BODY")
  [ -n "$admin_token" ] || die "admin token response has no access_token: $BODY"
  local auth=(-H "Authorization: Bearer $admin_token" -H "Content-Type: application/json")
  http POST "$base/admin/realms" "${auth[@]}" \
    -d "$(jq -n --arg a "$ALG" '{realm: "bench", enabled: true, defaultSignatureAlgorithm: $a}')"
  expect 201 "create realm bench"
  http POST "$base/admin/realms/bench/clients" "${auth[@]}" -d "$(jq -n --arg s "$BENCH_CLIENT_SECRET" '{
      clientId: "bench", enabled: true, protocol: "openid-connect",
      publicClient: false, clientAuthenticatorType: "client-secret", secret: $s,
      serviceAccountsEnabled: true, directAccessGrantsEnabled: true, standardFlowEnabled: false}')"
  expect 201 "create client bench"
  http POST "$base/admin/realms/bench/users" "${auth[@]}" -d "$(jq -n --arg p "$USER_PW" '{
      username: "bench-user", enabled: true, email: "bench-user@example.test", emailVerified: true,
      firstName: "Bench", lastName: "User",
      credentials: [{type: "password", value: $p, temporary: false}]}')"
  expect 201 "create user bench-user"
}

# tessera_password_grant TOKEN_URL: sets BODY to a password-grant response for bench-user.
tessera_password_grant() {
  http POST "$1" -d grant_type=password -d client_id=bench \
    --data-urlencode "client_secret=$BENCH_CLIENT_SECRET" \
    -d username=bench-user --data-urlencode "password=$USER_PW"
  expect 200 "password grant for bench-user"
}
# tessera_refresh_tokens TOKEN_URL FILE N: N refresh tokens (password grant), one a line.
tessera_refresh_tokens() {
  local i rt
  : > "$2"
  for i in $(seq "$3"); do
    tessera_password_grant "$1"
    rt=$(jq -r '.refresh_token // empty' <<<"$BODY")
    [ -n "$rt" ] || die "password grant response has no refresh_token: $BODY"
    echo "$rt" >> "$2"
  done
}
# tessera_rt_files TOKEN_URL PROCESSES: token files for run_scenario (RT_BASE).
tessera_rt_files() {
  local url=$1 n=$2 i t c
  t=$THREADS c=$CONNECTIONS
  if [ "$n" -gt 1 ]; then t=$(( THREADS / n )); [ "$t" -ge 1 ] || t=1; c=$(( CONNECTIONS / n )); fi
  RT_BASE="$WORK/rt-$RANDOM"
  log "obtaining refresh tokens with the password grant"
  for i in $(seq 0 $(( n - 1 ))); do
    tessera_refresh_tokens "$url" "$RT_BASE.measure.$i" "$(rt_count "$t" "$c")"
    if [ "$WARMUP" -gt 0 ]; then tessera_refresh_tokens "$url" "$RT_BASE.warmup.$i" "$(rt_count "$t" "$c")"; fi
  done
}
tessera_rev() {
  local rev
  rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")
  if [ -n "$(git -C "$REPO" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    rev+=" + uncommitted changes"
  fi
  echo "$rev"
}

ADMIN_PW=$(rand_secret)
USER_PW=$(rand_secret)
TOKEN_PATH=/realms/bench/protocol/openid-connect/token
INTROSPECT_PATH=/realms/bench/protocol/openid-connect/token/introspect

if has tessera; then
  [ -x "$TESSERA_BIN" ] || die "no Tessera binary at $TESSERA_BIN"
  BASE="http://127.0.0.1:$TESSERA_PORT"
  TDATA="$WORK/tessera-data"
  TESSERA_BOOTSTRAP_ADMIN_PASSWORD=$ADMIN_PW tessera_start tessera "$TESSERA_PORT" "$TDATA" --public-url "$BASE"
  TESSERA_PID=$TESSERA_PID_OUT
  RSS_PIDS=("$TESSERA_PID")
  start_sampler tessera "$TESSERA_PID"
  sleep "$IDLE"; TESSERA_IDLE0=$(rss_now "$TESSERA_PID")   # started, no request yet
  tessera_setup "$BASE"

  TOKEN_URL="$BASE$TOKEN_PATH"
  # One request by hand first, to fail early and to record the token format.
  http POST "$TOKEN_URL" -d grant_type=client_credentials -d client_id=bench \
    --data-urlencode "client_secret=$BENCH_CLIENT_SECRET"
  expect 200 "client_credentials token from Tessera"
  TESSERA_FORMAT=$(describe_token "$(jq -r '.access_token // empty' <<<"$BODY")")
  log "Tessera client_credentials access token: $TESSERA_FORMAT"

  if wants health_live; then
    http GET "$BASE/health/live"; expect 200 "Tessera /health/live"
    RT_BASE="" run_scenario health_live tessera health_live.lua "$BASE/health/live"
  fi
  if wants client_credentials; then
    RT_BASE="" run_scenario client_credentials tessera client_credentials.lua "$TOKEN_URL"
  fi
  if wants refresh_token; then
    tessera_rt_files "$TOKEN_URL" 1
    run_scenario refresh_token tessera refresh_token.lua "$TOKEN_URL"
  fi
  if wants introspection; then
    # A user's access token (password grant): introspection checks its session too.
    tessera_password_grant "$TOKEN_URL"
    export BENCH_INTROSPECT_TOKEN
    BENCH_INTROSPECT_TOKEN=$(jq -r '.access_token // empty' <<<"$BODY")
    http POST "$BASE$INTROSPECT_PATH" -d client_id=bench --data-urlencode "client_secret=$BENCH_CLIENT_SECRET" \
      --data-urlencode "token=$BENCH_INTROSPECT_TOKEN"
    expect 200 "Tessera introspection"
    [ "$(jq -r .active <<<"$BODY")" = true ] || die "Tessera introspection: not active: $BODY"
    RT_BASE="" run_scenario introspection tessera introspection.lua "$BASE$INTROSPECT_PATH"
  fi

  TESSERA_RSS=$(peak_rss_kib "$TESSERA_PID")
  kill -0 "$TESSERA_PID" 2>/dev/null || die "Tessera exited during the run; see $OUT/tessera.log"
  stop_pid "$TESSERA_PID"; TESSERA_PID=""
  TESSERA_INFO="Tessera: binary $TESSERA_BIN, work tree at $(tessera_rev), SQLite store in a temp dir, RUST_LOG=$RUST_LOG: access token $TESSERA_FORMAT; RSS after start (before any request) $(mib "$TESSERA_IDLE0"), peak RSS (VmHWM) over all its scenarios $(mib "$TESSERA_RSS")"

  if [ "$RESTARTS" -gt 0 ]; then
    log "Tessera restart-to-ready: $RESTARTS starts on the data dir of this run"
    READY=$(python3 "$BENCH_DIR/ready_timing.py" "$RESTARTS" "$BASE/health/ready" "$OUT/tessera-restarts.log" -- \
      "$TESSERA_BIN" serve --data-dir "$TDATA" --listen "127.0.0.1:$TESSERA_PORT" --public-url "$BASE") \
      || die "restart-to-ready failed; see $OUT/tessera-restarts.log"
    read -r _ R_MED R_MIN R_MAX R_ALL <<<"$READY"
    echo "restart_to_ready_ms,$R_MED,$R_MIN,$R_MAX,$R_ALL" > "$OUT/restart.csv"
    READY_INFO="Tessera restart to ready (spawn to first 200 from /health/ready, polled every 2 ms, on this run's data dir with its sessions): median $R_MED ms over $RESTARTS starts (min $R_MIN, max $R_MAX)"
  fi
fi

# ---------------------------------------------------------------- oidc-provider
if has oidc-provider; then
  port_free "$OIDC_PORT" || die "port $OIDC_PORT is in use"
  OBASE="http://127.0.0.1:$OIDC_PORT"
  log "starting oidc-provider $OIDC_VERSION on $OBASE"
  node "$BENCH_DIR/oidc-provider.mjs" "$OIDC_PORT" > "$OUT/oidc-provider.log" 2>&1 &
  OIDC_PID=$!
  for _ in $(seq 300); do
    grep -q 'oidc-provider listening' "$OUT/oidc-provider.log" 2>/dev/null && break
    kill -0 "$OIDC_PID" 2>/dev/null || break
    sleep 0.1
  done
  grep -q 'oidc-provider listening' "$OUT/oidc-provider.log" \
    || { cat "$OUT/oidc-provider.log" >&2; die "oidc-provider did not start"; }
  RSS_PIDS=("$OIDC_PID")
  start_sampler oidc-provider "$OIDC_PID"
  sleep "$IDLE"; OIDC_IDLE0=$(rss_now "$OIDC_PID")   # started, no request yet

  OTOKEN_URL="$OBASE/token"
  http POST "$OTOKEN_URL" -d grant_type=client_credentials -d client_id=bench \
    --data-urlencode "client_secret=$BENCH_CLIENT_SECRET"
  expect 200 "client_credentials token from oidc-provider"
  OIDC_FORMAT=$(describe_token "$(jq -r '.access_token // empty' <<<"$BODY")")
  log "oidc-provider client_credentials access token: $OIDC_FORMAT"
  # oidc_tokens N KIND [RESOURCE]: tokens from authorization_code flows, one a line.
  oidc_tokens() {
    node "$BENCH_DIR/oidc-provider-tokens.mjs" "$OBASE" "$@" || die "oidc-provider-tokens.mjs $* failed"
  }

  if wants client_credentials; then
    RT_BASE="" run_scenario client_credentials oidc-provider client_credentials.lua "$OTOKEN_URL"
  fi
  if wants refresh_token; then
    log "obtaining oidc-provider refresh tokens with authorization_code flows"
    RT_BASE="$WORK/ort"
    oidc_tokens "$(rt_count "$THREADS" "$CONNECTIONS")" refresh_token > "$RT_BASE.measure.0"
    if [ "$WARMUP" -gt 0 ]; then oidc_tokens "$(rt_count "$THREADS" "$CONNECTIONS")" refresh_token > "$RT_BASE.warmup.0"; fi
    http POST "$OTOKEN_URL" -d grant_type=refresh_token -d client_id=bench \
      --data-urlencode "client_secret=$BENCH_CLIENT_SECRET" --data-urlencode "refresh_token=$(oidc_tokens 1 refresh_token)"
    expect 200 "oidc-provider refresh"
    OIDC_REFRESH_FORMAT="access token $(describe_token "$(jq -r '.access_token // empty' <<<"$BODY")"), response fields $(jq -r 'keys | join(" ")' <<<"$BODY")"
    run_scenario refresh_token oidc-provider refresh_token.lua "$OTOKEN_URL"
  fi
  if wants introspection; then
    # oidc-provider introspects only opaque tokens: a user's access token for
    # the opaque resource, from an authorization_code flow.
    export BENCH_INTROSPECT_TOKEN
    BENCH_INTROSPECT_TOKEN=$(oidc_tokens 1 access_token "$OBASE/bench-opaque")
    http POST "$OBASE/token/introspection" -d client_id=bench --data-urlencode "client_secret=$BENCH_CLIENT_SECRET" \
      --data-urlencode "token=$BENCH_INTROSPECT_TOKEN"
    expect 200 "oidc-provider introspection"
    [ "$(jq -r .active <<<"$BODY")" = true ] || die "oidc-provider introspection: not active: $BODY"
    RT_BASE="" run_scenario introspection oidc-provider introspection.lua "$OBASE/token/introspection"
  fi

  OIDC_RSS=$(peak_rss_kib "$OIDC_PID")
  kill -0 "$OIDC_PID" 2>/dev/null || die "oidc-provider exited during the run; see $OUT/oidc-provider.log"
  stop_pid "$OIDC_PID"; OIDC_PID=""
  OIDC_INFO="oidc-provider $OIDC_VERSION on Node $(node --version) (workers=$OIDC_WORKERS, in-memory adapter, resource indicators with accessTokenFormat 'jwt', rotateRefreshToken true): access token $OIDC_FORMAT${OIDC_REFRESH_FORMAT:+; refresh: $OIDC_REFRESH_FORMAT}; RSS after start (before any request) $(mib "$OIDC_IDLE0"), peak RSS (VmHWM) $(mib "$OIDC_RSS")"
fi

# ---------------------------------------------------------------- PostgreSQL
if [ "$PG" = 1 ]; then
  [ -x "$TESSERA_BIN" ] || die "no Tessera binary at $TESSERA_BIN"
  PG_DB="tessera_bench_$(date +%s)_$$"
  psql "$PG_URL" -qAtc "CREATE DATABASE $PG_DB" >/dev/null || die "cannot create database $PG_DB"
  DB_URL="${PG_URL%/*}/$PG_DB"
  BASE="http://127.0.0.1:$TESSERA_PORT"
  BASE2="http://127.0.0.1:$TESSERA_PORT2"
  TOKEN_URL="$BASE$TOKEN_PATH"
  TESSERA_BOOTSTRAP_ADMIN_PASSWORD=$ADMIN_PW tessera_start tessera-pg "$TESSERA_PORT" "$WORK/pg-a" \
    --database-url "$DB_URL" --public-url "$BASE"
  TESSERA_PID=$TESSERA_PID_OUT
  start_sampler tessera-pg "$TESSERA_PID"
  tessera_setup "$BASE"

  RSS_PIDS=("$TESSERA_PID")
  tessera_rt_files "$TOKEN_URL" 1
  run_scenario refresh_token tessera-pg refresh_token.lua "$TOKEN_URL"

  # A second node on the same database and master key, behind the same public
  # URL (the issuer), as behind a load balancer; wrk sends half the load to each.
  TESSERA_MASTER_KEY=$(cat "$WORK/pg-a/master.key") tessera_start tessera-pg-b "$TESSERA_PORT2" "$WORK/pg-b" \
    --database-url "$DB_URL" --public-url "$BASE"
  TESSERA2_PID=$TESSERA_PID_OUT
  RSS_PIDS=("$TESSERA_PID" "$TESSERA2_PID")
  start_sampler tessera-pg-2nodes "$TESSERA_PID" "$TESSERA2_PID"
  tessera_rt_files "$TOKEN_URL" 2
  run_scenario refresh_token tessera-pg-2nodes refresh_token.lua "$TOKEN_URL" "$BASE2$TOKEN_PATH"

  kill -0 "$TESSERA_PID" 2>/dev/null || die "Tessera (PostgreSQL) exited during the run; see $OUT/tessera-pg.log"
  kill -0 "$TESSERA2_PID" 2>/dev/null || die "Tessera (PostgreSQL, node b) exited during the run; see $OUT/tessera-pg-b.log"
  stop_pid "$TESSERA2_PID"; TESSERA2_PID=""
  stop_pid "$TESSERA_PID"; TESSERA_PID=""
  PG_VERSION=$(psql "$DB_URL" -qAtc 'show server_version' 2>/dev/null || echo "?")
  PG_INFO="PostgreSQL $PG_VERSION on this machine (fresh database, server defaults): tessera-pg is one node; tessera-pg-2nodes adds a second node on the same database and master key, each wrk process sending half the threads and connections to one node (requests/s summed, p50/p99 the worse of the two, RSS both nodes summed)"
fi

for p in "${SAMPLER_PIDS[@]}"; do stop_pid "$p"; done
SAMPLER_PIDS=()
{ echo "server,t_s,phase,rss_kib"; cat "$OUT"/rss-*.csv 2>/dev/null || true; } > "$OUT/rss.csv"
rm -f "$OUT"/rss-*.csv "$OUT"/.phase-*

# What chart.py puts in its title.
REV=$(tessera_rev)
printf '%s\n' "$CMD" > "$OUT/command.txt"
printf 'date=%s\ncommit=%s\nalg=%s\nmachine=%s CPUs, %s\nload=wrk %s threads, %s connections, %ss after %ss warm-up\n' \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$REV" "$ALG" "$(nproc)" \
  "$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)" \
  "$THREADS" "$CONNECTIONS" "$DURATION" "$WARMUP" > "$OUT/meta.txt"

CHART_INFO=""
# ---------------------------------------------------------------- chart
if [ "$CHART" != 0 ]; then
  VENV="$BENCH_DIR/.venv"
  if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "creating $VENV (matplotlib, pinned in bench/requirements.txt)"
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -r "$BENCH_DIR/requirements.txt" \
      || NOTES+=("- chart: could not install bench/requirements.txt into bench/.venv")
  fi
  if "$VENV/bin/python" "$BENCH_DIR/chart.py" "$OUT" "$OUT/results.png" >&2; then
    if [ "$CHART" != "$OUT/results.png" ]; then cp "$OUT/results.png" "$CHART"; fi
    log "chart: $CHART"
    case "$(realpath "$CHART")" in
      "$REPO"/*) CHART_INFO="chart: $(realpath --relative-to="$REPO" "$CHART")";;
      *) CHART_INFO="chart: $CHART";;
    esac
    CHART_INFO+=" (and bench/out/$STAMP/results.png)"
  else
    log "chart.py failed; no chart"
  fi
fi

# ---------------------------------------------------------------- report
CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
TABLE=$(
  echo "| scenario | server | requests/s | p50 | p99 | non-2xx | RSS idle MiB | RSS peak MiB | RSS after MiB |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${ROWS[@]}"
)
# Ratios for the issue's targets, from summary.csv.
RATIOS=$(awk -F, 'NR > 1 { r[$1 "/" $2] = $3 }
  END {
    live = r["health_live/tessera"]
    split("client_credentials refresh_token introspection", s, " ")
    for (i = 1; i <= 3; i++) {
      t = r[s[i] "/tessera"]; o = r[s[i] "/oidc-provider"]
      line = ""
      if (t > 0 && o > 0) line = line sprintf(" %.2fx oidc-provider;", t / o)
      if (t > 0 && live > 0) line = line sprintf(" %.2f of /health/live;", t / live)
      if (s[i] != "client_credentials" && t > 0 && r["client_credentials/tessera"] > 0)
        line = line sprintf(" %.2f of its client_credentials;", t / r["client_credentials/tessera"])
      if (line != "") { sub(/;$/, "", line); printf "- Tessera %s:%s\n", s[i], line }
    }
    p1 = r["refresh_token/tessera-pg"]; p2 = r["refresh_token/tessera-pg-2nodes"]
    if (p1 > 0 && p2 > 0) printf "- Tessera refresh_token on PostgreSQL: two nodes %.2fx one node\n", p2 / p1
  }' "$OUT/summary.csv")
REPORT=$(
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- command: \`$CMD\`"
  echo "- machine: $(nproc) CPUs (nproc), $(uname -m), ${CPU_MODEL:-unknown CPU}; load generator on the same machine"
  echo "- load: wrk ${WRK_VERSION:-?}, $THREADS threads, $CONNECTIONS connections, ${DURATION}s measured after ${WARMUP}s discarded warm-up, to 127.0.0.1, client_secret_post; ALG=$ALG"
  echo "- RSS: VmRSS sampled every 200 ms (bench/out/$STAMP/rss.csv); idle = just before the warm-up, after ${IDLE}s without load; peak = highest sample during warm-up and load (below idle when memory held from before the scenario, such as password hashing for its tokens, is returned during it); after = ${SETTLE}s after the load"
  [ -z "$TESSERA_INFO" ] || echo "- $TESSERA_INFO"
  [ -z "$READY_INFO" ] || echo "- $READY_INFO"
  [ -z "$OIDC_INFO" ] || echo "- $OIDC_INFO"
  [ -z "$PG_INFO" ] || echo "- $PG_INFO"
  echo "- raw output: bench/out/$STAMP/ (summary.csv, rss.csv, wrk output, server logs)"
  [ -z "$CHART_INFO" ] || echo "- $CHART_INFO"
  echo
  echo "$TABLE"
  if [ -n "$RATIOS" ]; then echo; echo "$RATIOS"; fi
  if [ "${#NOTES[@]}" -gt 0 ]; then echo; printf '%s\n' "${NOTES[@]}"; fi
)
echo
echo "$REPORT"
printf '%s\n' "$REPORT" > "$OUT/report.md"

if [ ! -f "$RESULTS_FILE" ]; then
  printf '# Benchmark results\n\nAppended by bench/run.sh; newest last.\n' > "$RESULTS_FILE"
fi
printf '\n%s\n' "$REPORT" >> "$RESULTS_FILE"
log "appended to $RESULTS_FILE"
if [ "${#NOTES[@]}" -gt 0 ]; then exit 1; fi
