// Prints the size of the built console (dist/), raw and gzipped, per file and in total.
// Run `npm run build` first.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";

const root = new URL("../dist/", import.meta.url).pathname;

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

let raw = 0;
let gzipped = 0;
for (const path of files(root).sort()) {
  const bytes = readFileSync(path);
  const packed = gzipSync(bytes, { level: 9 }).length;
  raw += bytes.length;
  gzipped += packed;
  console.log(`${relative(root, path).padEnd(36)} ${String(bytes.length).padStart(8)} B  ${String(packed).padStart(7)} B gzipped`);
}
console.log(`${"total".padEnd(36)} ${String(raw).padStart(8)} B  ${String(gzipped).padStart(7)} B gzipped`);
