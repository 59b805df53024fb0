// Soak: SOCKETS authenticated Socket.IO connections held while the token
// endpoint takes RATE requests/s for DURATION_SECS; the server's RSS is
// sampled every SAMPLE_SECS and must stay flat (issue 17, item 10).
//
//   node bench/soak.mjs                                   # 10000 sockets, 1000 req/s, 600 s
//   SOCKETS=500 RATE=200 DURATION_SECS=30 node bench/soak.mjs   # a quick check
//
// Knobs (environment): SOCKETS (10000), RATE (1000), DURATION_SECS (600),
// SAMPLE_SECS (10), USERS (100: socket users, tokens round-robin),
// CONCURRENCY (200 handshakes in flight), CHAINS (64 refresh chains),
// REFRESH_PCT (20: share of refresh_token grants, the rest client_credentials),
// MAX_INFLIGHT (256 token requests in flight), ALG (ES256: the token realm's
// signing algorithm), EMIT_EVERY_SECS (60; 0 = no me-channel checks),
// SETTLE_SECS (5), TESSERA_BIN (target/release/tessera, built if missing),
// OUT (bench/out/soak-<stamp>/), CHART (bench/soak.png at the full default
// size, else OUT/soak.png; 0 = none).
//
// Setup: `tessera serve` on SQLite in a temp dir (production password hashing,
// TESSERA_SOCKET_MAX_PER_USER=SOCKETS). Through the Admin REST API: realm
// `soak` (ALG) with confidential client `soak` (client_credentials and
// password) and user `soak-user`, whose CHAINS password grants start the
// refresh chains; USERS users in the default realm `tessera`, each logging in
// once (public client `tessera-cli`) for the sockets' tokens, plus one spare
// session per me-channel check. Sockets: websocket transport, handshake
// `auth: {token}`, CONCURRENCY handshakes in flight (as sockets.mjs).
//
// Load: a fixed-rate scheduler (every 2 ms it sends what is due, at most
// MAX_INFLIGHT in flight, over one keep-alive http.Agent); request n is a
// refresh_token grant on an idle chain when its turn in the REFRESH_PCT mix
// comes (each chain continues from its last refresh token; a chain is busy
// while its request is in flight, and a refresh turn finding every chain busy
// sends client_credentials instead and is counted), else client_credentials
// (client_secret_post). A backlog of more than one second is dropped and
// counted as skipped (the generator or server fell behind). Every response
// is checked: 200 with an access_token (and a refresh_token for refresh);
// anything else, or a network error or a 10 s timeout, is an error.
//
// Every EMIT_EVERY_SECS (at +5 s, between RSS samples) one spare session of
// user k is logged out (back-channel logout with its refresh token): the
// server publishes `session_revoked` {sessionId} on the user's me-channel,
// which every socket of user k must receive within 5 s, while none of them is
// cut (they hold another session).
//
// Each sample: the server's VmRSS (/proc/<pid>/status), requests completed in
// the window, errors, connected sockets and disconnects, window p50/p99, and
// the CPU of server and generator, to tell who fell behind. At the end every
// socket must answer a `ping` ack. Rules (PASS/FAIL, exit 1 on any FAIL):
//   sockets: all SOCKETS still connected, 0 disconnects, every ping answered
//   errors:  0 request errors
//   rate:    achieved rate (completed / duration) >= 95% of RATE
//   RSS:     last sample within 10% of the reference sample (at 60 s, or half
//            the run if shorter); the linear-fit slope from the reference on
//            is reported in MiB/min
//   me-channel: every check reached every socket of its user
// Output: OUT/samples.csv, OUT/report.md (printed too), OUT/server.log, chart.
import { spawn, spawnSync, execSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, appendFileSync, existsSync, copyFileSync, openSync } from "node:fs";
import { tmpdir, cpus } from "node:os";
import { join, dirname, relative } from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { io } from "socket.io-client";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, "..");
const env = (k, d) => Number(process.env[k] ?? d);
const SOCKETS = env("SOCKETS", 10000);
const RATE = env("RATE", 1000);
const DURATION_SECS = env("DURATION_SECS", 600);
const SAMPLE_SECS = env("SAMPLE_SECS", 10);
const USERS = env("USERS", 100);
const CONCURRENCY = env("CONCURRENCY", 200);
const CHAINS = env("CHAINS", 64);
const REFRESH_PCT = env("REFRESH_PCT", 20);
const MAX_INFLIGHT = env("MAX_INFLIGHT", 256);
const EMIT_EVERY_SECS = env("EMIT_EVERY_SECS", 60);
const SETTLE_SECS = env("SETTLE_SECS", 5);
const ALG = process.env.ALG ?? "ES256";
const DEFAULT_BIN = join(REPO, "target/release/tessera");
const BIN = process.env.TESSERA_BIN ?? DEFAULT_BIN;
const STAMP = new Date().toISOString().replace(/[-:]/g, "").slice(0, 15) + "Z";
const OUT = process.env.OUT ?? join(HERE, "out", `soak-${STAMP}`);
const FULL = SOCKETS === 10000 && RATE === 1000 && DURATION_SECS === 600;
const CHART = process.env.CHART ?? (FULL ? join(HERE, "soak.png") : join(OUT, "soak.png"));
const REQ_TIMEOUT_MS = 10000;
const CLIENT_SECRET = "soak-secret-0123456789";
const PASSWORD = "soak-pw-0123456789";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error(`[soak ${new Date().toISOString().slice(11, 19)}]`, ...a);
mkdirSync(OUT, { recursive: true });

