// `npm run bench:startup`: how long `pitcrew serve` (embedded defaults, a temporary DATA_DIR) takes
// to answer /healthz, and its resident memory once idle, run from the sources through tsx and from
// the build in dist/ (built first when missing or stale). Runs alternate; medians printed as JSON.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build, distIsFresh } from "../bin/build.mjs";
import { freePort } from "../test/helpers/process.ts";

const MODES = {
  // What a checkout runs without a build (and what the tests run).
  tsx: { args: ["bin/pitcrew.mjs", "serve"], env: { PITCREW_FROM_SOURCE: "1" } },
  // What the Docker images run.
  dist: { args: ["dist/src/main/cli.js", "serve"], env: {} },
};
type Mode = keyof typeof MODES;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return Number(kb) / 1024;
}

async function once(mode: Mode, idleMs: number, distCli?: string): Promise<{ healthzMs: number; idleRssMb: number }> {
  const dir = mkdtempSync(join(tmpdir(), "pitcrew-bench-start-"));
  const port = await freePort();
  const t0 = performance.now();
  const args = mode === "dist" && distCli ? [distCli, "serve"] : MODES[mode].args;
  const child: ChildProcess = spawn(process.execPath, args, {
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      PORT: String(port),
      DATA_DIR: join(dir, "data"),
      LOG_LEVEL: "warn",
      ...MODES[mode].env,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${mode}: pitcrew serve exited with ${child.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      await sleep(10);
    }
    const healthzMs = performance.now() - t0;
    await sleep(idleMs);
    return { healthzMs, idleRssMb: rssMb(child.pid!) };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/**
 * Also run by `npm run bench` (bench/index.ts), which passes `distCli`: the cli.js of a build of its
 * own, used instead of dist/ (then left as it is).
 */
export async function measureStartup(opts: { runs: number; idleMs: number; warmup?: boolean; distCli?: string }) {
  const RUNS = opts.runs;
  if (!opts.distCli && !distIsFresh()) await build();
  const results: Record<Mode, { healthzMs: number[]; idleRssMb: number[] }> = {
    tsx: { healthzMs: [], idleRssMb: [] },
    dist: { healthzMs: [], idleRssMb: [] },
  };
  if (opts.warmup !== false) {
    await once("tsx", opts.idleMs, opts.distCli); // warm-up: the file system cache, tsx's transform cache
    await once("dist", opts.idleMs, opts.distCli);
  }
  for (let i = 0; i < RUNS; i++)
    for (const mode of ["tsx", "dist"] as const) {
      const r = await once(mode, opts.idleMs, opts.distCli);
      results[mode].healthzMs.push(r.healthzMs);
      results[mode].idleRssMb.push(r.idleRssMb);
    }
  const round = (x: number) => Math.round(x * 10) / 10;
  return Object.fromEntries(
    Object.entries(results).map(([mode, r]) => [
      mode,
      {
        runs: RUNS,
        healthzMsMedian: round(median(r.healthzMs)),
        healthzMs: r.healthzMs.map(round),
        idleRssMbMedian: round(median(r.idleRssMb)),
        idleRssMb: r.idleRssMb.map(round),
      },
    ]),
  ) as Record<
    Mode,
    { runs: number; healthzMsMedian: number; healthzMs: number[]; idleRssMbMedian: number; idleRssMb: number[] }
  >;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const result = await measureStartup({
    runs: Number(process.env.BENCH_RUNS ?? 5),
    idleMs: Number(process.env.BENCH_IDLE_MS ?? 5000),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
