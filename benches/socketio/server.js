// The Socket.IO 4 side of the load comparison (crates/server/examples/load.rs).
// Does the jobs the way Socket.IO users do: properties in socket.data,
// close by predicate with fetchSockets() + filter + disconnect(), a listener
// as a room that the server emits changes to, requests with acks.
// Listens on loopback only; stops when stdin closes.
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const httpServer = http.createServer();
const io = new Server(httpServer, { transports: ["websocket"], serveClient: false });
const watching = new Set(); // groups the "watch" room listens to

io.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  socket.data.Group = auth.Group;
  if (auth.handler) socket.join("handlers");
  if (!auth.admin) return;

  // clients.close by filter: fetchSockets(), filter in JS, disconnect().
  socket.on("closeWhere", async ({ key, value }, ack) => {
    const all = await io.fetchSockets();
    let n = 0;
    for (const s of all) {
      if (s.data[key] === value) {
        s.disconnect(true);
        n++;
      }
    }
    ack(n);
  });
  // A request to every handler socket, collecting every ack.
  socket.on("sendAll", ({ timeout, request }, ack) => {
    io.timeout(timeout)
      .to("handlers")
      .emit("request", request, (err, responses) => {
        ack({ responded: responses.length, timedOut: err ? String(err) : null });
      });
  });
  // A request to one socket by id, relayed back.
  socket.on("send", ({ to, timeout, request }, ack) => {
    const target = io.sockets.sockets.get(to);
    if (!target) return ack({ error: "no such session" });
    target.timeout(timeout).emit("request", request, (err, response) => {
      ack(err ? { error: String(err) } : { response });
    });
  });
  // A listener: the room "watch" hears changes of sessions in some groups.
  socket.on("watch", ({ groups }, ack) => {
    for (const g of groups) watching.add(g);
    socket.join("watch");
    ack({});
  });
  // clients.set_properties by id.
  socket.on("set", ({ id, key, value }, ack) => {
    const target = io.sockets.sockets.get(id);
    if (!target) return ack && ack({ error: "no such session" });
    const previous = target.data[key] ?? null;
    target.data[key] = value;
    if (watching.has(target.data.Group)) {
      io.to("watch").emit("event", { id, key, value, previous });
    }
    if (ack) ack({ changed: { [key]: previous } });
  });
  socket.on("gc", (ack) => {
    if (global.gc) global.gc();
    ack(process.memoryUsage());
  });
});

httpServer.listen(0, "127.0.0.1", () => {
  console.log(`listening ${httpServer.address().port}`);
});
process.stdin.on("end", () => process.exit(0));
process.stdin.on("close", () => process.exit(0));
process.stdin.resume();
