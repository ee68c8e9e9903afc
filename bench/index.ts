// `npm run bench`: every figure of the benchmark suite beside its baseline, measured in the same
// run so that ratios hold on a noisy machine. One JSON document on stdout; a table on stderr.
//   --quick         every part briefly, for CI: checks that it runs, the figures mean nothing
//   --only a,b      only these parts (startup, intake, dispatch, tasks, mcp, latency)
//   --out <file>    also write the JSON document to <file>
//   --rev <commit>  measure the committed tree at <commit> instead of the work tree (this bench/
//                   on that commit's sources): before/after figures of a change on one machine
// MariaDB/MySQL at MYSQL_URL and NATS JetStream at NATS_URL are used when they answer (each part
// on a database and streams of its own, removed after); without them those cases are skipped.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../bin/build.mjs";
import { VERSION } from "../src/shared/version.ts";
import { hasMysql, hasNats } from "../test/helpers/services.ts";
import { benchDispatch } from "./dispatch.ts";
import { benchIntake } from "./intake.ts";
import { benchLatency } from "./latency.ts";
import { buildForBench, cleanupAll, type Options, progress, rssMb, sleep, startBare } from "./lib.ts";
import { benchMcp } from "./mcp.ts";
import { printTable, verdicts } from "./report.ts";
import { measureStartup } from "./startup.ts";
import { benchTasks } from "./tasks.ts";

const PARTS = ["startup", "intake", "dispatch", "tasks", "mcp", "latency"] as const;
type Part = (typeof PARTS)[number];

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    out: { type: "string" },
    rev: { type: "string" },
  },
});

// --rev: the commit's tree (git archive) in a folder beside node_modules (whose packages it
// uses), this bench/ copied over it, and the suite run there with the same arguments.
if (values.rev) {
  const sha = execFileSync("git", ["rev-parse", "--verify", `${values.rev}^{commit}`], { encoding: "utf8" }).trim();
  const dir = mkdtempSync(join(ROOT, "node_modules", ".cache", "pitcrew-bench-rev-"));
  try {
    execFileSync("sh", ["-c", 'git archive --format=tar "$1" | tar -x -C "$2"', "sh", sha, dir]);
    rmSync(join(dir, "bench"), { recursive: true, force: true });
    cpSync(join(ROOT, "bench"), join(dir, "bench"), { recursive: true, filter: (src) => !src.includes("/results") });
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
    const args = process.argv
      .slice(2)
      .filter((a, i, all) => a !== "--rev" && all[i - 1] !== "--rev" && !a.startsWith("--rev="));
    const outAt = args.indexOf("--out");
    if (outAt >= 0) args[outAt + 1] = resolve(args[outAt + 1]!);
    const r = spawnSync(process.execPath, ["--import", "tsx", "bench/index.ts", ...args], {
      cwd: dir,
      stdio: "inherit",
      env: { ...process.env, PITCREW_BENCH_SOURCE: `${sha.slice(0, 12)} (--rev ${values.rev})` },
    });
    process.exitCode = r.status ?? 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit();
}
const only = values.only?.split(",").map((s) => s.trim());
const unknown = only?.filter((p) => !(PARTS as readonly string[]).includes(p));
if (unknown?.length) {
  process.stderr.write(`bench: unknown part(s) ${unknown.join(", ")}; parts: ${PARTS.join(", ")}\n`);
  process.exit(2);
}
const opts: Options = { quick: values.quick };
const selected = PARTS.filter((p) => !only || only.includes(p));

for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    progress(`${signal}: cleaning up`);
    void cleanupAll("all").finally(() => process.exit(130));
  });

const mysql = await hasMysql();
const nats = await hasNats();
const services = { distributed: mysql && nats, nats };

const run: Record<Part, () => Promise<unknown>> = {
  startup: async () => {
    const idleMs = opts.quick ? 500 : 5000;
    const r = await measureStartup({
      runs: opts.quick ? 1 : 5,
      idleMs,
      warmup: !opts.quick,
      distCli: await buildForBench(),
    });
    // Baseline: the bare fastify app, run by node the same way as dist (the median of 3 starts).
    const starts: Array<{ ms: number; rss: number }> = [];
    for (let i = 0; i < (opts.quick ? 1 : 3); i++) {
      const bare = await startBare();
      await sleep(idleMs);
      starts.push({ ms: bare.startMs, rss: rssMb(bare.pid) });
      await bare.stop();
    }
    starts.sort((a, b) => a.ms - b.ms);
    const mid = starts[Math.floor(starts.length / 2)]!;
    return { ...r, baseline_bare: { healthz_ms: mid.ms, idle_rss_mb: mid.rss, runs: starts.length } };
  },
  intake: () => benchIntake(opts, services),
  dispatch: () => benchDispatch(opts, services),
  tasks: () => benchTasks(opts, services),
  mcp: () => benchMcp(opts, services),
  latency: () => benchLatency(opts),
};

const commit = (() => {
  if (process.env.PITCREW_BENCH_SOURCE) return process.env.PITCREW_BENCH_SOURCE;
  try {
    const sha = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync(
      "git",
      ["status", "--porcelain", "--untracked-files=no", "--", "src", "runner", "migrations"],
      {
        encoding: "utf8",
      },
    ).trim();
    return dirty ? `${sha}+uncommitted changes` : sha;
  } catch {
    return null;
  }
})();

const loadBefore = loadavg();
const results: Record<string, unknown> = {};
const failures: string[] = [];
const started = new Date();
for (const part of selected) {
  const t0 = performance.now();
  progress(`${part}…`);
  try {
    results[part] = await run[part]();
  } catch (err) {
    failures.push(part);
    results[part] = { error: String((err as Error)?.stack ?? err) };
  } finally {
    await cleanupAll();
  }
  progress(`${part} done in ${Math.round((performance.now() - t0) / 1000)} s`);
}

await cleanupAll("all");
const doc = {
  benchmark: "pitcrew",
  version: VERSION,
  commit,
  quick: opts.quick,
  started_at: started.toISOString(),
  seconds: Math.round((Date.now() - started.getTime()) / 1000),
  machine: {
    node: process.version,
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model,
    loadavg_before: loadBefore,
    loadavg_after: loadavg(),
  },
  services: { mysql, nats },
  processes:
    "pitcrew serve/runner as child processes from a build of this run's sources (compiled JavaScript, as in production); the load generator (autocannon) in the bench process",
  results,
  targets: verdicts(results),
};
const json = `${JSON.stringify(doc, null, 2)}\n`;
process.stdout.write(json);
if (values.out) writeFileSync(values.out, json);
printTable(doc);
if (failures.length) {
  progress(`failed: ${failures.join(", ")}`);
  process.exitCode = 1;
}
