// Frame serving throughput: concurrent readers pulling GET /sync ranges of
// 128 frames (what the libSQL client asks for) from `replite serve`, next to
// reading the same bytes from the local log file (the disk/page-cache bound).
import { createClient } from "@libsql/client";
import { openSync, readSync, closeSync, statSync } from "node:fs";
import { join } from "node:path";
import { fmt, startPrimary } from "./common.mjs";

const FRAME = 4120;
const TOTAL_FRAMES = Number(process.env.BENCH_FRAMES ?? 8000);
const primary = await startPrimary(["--generation-frames", String(TOTAL_FRAMES * 4)]);
try {
  const c = createClient({ url: primary.url });
  await c.execute("CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB)");
  // Each ~3.9 KiB blob fills about one page: TOTAL_FRAMES frames in all.
  for (let i = 0; i < TOTAL_FRAMES / 200; i++) {
    await c.batch(Array.from({ length: 200 }, () => "INSERT INTO blobs(b) VALUES (randomblob(3900))"), "write");
  }
  c.close();
  const info = await (await fetch(primary.url + "/info")).json();
  const head = info.max_frame_no;
  console.log(`Frame serving: ${head} frames (${fmt((head * FRAME) / 2 ** 20, 1)} MiB) in generation ${info.current_generation}`);
  console.log("readers   MiB/s    requests/s   vs local file read");
  const logPath = join(primary.dir, "data", `gen-${String(info.current_generation).padStart(8, "0")}`, "frames.log");
  const localMiBs = (() => {
    const fd = openSync(logPath, "r");
    const buf = Buffer.alloc(128 * FRAME);
    const size = statSync(logPath).size;
    const t0 = performance.now();
    let bytes = 0;
    for (let rep = 0; rep < 3; rep++) for (let off = 32; off < size; off += buf.length) bytes += readSync(fd, buf, 0, buf.length, off);
    closeSync(fd);
    return bytes / 2 ** 20 / ((performance.now() - t0) / 1000);
  })();
  for (const readers of [1, 4, 16]) {
    let bytes = 0;
    let requests = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: readers }, async () => {
        for (let start = 1; start <= head; start += 128) {
          const res = await fetch(`${primary.url}/sync/${info.current_generation}/${start}/${start + 128}`);
          bytes += (await res.arrayBuffer()).byteLength;
          requests++;
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const mibs = bytes / 2 ** 20 / secs;
    console.log(`${String(readers).padStart(7)} ${fmt(mibs, 1).padStart(8)} ${fmt(requests / secs, 0).padStart(12)}   ${fmt(mibs / localMiBs, 3)}x`);
  }
  console.log(`local read of the same log file (node fs, 128-frame reads): ${fmt(localMiBs, 1)} MiB/s`);
} finally {
  await primary.stop();
}
