#!/usr/bin/env node
// `npm run build`: compiles the TypeScript sources to dist/ with tsc (tsconfig.build.json) and
// copies the files that the code reads from beside itself (console assets, the askpass helper);
// a type error fails it. `--if-stale` (what `npm start` runs) builds only when dist/ is missing or
// older than a source, and only emits (tsc --noCheck, the same JavaScript): like tsx, a start is
// not held up by a type error, which `npm run typecheck` reports. bin/pitcrew.mjs asks
// distIsFresh() to choose between dist/ and the sources.
import { cpSync, existsSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const DIST = join(ROOT, "dist");
/** Written last: a dist/ without it (a build that failed half-way) is never used. */
const STAMP = join("dist", ".built");
const SOURCE_DIRS = ["src", "runner", "migrations"];
const SOURCE_FILES = ["tsconfig.json", "tsconfig.build.json"];
/** Runtime files that live beside the code, copied to the same place under dist/. */
const ASSETS = ["src/console/assets", "runner/askpass.sh"];

/** Newest modification time under a source folder: files and folders (a deleted file changes its folder). */
function newest(path) {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 0;
  }
  let max = st.mtimeMs;
  if (st.isDirectory())
    for (const e of readdirSync(path)) {
      if (e.endsWith(".test.ts") || e === "node_modules") continue;
      max = Math.max(max, newest(join(path, e)));
    }
  return max;
}

/**
 * True when dist/ holds a complete build that no source is newer than. Without sources (a Docker
 * image ships dist/ only) a complete build is fresh. A few hundred stat calls: about 5 ms.
 */
export function distIsFresh(root = ROOT) {
  let built;
  try {
    built = statSync(join(root, STAMP)).mtimeMs;
  } catch {
    return false;
  }
  for (const p of [...SOURCE_DIRS, ...SOURCE_FILES]) if (newest(join(root, p)) > built) return false;
  return true;
}

/**
 * Builds into `outDir` (default dist/; a test builds an image's layout in a temporary folder).
 * A type error fails the build; `typeCheck: false` only emits (tsc --noCheck): the same output,
 * for `npm start` and for a test that runs it, while CI type-checks the sources on its own.
 */
export async function build(outDir = DIST, { typeCheck = true } = {}) {
  const { spawnSync } = await import("node:child_process");
  const { createRequire } = await import("node:module");
  let tsc;
  try {
    tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  } catch {
    throw new Error("typescript is not installed (a development dependency): run npm install");
  }
  // The stamp carries the time the build started: a source saved during the build leaves it stale.
  const started = new Date();
  rmSync(outDir, { recursive: true, force: true });
  const args = [tsc, "-p", join(ROOT, "tsconfig.build.json"), "--outDir", outDir, ...(typeCheck ? [] : ["--noCheck"])];
  const r = spawnSync(process.execPath, args, { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`tsc failed (exit ${r.status ?? r.signal})`);
  for (const a of ASSETS) {
    if (!existsSync(join(ROOT, a))) throw new Error(`${a} is missing`);
    cpSync(join(ROOT, a), join(outDir, a), { recursive: true });
  }
  const stamp = join(outDir, ".built");
  writeFileSync(stamp, `${started.toISOString()}\n`);
  utimesSync(stamp, started, started);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const ifStale = process.argv.includes("--if-stale");
  if (ifStale && distIsFresh()) process.exit(0);
  process.stderr.write(`pitcrew: building dist/${ifStale ? " (missing or older than the sources)" : ""}\n`);
  const started = Date.now();
  try {
    await build(DIST, { typeCheck: !ifStale });
  } catch (err) {
    process.stderr.write(`pitcrew: build failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  process.stderr.write(`pitcrew: built dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