// ---------------------------------------------------------------- server ---
if (!existsSync(BIN)) {
  if (process.env.TESSERA_BIN) throw new Error(`TESSERA_BIN ${BIN} does not exist`);
  log("building target/release/tessera (cargo build --release -p tessera-cli)");
  execSync("cargo build --release -p tessera-cli", { cwd: REPO, stdio: "inherit" });
}
const port = 20000 + Math.floor(Math.random() * 20000);
const base = `http://127.0.0.1:${port}`;
const dataDir = mkdtempSync(join(tmpdir(), "tessera-soak-"));
const serverLog = openSync(join(OUT, "server.log"), "a");
const server = spawn(BIN, ["serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`], {
  env: {
    PATH: process.env.PATH,
    RUST_LOG: process.env.RUST_LOG ?? "warn",
    TESSERA_BOOTSTRAP_ADMIN_PASSWORD: "soak-admin",
    TESSERA_SOCKET_MAX_PER_USER: String(SOCKETS),
  },
  stdio: ["ignore", serverLog, serverLog],
});
let serverExited = null;
server.on("exit", (code, signal) => { serverExited = { code, signal }; });
const status = () => readFileSync(`/proc/${server.pid}/status`, "utf8");
const kib = (s, k) => Number(s.match(new RegExp(`${k}:\\s+(\\d+)`))[1]);
const rssMiB = () => kib(status(), "VmRSS") / 1024;
const hz = 100; // USER_HZ
const cpuTicks = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime
};

