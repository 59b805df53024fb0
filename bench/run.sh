#!/usr/bin/env bash
# Token-endpoint load benchmark: Tessera vs npm oidc-provider, with wrk.
# See bench/README.md. All traffic stays on 127.0.0.1.
#
# Environment (all optional):
#   DURATION=15       seconds of measured load per run
#   CONNECTIONS=32    wrk connections
#   THREADS=2         wrk threads
#   WARMUP=3          seconds of discarded load before each measured run (0 = none)
#   TESSERA_PORT=18080 OIDC_PORT=18081
#   TESSERA_BIN=path  use this binary instead of `cargo build --release -p tessera-cli`
#   SERVERS="tessera oidc-provider"   which servers to run
#   OIDC_WORKERS=1    node:cluster workers for oidc-provider (1 = single process)
#   RESULTS_FILE=bench/RESULTS.md     where the results section is appended
#   RUST_LOG=warn     Tessera's log filter during the run
#   ALG=RS256         access-token algorithm on both servers: RS256, ES256 or EdDSA
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

# The exact command, with the overrides that were given, for RESULTS.md.
CMD=""
for v in DURATION CONNECTIONS THREADS WARMUP TESSERA_PORT OIDC_PORT TESSERA_BIN SERVERS OIDC_WORKERS RESULTS_FILE RUST_LOG ALG; do
  if [ -n "${!v+x}" ]; then CMD+="$v=${!v} "; fi
done
CMD+="bench/run.sh${*:+ $*}"

DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-3}
TESSERA_PORT=${TESSERA_PORT:-18080}
OIDC_PORT=${OIDC_PORT:-18081}
SERVERS=${SERVERS:-tessera oidc-provider}
export OIDC_WORKERS=${OIDC_WORKERS:-1}
RESULTS_FILE=${RESULTS_FILE:-$BENCH_DIR/RESULTS.md}
export RUST_LOG=${RUST_LOG:-warn}
ALG=${ALG:-RS256}
case "$ALG" in RS256|ES256|EdDSA) ;; *) echo "ALG must be RS256, ES256 or EdDSA" >&2; exit 2;; esac
export BENCH_ALG=$ALG

if [ "$CONNECTIONS" -lt "$THREADS" ]; then
  echo "CONNECTIONS ($CONNECTIONS) must be >= THREADS ($THREADS)" >&2; exit 2
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }
has() { case " $SERVERS " in *" $1 "*) return 0;; *) return 1;; esac; }
rand_secret() { head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT="$BENCH_DIR/out/$STAMP"          # raw wrk output and server logs (gitignored)
mkdir -p "$OUT"
WORK=$(mktemp -d)                    # secrets, token files, data dir
TESSERA_PID="" OIDC_PID=""

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
  stop_pid "$OIDC_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
command -v curl >/dev/null || die "curl is required"
command -v jq >/dev/null || die "jq is required"
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian package)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi
WRK_VERSION=$(wrk --version 2>&1 | head -1 | awk '{print $2}' || true)

if has oidc-provider; then
  command -v node >/dev/null || die "node is required for oidc-provider"
  if ! (cd "$BENCH_DIR" && npm ls oidc-provider >/dev/null 2>&1); then
    log "npm ci in bench/"
    (cd "$BENCH_DIR" && npm ci --no-audit --no-fund >/dev/null)
  fi
  OIDC_VERSION=$(node -p "require('$BENCH_DIR/node_modules/oidc-provider/package.json').version")
fi

if has tessera && [ -z "${TESSERA_BIN:-}" ]; then
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

field() { # field NAME "BENCH_RESULT k=v ..."
  tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'
}

ROWS=()
NOTES=()
# run_wrk GRANT SERVER SCRIPT URL [env assignments for the warm-up run]
run_wrk() {
  local grant=$1 server=$2 script=$3 url=$4 raw res
  raw="$OUT/$server-$grant.txt"
  if [ "$WARMUP" -gt 0 ]; then
    log "$server $grant: ${WARMUP}s warm-up"
    env ${WARMUP_ENV:-} wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" --timeout 10s \
      -s "$BENCH_DIR/$script" "$url" > "$OUT/$server-$grant.warmup.txt" 2>&1 \
      || die "wrk warm-up failed, see $OUT/$server-$grant.warmup.txt"
  fi
  log "$server $grant: ${DURATION}s, $THREADS threads, $CONNECTIONS connections"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency --timeout 10s \
    -s "$BENCH_DIR/$script" "$url" > "$raw" 2>&1 || { cat "$raw" >&2; die "wrk failed"; }
  cat "$raw" >&2
  res=$(grep '^BENCH_RESULT' "$raw") || die "no BENCH_RESULT line in $raw"
  local non200 bad sock
  non200=$(field non200 "$res")
  bad=$(field bad_body "$res")
  sock=$(( $(field sock_connect "$res") + $(field sock_read "$res") + $(field sock_write "$res") + $(field sock_timeout "$res") ))
  ROWS+=("| $grant | $server | $(field rps "$res") | $(field p50_ms "$res") ms | $(field p99_ms "$res") ms | $non200 |")
  if [ "$bad" != 0 ] || [ "$sock" != 0 ]; then
    NOTES+=("- $server $grant: $bad 200-responses without the expected token fields, $sock socket errors/timeouts")
  fi
  if [ "$non200" != 0 ]; then
    NOTES+=("- $server $grant: $non200 non-200 responses (a correct run has 0); see $raw")
  fi
}

