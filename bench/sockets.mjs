// Event-channel load: hold N authenticated Socket.IO connections and record
// the authentication rate and the server's memory, for Tessera and for a
// plain Node socket.io server doing the same JWT check (socket_node_server.mjs).
//
//   node bench/sockets.mjs                 # N=10000 sockets, USERS=100, CONCURRENCY=200
//   N=2000 node bench/sockets.mjs          # also TESSERA_BIN, HOLD_SECS, SETTLE_SECS
//
// Tessera runs from target/release/tessera (build it first) on SQLite in a
// temp dir with production password hashing; USERS users are created through
// the Admin REST API and each logs in once (password grant); the sockets use
// those tokens round-robin and authenticate in the handshake (`auth: {token}`),
// websocket transport only, CONCURRENCY handshakes in flight. "auth rate" is
// sockets authenticated per second from the first connect to the last
// `authenticated`. RSS is read from /proc/<pid>/status after all sockets are
// up (VmRSS) and at the end (VmHWM, the peak). Prints a markdown section for
// RESULTS.md.
import { spawn, execSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir, cpus } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createPublicKey } from "node:crypto";
import { io } from "socket.io-client";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, "..");
const N = Number(process.env.N ?? 10000);
const USERS = Number(process.env.USERS ?? 100);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 200);
const HOLD_SECS = Number(process.env.HOLD_SECS ?? 3);
const SETTLE_SECS = Number(process.env.SETTLE_SECS ?? 4);
const BIN = process.env.TESSERA_BIN ?? join(REPO, "target/release/tessera");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mem = (pid) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (k) => Number(status.match(new RegExp(`${k}:\\s+(\\d+)`))[1]);
  return { rss: kib("VmRSS") / 1024, hwm: kib("VmHWM") / 1024 };
};

async function waitReady(url) {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    await sleep(100);
  }
  throw new Error(`not ready: ${url}`);
}

async function form(url, body) {
  const r = await fetch(url, { method: "POST", body: new URLSearchParams(body) });
  const j = await r.json();
  if (!r.ok) throw new Error(`${url}: ${JSON.stringify(j)}`);
  return j;
}

async function startTessera() {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const base = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), "tessera-sockets-"));
  const child = spawn(BIN, ["serve", "--data-dir", dir, "--listen", `127.0.0.1:${port}`], {
    env: {
      PATH: process.env.PATH,
      RUST_LOG: "warn",
      TESSERA_BOOTSTRAP_ADMIN_PASSWORD: "bench-admin",
      TESSERA_SOCKET_MAX_PER_USER: String(N),
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  await waitReady(`${base}/health/ready`);
  return { child, base };
}

async function tokensFrom(base) {
  const admin = (await form(`${base}/realms/master/protocol/openid-connect/token`, {
    grant_type: "password", client_id: "admin-cli", username: "admin", password: "bench-admin",
  })).access_token;
  const tokens = [];
  for (let i = 0; i < USERS; i++) {
    const username = `load-${i}`;
    // Sockets authenticate users of the default realm (`tessera`), never the admin realm.
    const r = await fetch(`${base}/admin/realms/tessera/users`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ username, enabled: true, credentials: [{ type: "password", value: "pw-" + i, temporary: false }] }),
    });
    if (r.status !== 201) throw new Error(`create user: ${r.status} ${await r.text()}`);
    tokens.push((await form(`${base}/realms/tessera/protocol/openid-connect/token`, {
      grant_type: "password", client_id: "tessera-cli", username, password: "pw-" + i,
    })).access_token);
  }
  const realm = await (await fetch(`${base}/realms/tessera`)).json();
  const pem = `-----BEGIN PUBLIC KEY-----\n${realm.public_key}\n-----END PUBLIC KEY-----\n`;
  createPublicKey(pem); // fail early if it is not a key
  return { tokens, pem, issuer: `${base}/realms/tessera` };
}

