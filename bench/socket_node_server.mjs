// The baseline for bench/sockets.mjs: a plain Node socket.io server doing the
// check Tessera's event channel does at the handshake, with jsonwebtoken:
// RS256 signature against the realm key, issuer, expiry, typ "Bearer"; then
// the socket joins its user's room and answers `ping`. (It cannot see
// sessions: no database lookup, which Tessera does to refuse ended sessions.)
//   PORT, PUBLIC_KEY_PEM, ISSUER (required)
import { createServer } from "node:http";
import { Server } from "socket.io";
import jwt from "jsonwebtoken";

const { PORT, PUBLIC_KEY_PEM, ISSUER } = process.env;
const http = createServer();
const io = new Server(http, { transports: ["websocket", "polling"], maxHttpBufferSize: 64 * 1024 });

io.use((socket, next) => {
  const token = socket.handshake.auth?.token;
  if (!token) return next(new Error("unauthorized"));
  jwt.verify(token, PUBLIC_KEY_PEM, { algorithms: ["RS256"], issuer: ISSUER }, (err, claims) => {
    if (err || claims.typ !== "Bearer") return next(new Error("unauthorized"));
    socket.data.user = claims.sub;
    next();
  });
});
io.on("connection", (socket) => {
  socket.join(`user:${socket.data.user}`);
  socket.on("ping", (data, ack) => ack?.({ subject: { id: socket.data.user }, data }));
  socket.emit("authenticated", true);
});
http.listen(Number(PORT), "127.0.0.1", () => console.log("listening"));