async function waitReady() {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${base}/health/ready`)).ok) return;
    } catch {}
    await sleep(100);
  }
  throw new Error("server not ready");
}

async function form(path, body, expect = 200) {
  const r = await fetch(base + path, { method: "POST", body: new URLSearchParams(body) });
  const text = await r.text();
  if (r.status !== expect) throw new Error(`${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function adminPost(token, path, body) {
  const r = await fetch(base + path, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (r.status !== 201) throw new Error(`${path}: ${r.status} ${await r.text()}`);
}

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString());

// Two password grants at a time (argon2id runs on the server's hashing pool).
async function inPairs(n, f) {
  const out = new Array(n);
  let next = 0;
  await Promise.all([0, 1].map(async () => {
    while (next < n) { const i = next++; out[i] = await f(i); }
  }));
  return out;
}

await waitReady();
log(`tessera ${BIN} pid ${server.pid} on ${base}, data ${dataDir}, out ${OUT}`);
const admin = (await form("/realms/master/protocol/openid-connect/token", {
  grant_type: "password", client_id: "admin-cli", username: "admin", password: "soak-admin",
})).access_token;
await adminPost(admin, "/admin/realms", { realm: "soak", enabled: true, defaultSignatureAlgorithm: ALG });
await adminPost(admin, "/admin/realms/soak/clients", {
  clientId: "soak", enabled: true, protocol: "openid-connect", publicClient: false,
  clientAuthenticatorType: "client-secret", secret: CLIENT_SECRET,
  serviceAccountsEnabled: true, directAccessGrantsEnabled: true, standardFlowEnabled: false,
});
await adminPost(admin, "/admin/realms/soak/users", {
  username: "soak-user", enabled: true, email: "soak-user@example.test", emailVerified: true,
  firstName: "Soak", lastName: "User", credentials: [{ type: "password", value: PASSWORD, temporary: false }],
});
const TOKEN_PATH = "/realms/soak/protocol/openid-connect/token";
const chains = await inPairs(CHAINS, async (i) => ({
  id: i,
  rt: (await form(TOKEN_PATH, {
    grant_type: "password", client_id: "soak", client_secret: CLIENT_SECRET, username: "soak-user", password: PASSWORD,
  })).refresh_token,
  busy: false, dead: false, refreshes: 0,
}));
log(`realm soak (${ALG}), client soak, ${CHAINS} refresh chains`);

// Socket users in the default realm: one session each for the sockets, and
// one spare session per me-channel check.
const CHECKS = EMIT_EVERY_SECS > 0 && DURATION_SECS > 10 ? Math.floor((DURATION_SECS - 10) / EMIT_EVERY_SECS) + 1 : 0;
const userIds = [];
const tokens = await inPairs(USERS, async (i) => {
  const r = await fetch(`${base}/admin/realms/tessera/users`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ username: `soak-${i}`, enabled: true, credentials: [{ type: "password", value: `pw-${i}`, temporary: false }] }),
  });
  if (r.status !== 201) throw new Error(`create user: ${r.status} ${await r.text()}`);
  const t = (await form("/realms/tessera/protocol/openid-connect/token", {
    grant_type: "password", client_id: "tessera-cli", username: `soak-${i}`, password: `pw-${i}`,
  })).access_token;
  userIds[i] = claims(t).sub;
  return t;
});
const spare = await inPairs(CHECKS, async (c) => {
  const user = (c * 37) % USERS;
  const r = await form("/realms/tessera/protocol/openid-connect/token", {
    grant_type: "password", client_id: "tessera-cli", username: `soak-${user}`, password: `pw-${user}`,
  });
  return { user, rt: r.refresh_token, sid: claims(r.access_token).sid ?? claims(r.access_token).session_state };
});
log(`${USERS} socket users, ${CHECKS} spare sessions for me-channel checks`);