export BENCH_CLIENT_ID=bench
export BENCH_CLIENT_SECRET
BENCH_CLIENT_SECRET=$(rand_secret)
export BENCH_THREADS=$THREADS
TESSERA_INFO="" OIDC_INFO=""

# ---------------------------------------------------------------- Tessera
if has tessera; then
  [ -x "$TESSERA_BIN" ] || die "no Tessera binary at $TESSERA_BIN"
  port_free "$TESSERA_PORT" || die "port $TESSERA_PORT is in use"
  BASE="http://127.0.0.1:$TESSERA_PORT"
  ADMIN_PW=$(rand_secret)
  mkdir -p "$WORK/tessera-data"
  log "starting $TESSERA_BIN on $BASE"
  TESSERA_BOOTSTRAP_ADMIN_PASSWORD=$ADMIN_PW "$TESSERA_BIN" serve \
    --data-dir "$WORK/tessera-data" --listen "127.0.0.1:$TESSERA_PORT" --public-url "$BASE" \
    > "$OUT/tessera.log" 2>&1 &
  TESSERA_PID=$!
  if ! wait_http "$BASE/health/ready" "$TESSERA_PID"; then
    tail -n 30 "$OUT/tessera.log" >&2
    die "Tessera did not become ready at $BASE/health/ready within 60 s"
  fi
  log "Tessera ready (pid $TESSERA_PID)"

  # Admin token: password grant on realm master, client admin-cli.
  http POST "$BASE/realms/master/protocol/openid-connect/token" \
    -d grant_type=password -d client_id=admin-cli -d username=admin --data-urlencode "password=$ADMIN_PW"
  expect 200 "admin token (password grant, realm master, admin-cli)"
  ADMIN_TOKEN=$(jq -r '.access_token // empty' <<<"$BODY")
  [ -n "$ADMIN_TOKEN" ] || die "admin token response has no access_token: $BODY"
  AUTH=(-H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: application/json")

  http POST "$BASE/admin/realms" "${AUTH[@]}" \
    -d "$(jq -n --arg a "$ALG" '{realm: "bench", enabled: true, defaultSignatureAlgorithm: $a}')"
  expect 201 "create realm bench"
  http POST "$BASE/admin/realms/bench/clients" "${AUTH[@]}" -d "$(jq -n --arg s "$BENCH_CLIENT_SECRET" '{
      clientId: "bench", enabled: true, protocol: "openid-connect",
      publicClient: false, clientAuthenticatorType: "client-secret", secret: $s,
      serviceAccountsEnabled: true, directAccessGrantsEnabled: true, standardFlowEnabled: false}')"
  expect 201 "create client bench"
  USER_PW=$(rand_secret)
  http POST "$BASE/admin/realms/bench/users" "${AUTH[@]}" -d "$(jq -n --arg p "$USER_PW" '{
      username: "bench-user", enabled: true, email: "bench-user@example.test", emailVerified: true,
      firstName: "Bench", lastName: "User",
      credentials: [{type: "password", value: $p, temporary: false}]}')"
  expect 201 "create user bench-user"

  TOKEN_URL="$BASE/realms/bench/protocol/openid-connect/token"
  # One request by hand first, to fail early and to record the token format.
  http POST "$TOKEN_URL" -d grant_type=client_credentials -d client_id=bench \
    --data-urlencode "client_secret=$BENCH_CLIENT_SECRET"
  expect 200 "client_credentials token from Tessera"
  TESSERA_FORMAT=$(describe_token "$(jq -r '.access_token // empty' <<<"$BODY")")
  log "Tessera client_credentials access token: $TESSERA_FORMAT"

  # Initial refresh tokens: threads * (connections/threads + 1), see refresh_token.lua.
  get_refresh_tokens() { # FILE
    local n=$(( THREADS * (CONNECTIONS / THREADS + 1) )) i rt
    : > "$1"
    for i in $(seq "$n"); do
      http POST "$TOKEN_URL" -d grant_type=password -d client_id=bench \
        --data-urlencode "client_secret=$BENCH_CLIENT_SECRET" \
        -d username=bench-user --data-urlencode "password=$USER_PW"
      expect 200 "password grant for bench-user (refresh token $i/$n)"
      rt=$(jq -r '.refresh_token // empty' <<<"$BODY")
      [ -n "$rt" ] || die "password grant response has no refresh_token: $BODY"
      echo "$rt" >> "$1"
    done
  }
  log "obtaining refresh tokens with the password grant"
  get_refresh_tokens "$WORK/rt-measure.txt"
  if [ "$WARMUP" -gt 0 ]; then get_refresh_tokens "$WORK/rt-warmup.txt"; fi

  WARMUP_ENV="" run_wrk client_credentials tessera client_credentials.lua "$TOKEN_URL"
  export BENCH_RT_FILE="$WORK/rt-measure.txt"
  WARMUP_ENV="BENCH_RT_FILE=$WORK/rt-warmup.txt" \
    run_wrk refresh_token tessera refresh_token.lua "$TOKEN_URL"

  TESSERA_RSS=$(peak_rss_kib "$TESSERA_PID")
  kill -0 "$TESSERA_PID" 2>/dev/null || die "Tessera exited during the run; see $OUT/tessera.log"
  stop_pid "$TESSERA_PID"; TESSERA_PID=""
  TESSERA_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")
  if [ -n "$(git -C "$REPO" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    TESSERA_REV+=" + uncommitted changes"
  fi
  TESSERA_INFO="Tessera $TESSERA_REV ($(basename "$(dirname "$TESSERA_BIN")") build, SQLite store in a temp dir, RUST_LOG=$RUST_LOG): access token $TESSERA_FORMAT; peak RSS (VmHWM) $(mib "$TESSERA_RSS")"
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

  OTOKEN_URL="$OBASE/token"
  http POST "$OTOKEN_URL" -d grant_type=client_credentials -d client_id=bench \
    --data-urlencode "client_secret=$BENCH_CLIENT_SECRET"
  expect 200 "client_credentials token from oidc-provider"
  OIDC_FORMAT=$(describe_token "$(jq -r '.access_token // empty' <<<"$BODY")")
  log "oidc-provider client_credentials access token: $OIDC_FORMAT"

  WARMUP_ENV="" run_wrk client_credentials oidc-provider client_credentials.lua "$OTOKEN_URL"

  OIDC_RSS=$(peak_rss_kib "$OIDC_PID")
  kill -0 "$OIDC_PID" 2>/dev/null || die "oidc-provider exited during the run; see $OUT/oidc-provider.log"
  stop_pid "$OIDC_PID"; OIDC_PID=""
  OIDC_INFO="oidc-provider $OIDC_VERSION on Node $(node --version) (workers=$OIDC_WORKERS, in-memory adapter, resource indicators with accessTokenFormat 'jwt'): access token $OIDC_FORMAT; peak RSS (VmHWM) $(mib "$OIDC_RSS")"
fi

# ---------------------------------------------------------------- report
CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
TABLE=$(
  echo "| grant | server | requests/s | p50 | p99 | non-2xx |"
  echo "| --- | --- | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${ROWS[@]}"
)
REPORT=$(
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- command: \`$CMD\`"
  echo "- machine: $(nproc) CPUs (nproc), $(uname -m), ${CPU_MODEL:-unknown CPU}; load generator on the same machine"
  echo "- load: wrk ${WRK_VERSION:-?}, $THREADS threads, $CONNECTIONS connections, ${DURATION}s measured after ${WARMUP}s discarded warm-up, POST form to 127.0.0.1, client_secret_post"
  [ -z "$TESSERA_INFO" ] || echo "- $TESSERA_INFO"
  [ -z "$OIDC_INFO" ] || echo "- $OIDC_INFO"
  echo "- raw output: bench/out/$STAMP/"
  echo
  echo "$TABLE"
  if [ "${#NOTES[@]}" -gt 0 ]; then echo; printf '%s\n' "${NOTES[@]}"; fi
)
echo
echo "$REPORT"
if [ ! -f "$RESULTS_FILE" ]; then
  printf '# Benchmark results\n\nAppended by bench/run.sh; newest last.\n' > "$RESULTS_FILE"
fi
printf '\n%s\n' "$REPORT" >> "$RESULTS_FILE"
log "appended to $RESULTS_FILE"
if [ "${#NOTES[@]}" -gt 0 ]; then exit 1; fi
