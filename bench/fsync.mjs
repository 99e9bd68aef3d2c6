// This machine's fsync rate, printed first by bench/run so that the
// figures after it can be read against it: 4 KiB overwrites of a 256 KiB
// file in the bench's temporary directory, each followed by fdatasync(),
// for BENCH_FSYNC_SECONDS (2); the rate, and the median and p99 latency.
import { closeSync, fdatasyncSync, openSync, writeSync } from "node:fs";
import { fmt, percentile } from "./common.mjs";
import { tempDir } from "./driver.mjs";

const SECONDS = Number(process.env.BENCH_FSYNC_SECONDS ?? 2);
const dir = tempDir("replite-bench-fsync-");
try {
  const fd = openSync(dir.file("probe"), "w");
  const page = Buffer.alloc(4096, 0x5a);
  for (let i = 0; i < 64; i++) writeSync(fd, page, 0, page.length, i * 4096);
  fdatasyncSync(fd);
  const lat = [];
  const end = performance.now() + SECONDS * 1000;
  for (let i = 0; performance.now() < end; i++) {
    const t0 = performance.now();
    writeSync(fd, page, 0, page.length, (i % 64) * 4096);
    fdatasyncSync(fd);
    lat.push(performance.now() - t0);
  }
  closeSync(fd);
  const sorted = [...lat].sort((a, b) => a - b);
  const total = lat.reduce((a, b) => a + b, 0);
  console.log(
    `fdatasync on this machine (4 KiB overwrite + fdatasync, ${SECONDS} s): ${fmt(lat.length / (total / 1000), 0)}/s, ` +
      `p50 ${fmt(percentile(sorted, 50), 3)} ms, p99 ${fmt(percentile(sorted, 99), 3)} ms`,
  );
} finally {
  dir.remove();
}