// --------------------------------------------------------------- sockets ---
const sockets = [];
let connected = 0, connectFailed = 0, disconnects = 0;
const disconnectLog = [];
const revokedSeen = new Map(); // sid -> count of sockets that heard session_revoked
let loadStarted = 0;
{
  let next = 0;
  const t0 = performance.now();
  const one = () => new Promise((resolve) => {
    const i = next++;
    const s = io(base, { transports: ["websocket"], reconnection: false, auth: { token: tokens[i % USERS] } });
    s.userIndex = i % USERS;
    sockets.push(s);
    s.once("authenticated", () => {
      connected++;
      s.on("disconnect", (reason) => {
        connected--; disconnects++;
        if (disconnectLog.length < 20) disconnectLog.push(`${((performance.now() - loadStarted) / 1000).toFixed(1)} s: ${reason}`);
      });
      resolve();
    });
    s.once("connect_error", (e) => { connectFailed++; if (connectFailed <= 5) log("connect_error", e.message); resolve(); });
    s.on("session_revoked", (d) => revokedSeen.set(d?.sessionId, (revokedSeen.get(d?.sessionId) ?? 0) + 1));
  });
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (next < SOCKETS) await one(); }));
  log(`${connected} sockets authenticated (${connectFailed} failed) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (connected !== SOCKETS) {
    server.kill("SIGTERM");
    throw new Error(`only ${connected} of ${SOCKETS} sockets authenticated`);
  }
}
await sleep(SETTLE_SECS * 1000);

// ------------------------------------------------------------------ load ---
const agent = new http.Agent({ keepAlive: true, maxSockets: MAX_INFLIGHT, timeout: 30000 });
const total = Math.ceil(RATE * DURATION_SECS * 1.05) + 1000;
const latencies = new Float64Array(total);
let nLat = 0;
let sent = 0, done = 0, inflight = 0, errors = 0, skipped = 0, refreshBusy = 0;
let ccDone = 0, refreshDone = 0, chainsDead = 0;
const errorLog = [];
let win = { lat: [], done: 0 };
const noteError = (what) => {
  errors++;
  if (errorLog.length < 20) errorLog.push(`${((performance.now() - loadStarted) / 1000).toFixed(1)} s: ${what}`);
};

function tokenRequest(chain) {
  const body = new URLSearchParams(chain
    ? { grant_type: "refresh_token", client_id: "soak", client_secret: CLIENT_SECRET, refresh_token: chain.rt }
    : { grant_type: "client_credentials", client_id: "soak", client_secret: CLIENT_SECRET }).toString();
  const started = performance.now();
  inflight++; sent++;
  if (chain) chain.busy = true;
  let settled = false;
  const finish = (ok, what) => {
    if (settled) return;
    settled = true;
    inflight--;
    if (chain) chain.busy = false;
    if (!ok) {
      noteError(what);
      if (chain) { chain.dead = true; chainsDead++; }
      return;
    }
    const ms = performance.now() - started;
    done++; win.done++;
    latencies[nLat++] = ms;
    win.lat.push(ms);
    if (chain) refreshDone++; else ccDone++;
  };
  const req = http.request(base + TOKEN_PATH, {
    method: "POST", agent,
    headers: { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body) },
  }, (res) => {
    const parts = [];
    res.on("data", (d) => parts.push(d));
    res.on("error", (e) => finish(false, `response: ${e.message}`));
    res.on("end", () => {
      const text = Buffer.concat(parts).toString();
      if (res.statusCode !== 200) return finish(false, `${chain ? "refresh" : "cc"} ${res.statusCode} ${text.slice(0, 200)}`);
      let j;
      try { j = JSON.parse(text); } catch { return finish(false, `not JSON: ${text.slice(0, 200)}`); }
      if (typeof j.access_token !== "string" || !j.access_token) return finish(false, `no access_token: ${text.slice(0, 200)}`);
      if (chain) {
        if (typeof j.refresh_token !== "string" || !j.refresh_token) return finish(false, `no refresh_token: ${text.slice(0, 200)}`);
        chain.rt = j.refresh_token;
        chain.refreshes++;
      }
      finish(true);
    });
  });
  req.setTimeout(REQ_TIMEOUT_MS, () => { req.destroy(new Error("timeout")); });
  req.on("error", (e) => finish(false, `network: ${e.code ?? ""} ${e.message}`));
  req.end(body);
}

const isRefreshTurn = (n) => Math.floor(((n + 1) * REFRESH_PCT) / 100) > Math.floor((n * REFRESH_PCT) / 100);
let nextChain = 0;
function idleChain() {
  for (let k = 0; k < chains.length; k++) {
    const c = chains[(nextChain + k) % chains.length];
    if (!c.busy && !c.dead) { nextChain = (nextChain + k + 1) % chains.length; return c; }
  }
  return null;
}

let scheduled = 0; // request turns accounted for (sent or skipped)
function tick() {
  const due = Math.floor(((performance.now() - loadStarted) / 1000) * RATE);
  if (due - scheduled > RATE) { skipped += due - scheduled - RATE; scheduled = due - RATE; }
  while (scheduled < due && inflight < MAX_INFLIGHT) {
    let chain = null;
    if (isRefreshTurn(scheduled)) {
      chain = idleChain();
      if (!chain) refreshBusy++;
    }
    scheduled++;
    tokenRequest(chain);
  }
}

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// me-channel checks: log out spare session c; its user's sockets must hear it.
const checks = [];
async function meChannelCheck(c) {
  const sp = spare[c];
  const expected = sockets.filter((s) => s.userIndex === sp.user && s.connected).length;
  const t = (performance.now() - loadStarted) / 1000;
  try {
    await form("/realms/tessera/protocol/openid-connect/logout", { client_id: "tessera-cli", refresh_token: sp.rt }, 204);
  } catch (e) {
    checks.push({ t, user: sp.user, expected, got: 0, note: `logout failed: ${e.message}` });
    return;
  }
  const t0 = performance.now();
  while ((revokedSeen.get(sp.sid) ?? 0) < expected && performance.now() - t0 < 5000) await sleep(20);
  checks.push({ t, user: sp.user, expected, got: revokedSeen.get(sp.sid) ?? 0, ms: performance.now() - t0 });
}

const csvPath = join(OUT, "samples.csv");
writeFileSync(csvPath, "t_s,rss_mib,completed,rate_per_s,p50_ms,p99_ms,errors_total,skipped_total,refresh_busy_total,inflight,sockets_connected,disconnects_total,server_cpu_pct,generator_cpu_pct,generator_loop_delay_p99_ms\n");
const samples = [];
const loop = monitorEventLoopDelay({ resolution: 10 });
let lastServerTicks, lastGenCpu, lastSampleAt;
function sample(t) {
  const now = performance.now();
  const secs = (now - lastSampleAt) / 1000;
  const sTicks = cpuTicks(server.pid);
  const gCpu = process.cpuUsage();
  const row = {
    t, rss: rssMiB(), completed: win.done, rate: win.done / secs,
    p50: 0, p99: 0, errors, skipped, refreshBusy, inflight, connected, disconnects,
    serverCpu: (100 * (sTicks - lastServerTicks)) / hz / secs,
    genCpu: ((gCpu.user + gCpu.system - lastGenCpu.user - lastGenCpu.system) / 1e6 / secs) * 100,
    loopP99: loop.percentile(99) / 1e6,
  };
  const lat = Float64Array.from(win.lat).sort();
  row.p50 = pct(lat, 50); row.p99 = pct(lat, 99);
  win = { lat: [], done: 0 };
  loop.reset();
  lastServerTicks = sTicks; lastGenCpu = gCpu; lastSampleAt = now;
  samples.push(row);
  appendFileSync(csvPath, [row.t, row.rss.toFixed(2), row.completed, row.rate.toFixed(1), row.p50.toFixed(2), row.p99.toFixed(2),
    row.errors, row.skipped, row.refreshBusy, row.inflight, row.connected, row.disconnects,
    row.serverCpu.toFixed(1), row.genCpu.toFixed(1), row.loopP99.toFixed(2)].join(",") + "\n");
  log(`t=${t}s rss=${row.rss.toFixed(1)} MiB rate=${row.rate.toFixed(0)}/s p50=${row.p50.toFixed(1)} p99=${row.p99.toFixed(1)} ms ` +
    `errors=${errors} skipped=${skipped} sockets=${connected} disc=${disconnects} cpu server=${row.serverCpu.toFixed(0)}% gen=${row.genCpu.toFixed(0)}%`);
}

log(`load: ${RATE} req/s (${REFRESH_PCT}% refresh) for ${DURATION_SECS} s with ${connected} sockets`);
const serverCpuBefore = cpuTicks(server.pid);
const genCpuBefore = process.cpuUsage();
loop.enable();
loadStarted = performance.now();
lastSampleAt = loadStarted; lastServerTicks = serverCpuBefore; lastGenCpu = genCpuBefore;
const rss0 = rssMiB();
samples.push({ t: 0, rss: rss0, completed: 0, rate: NaN, p50: NaN, p99: NaN, errors: 0, skipped: 0, refreshBusy: 0, inflight: 0, connected, disconnects, serverCpu: NaN, genCpu: NaN, loopP99: NaN });
appendFileSync(csvPath, `0,${rss0.toFixed(2)},0,,,,0,0,0,0,${connected},${disconnects},,,\n`);
const ticker = setInterval(tick, 2);
const pending = [];
for (let c = 0; c < CHECKS; c++) {
  const at = c * EMIT_EVERY_SECS + 5;
  pending.push(new Promise((r) => setTimeout(() => meChannelCheck(c).then(r), at * 1000)));
}
for (let k = 1; k * SAMPLE_SECS <= DURATION_SECS; k++) {
  await sleep(Math.max(0, loadStarted + k * SAMPLE_SECS * 1000 - performance.now()));
  if (serverExited) { log("server exited", serverExited); break; }
  sample(k * SAMPLE_SECS);
}
clearInterval(ticker);
const elapsed = (performance.now() - loadStarted) / 1000;
const serverCpuPct = (100 * (cpuTicks(server.pid) - serverCpuBefore)) / hz / elapsed;
const g = process.cpuUsage(genCpuBefore);
const genCpuPct = ((g.user + g.system) / 1e6 / elapsed) * 100;
while (inflight > 0) await sleep(10);
await Promise.all(pending);
loop.disable();

// ------------------------------------------------------------------ end ----
let answered = 0;
{
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < sockets.length) {
      const s = sockets[next++];
      try { await s.timeout(10000).emitWithAck("ping", {}); answered++; } catch {}
    }
  }));
}
const hwm = kib(status(), "VmHWM") / 1024;
const stillConnected = sockets.filter((s) => s.connected).length;

const lat = latencies.subarray(0, nLat).sort();
const achieved = done / DURATION_SECS;
const refT = Math.min(60, Math.floor(DURATION_SECS / 2 / SAMPLE_SECS) * SAMPLE_SECS);
const ref = samples.find((s) => s.t === refT);
const last = samples[samples.length - 1];
const fit = samples.filter((s) => s.t >= refT);
const mx = fit.reduce((a, s) => a + s.t, 0) / fit.length;
const my = fit.reduce((a, s) => a + s.rss, 0) / fit.length;
const slope = (fit.reduce((a, s) => a + (s.t - mx) * (s.rss - my), 0) / fit.reduce((a, s) => a + (s.t - mx) ** 2, 0)) * 60;
const rssMax = Math.max(...samples.map((s) => s.rss));
const rssMin = Math.min(...samples.slice(1).map((s) => s.rss));
const drift = (last.rss - ref.rss) / ref.rss;
const minWin = Math.min(...samples.slice(1).map((s) => s.rate));
const reached = checks.reduce((a, c) => a + c.got, 0);
const expectedDeliveries = checks.reduce((a, c) => a + c.expected, 0);
const checksOk = checks.every((c) => c.got === c.expected && c.expected > 0 && !c.note);

const rules = [
  ["sockets held", `${SOCKETS} connected at the end, 0 disconnects, every ping answered`,
    `${stillConnected} connected, ${disconnects} disconnects, ${answered}/${SOCKETS} pings answered`,
    stillConnected === SOCKETS && disconnects === 0 && answered === SOCKETS],
  ["request errors", "0 (non-200, no token, network error, 10 s timeout)",
    `${errors} of ${sent} sent (${ccDone} client_credentials + ${refreshDone} refresh_token OK)`, errors === 0],
  ["achieved rate", `≥ 95% of ${RATE}/s over ${DURATION_SECS} s`,
    `${achieved.toFixed(1)}/s (${((100 * achieved) / RATE).toFixed(1)}%); lowest 10 s window ${minWin.toFixed(0)}/s; ${skipped} skipped`,
    achieved >= 0.95 * RATE],
  ["RSS flat", `last sample within 10% of the sample at ${refT} s`,
    `${ref.rss.toFixed(1)} MiB at ${refT} s → ${last.rss.toFixed(1)} MiB at ${last.t} s (${(100 * drift).toFixed(1)}%); slope ${slope.toFixed(3)} MiB/min from ${refT} s; min ${rssMin.toFixed(1)}, max ${rssMax.toFixed(1)} MiB`,
    Math.abs(drift) <= 0.1],
];
if (CHECKS > 0) rules.push(["me-channel", "every `session_revoked` reaches all of its user's sockets within 5 s",
  `${checks.length} checks, ${reached}/${expectedDeliveries} deliveries`, checksOk]);
const pass = rules.every((r) => r[3]);

// ------------------------------------------------------------------ report -
const title = `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC soak: ${SOCKETS} sockets + ${RATE} token requests/s for ${DURATION_SECS} s`;
writeFileSync(join(OUT, "title.txt"), title + "\n");
let chartNote = "no chart (CHART=0)";
if (CHART !== "0") {
  const py = join(HERE, ".venv/bin/python");
  try {
    if (!existsSync(py) || spawnSync(py, ["-c", "import matplotlib"]).status !== 0) {
      log("creating bench/.venv (matplotlib, pinned in bench/requirements.txt)");
      execSync(`python3 -m venv "${join(HERE, ".venv")}" && "${py}" -m pip install -q -r "${join(HERE, "requirements.txt")}"`, { stdio: "inherit" });
    }
    execSync(`"${py}" "${join(HERE, "soak_chart.py")}" "${OUT}" "${join(OUT, "soak.png")}"`, { stdio: "inherit" });
    if (CHART !== join(OUT, "soak.png")) copyFileSync(join(OUT, "soak.png"), CHART);
    chartNote = `chart: ${relative(REPO, CHART)}`;
  } catch (e) {
    chartNote = `chart failed: ${e.message}`;
  }
}
const rev = execSync("git rev-parse --short HEAD", { cwd: REPO }).toString().trim();
const dirty = execSync("git status --porcelain --untracked-files=no", { cwd: REPO }).toString().trim() ? " + uncommitted changes" : "";
const knobs = ["SOCKETS", "RATE", "DURATION_SECS", "SAMPLE_SECS", "USERS", "CONCURRENCY", "CHAINS", "REFRESH_PCT", "MAX_INFLIGHT", "ALG", "EMIT_EVERY_SECS", "TESSERA_BIN"]
  .filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]} `).join("");
