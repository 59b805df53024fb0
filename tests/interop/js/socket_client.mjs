// Drives Tessera's event channel with npm socket.io-client, the way Codewind's
// UI did. Reads {"url", "token", "how": "event" | "handshake", "transports"?}
// as JSON on stdin; prints {"connected", "connectError", "events", "pong"}.
// "event": connect, then emit `authentication` {token} (socketio-auth);
// "handshake": pass the token as the v4 handshake `auth`.
// With "until": <event name> (and "timeoutMs", default 8000) it stays connected after the
// ping, writes "ready" to stderr, and ends once that event arrives (or at the timeout).
import { io } from "socket.io-client";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { url, token, how, transports, until, timeoutMs } = JSON.parse(input);

const out = { connected: false, connectError: null, events: [], pong: null, transport: null };
const socket = io(url, {
  transports: transports ?? ["polling", "websocket"],
  reconnection: false,
  auth: how === "handshake" ? { token } : undefined,
});
socket.onAny((event, ...args) => {
  out.events.push([event, ...args]);
  if (until && event === until) setTimeout(() => done(0), 100);
});

const done = (code = 0) => {
  out.transport = socket.io.engine?.transport?.name ?? out.transport;
  socket.close();
  process.stdout.write(JSON.stringify(out));
  process.exit(code);
};
setTimeout(() => done(0), timeoutMs ?? 8000);

socket.on("connect_error", (err) => {
  out.connectError = err.message;
  done(0);
});
socket.on("connect", async () => {
  out.connected = true;
  try {
    if (how === "event") {
      const ok = await socket.timeout(5000).emitWithAck("authentication", { token });
      if (ok !== true) return done(0);
    }
    // Let the polling transport upgrade to websocket if it is going to.
    await new Promise((r) => setTimeout(r, 300));
    out.pong = await socket.timeout(5000).emitWithAck("ping", { from: "socket.io-client" });
    if (until) {
      process.stderr.write("ready\n");
      return;
    }
  } catch (e) {
    out.error = String(e);
  }
  done(0);
});
socket.on("unauthorized", () => setTimeout(() => done(0), 200));
