// A TCP proxy to HOST:PORT for the offline tests (offline_harness.mjs's
// startProxy), in a process of its own: the tests' better-sqlite3 calls block
// their own thread while a replica's thread talks through the proxy, so the
// proxy cannot share it.  (It was a worker thread: node 20 can spin forever
// tearing down a worker whose sockets were reset, and then the test file's
// process never exits.  A process is killed outright.)
//
//   node tcp_proxy.mjs HOST PORT
//
// Prints {"port": N} once it listens.  Then reads commands, a line each, and
// answers each with the same word once done:
//   cut   reset every open connection, and every new one until heal;
//   heal  forward new connections again.
import net from "node:net";
import { createInterface } from "node:readline";

const [host, port] = [process.argv[2], Number(process.argv[3])];
let cut = false;
const open = new Set();
const drop = (s) => {
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
};
const proxy = net.createServer((c) => {
  if (cut) return drop(c);
  const up = net.connect(port, host);
  open.add(c);
  open.add(up);
  const end = () => {
    open.delete(c);
    open.delete(up);
    c.destroy();
    up.destroy();
  };
  c.on("error", end).on("close", end);
  up.on("error", end).on("close", end);
  c.pipe(up);
  up.pipe(c);
});
createInterface({ input: process.stdin }).on("line", (m) => {
  if (m === "cut") {
    cut = true;
    for (const s of open) drop(s);
    open.clear();
  } else if (m === "heal") {
    cut = false;
  }
  process.stdout.write(`${m}\n`);
});
// The tests end it with SIGKILL; a closed stdin (the test process gone) too.
process.stdin.on("end", () => process.exit(0));
proxy.listen(0, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: proxy.address().port })}\n`));