const lines = [
  `## ${title}`,
  "",
  `- command: \`${knobs}node bench/soak.mjs\``,
  `- machine: ${cpus().length} CPUs, ${process.arch}, ${cpus()[0].model.trim()}; the load generator (Node ${process.version}, socket.io-client 4.8.1, one process) on the same machine`,
  `- Tessera: ${process.env.TESSERA_BIN ? `binary ${BIN}, work tree at ${rev}${dirty}` : `target/release/tessera at ${rev}${dirty}`} (release build, SQLite in a temp dir, RUST_LOG=${process.env.RUST_LOG ?? "warn"}, in-memory Socket.IO adapter)`,
  `- load: ${SOCKETS} websocket sockets (handshake \`auth: {token}\`, ${USERS} users of realm \`tessera\` round-robin), then ${RATE} token requests/s to realm \`soak\` (${ALG}), client_secret_post over a keep-alive http.Agent, at most ${MAX_INFLIGHT} in flight: ${100 - REFRESH_PCT}% client_credentials, ${REFRESH_PCT}% refresh_token on ${CHAINS} rotating chains (${refreshBusy} refresh turns found every chain busy and sent client_credentials); me-channel: ${CHECKS > 0 ? `every ${EMIT_EVERY_SECS} s a spare session of one socket user is logged out and its \`session_revoked\` must reach all of that user's sockets` : "off"}`,
  `- latency over the run: p50 ${pct(lat, 50).toFixed(2)} ms, p99 ${pct(lat, 99).toFixed(2)} ms, max ${lat[lat.length - 1]?.toFixed(1)} ms; CPU over the load: server ${serverCpuPct.toFixed(0)}%, generator ${genCpuPct.toFixed(0)}% (100% = one core); server RSS before the load ${rss0.toFixed(1)} MiB, peak (VmHWM) ${hwm.toFixed(1)} MiB`,
  `- raw: ${relative(REPO, OUT)}/samples.csv (every ${SAMPLE_SECS} s), server.log; ${chartNote}`,
  "",
  "| rule | target | measured | result |",
  "| --- | --- | --- | --- |",
  ...rules.map(([name, target, measured, ok]) => `| ${name} | ${target} | ${measured} | ${ok ? "PASS" : "**FAIL**"} |`),
];
if (errorLog.length) lines.push("", "First errors:", ...errorLog.map((e) => `- ${e}`));
if (disconnectLog.length) lines.push("", "First disconnects:", ...disconnectLog.map((e) => `- ${e}`));
const badChecks = checks.filter((c) => c.got !== c.expected || c.note);
if (badChecks.length) lines.push("", "Failed me-channel checks:", ...badChecks.map((c) => `- ${c.t.toFixed(0)} s user ${c.user}: ${c.got}/${c.expected} ${c.note ?? ""}`));
const report = lines.join("\n");
writeFileSync(join(OUT, "report.md"), report + "\n");
console.log(report);
console.log(pass ? "\nPASS" : "\nFAIL");

for (const s of sockets) s.close();
agent.destroy();
server.kill("SIGTERM");
process.exit(pass ? 0 : 1);