// Opens N sockets, CONCURRENCY at a time; resolves when all are authenticated.
async function load(url, tokens) {
  const sockets = [];
  let ok = 0, failed = 0, next = 0;
  const started = performance.now();
  const one = () => new Promise((resolve) => {
    const s = io(url, { transports: ["websocket"], reconnection: false, auth: { token: tokens[next % tokens.length] } });
    next++;
    sockets.push(s);
    s.once("authenticated", () => { ok++; resolve(); });
    s.once("connect_error", () => { failed++; resolve(); });
  });
  const workers = Array.from({ length: CONCURRENCY }, async () => {
    while (next < N) await one();
  });
  await Promise.all(workers);
  const seconds = (performance.now() - started) / 1000;
  return { sockets, ok, failed, seconds };
}

async function measure(name, child, url, tokens) {
  // Settle first: Tessera's password-hashing threads free their argon2
  // buffers 2 s after the setup's logins, which must not count per socket.
  await sleep(SETTLE_SECS * 1000);
  const before = mem(child.pid);
  const r = await load(url, tokens);
  await sleep(HOLD_SECS * 1000);
  const held = mem(child.pid);
  // Every socket still answers after the hold? Sample 100.
  let answered = 0;
  await Promise.all(r.sockets.slice(0, 100).map((s) =>
    s.timeout(10000).emitWithAck("ping", {}).then(() => answered++, () => {})));
  for (const s of r.sockets) s.close();
  const after = mem(child.pid);
  child.kill("SIGTERM");
  return { name, ...r, before, held, after, answered };
}

const tessera = await startTessera();
const { tokens, pem, issuer } = await tokensFrom(tessera.base);
const results = [await measure("tessera", tessera.child, tessera.base, tokens)];

const nodePort = 20000 + Math.floor(Math.random() * 20000);
const node = spawn(process.execPath, [join(HERE, "socket_node_server.mjs")], {
  env: { ...process.env, PORT: String(nodePort), PUBLIC_KEY_PEM: pem, ISSUER: issuer },
  stdio: ["ignore", "pipe", "inherit"],
});
await new Promise((r) => node.stdout.once("data", r));
results.push(await measure("node socket.io + jsonwebtoken", node, `http://127.0.0.1:${nodePort}`, tokens));

const rev = execSync("git rev-parse --short HEAD", { cwd: REPO }).toString().trim();
const dirty = execSync("git status --porcelain", { cwd: REPO }).toString().trim() ? " + uncommitted changes" : "";
const lines = [
  `## ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC event channel: ${N} authenticated sockets`,
  "",
  `- command: \`${process.env.N ? `N=${N} ` : ""}node bench/sockets.mjs\``,
  `- machine: ${cpus().length} CPUs, ${process.arch}, ${cpus()[0].model.trim()}; the load generator (Node ${process.version}, socket.io-client 4.8.1) on the same machine`,
  `- load: after ${SETTLE_SECS} s settling (RSS idle), ${N} websocket sockets, handshake \`auth: {token}\`, ${CONCURRENCY} handshakes in flight, tokens of ${USERS} users round-robin, held ${HOLD_SECS} s, then 100 sampled \`ping\` acks`,
  `- Tessera ${rev}${dirty} (release build, SQLite in a temp dir, RUST_LOG=warn): verifies signature, issuer, expiry, typ, and the session and user in the database; in-memory Socket.IO adapter`,
  `- Node socket.io 4.8.1 + jsonwebtoken 9.0.2 on ${process.version}: verifies signature, issuer, expiry, typ (no session check)`,
  "",
  "| server | authenticated | failed | auth rate (sockets/s) | RSS idle | RSS holding | peak RSS | pings answered |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...results.map((r) =>
    `| ${r.name} | ${r.ok} | ${r.failed} | ${(r.ok / r.seconds).toFixed(0)} | ${r.before.rss.toFixed(1)} MiB | ${r.held.rss.toFixed(1)} MiB | ${r.after.hwm.toFixed(1)} MiB | ${r.answered}/100 |`),
];
console.log(lines.join("\n"));
process.exit(0);
