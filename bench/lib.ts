// What the benchmark parts share: real processes (`pitcrew serve`, `pitcrew runner`, the bare
// fastify baseline), a load generator with a fixed connection pool (autocannon), percentiles,
// resident memory read from /proc, and databases/streams of the run's own that are removed after.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import autocannon from "autocannon";
import { sql } from "kysely";
import { build, ROOT } from "../bin/build.mjs";
import { openStore } from "../src/store/db.ts";
import { freePort, type Spawned } from "../test/helpers/process.ts";
import { MYSQL_URL } from "../test/helpers/services.ts";

export type Options = { quick: boolean };

/**
 * The processes under load run compiled JavaScript, as in production, from a build of the run's
 * own (emitted without a type check: CI checks the same sources), so neither a stale dist/ nor a
 * source saved during the run changes what is measured. Under node_modules/ so that the build's
 * imports resolve to the project's packages.
 */
let cli: string | undefined;
export async function buildForBench(): Promise<string> {
  if (cli) return cli;
  const out = join(ROOT, "node_modules", ".cache", `pitcrew-bench-${process.pid}`);
  progress("compiling the sources for this run");
  onCleanup(async () => rmSync(out, { recursive: true, force: true }), "run");
  await build(out, { typeCheck: false });
  cli = join(out, "src", "main", "cli.js");
  return cli;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
export const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

/**
 * Undone in reverse order, whatever failed before: `part` ones after each part, `run` ones (the
 * build) at the end of the run; both on SIGINT/SIGTERM.
 */
const cleanups = { part: [] as Array<() => Promise<unknown>>, run: [] as Array<() => Promise<unknown>> };
export function onCleanup(fn: () => Promise<unknown>, scope: keyof typeof cleanups = "part"): void {
  cleanups[scope].push(fn);
}
export async function cleanupAll(scope: keyof typeof cleanups | "all" = "part"): Promise<void> {
  for (const s of scope === "all" ? (["part", "run"] as const) : [scope]) {
    const list = cleanups[s];
    while (list.length) await list.pop()!().catch((err) => progress(`cleanup failed: ${err}`));
  }
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
export function latencySummary(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50_ms: round(percentile(s, 50)), p99_ms: round(percentile(s, 99)), max_ms: round(s.at(-1)!) };
}

export function rssMb(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return round(Number(kb) / 1024);
}

/**
 * CPU time (user + system) a process has used, in ms, from /proc/<pid>/stat (clock ticks of 10 ms,
 * Linux's USER_HZ). CPU per request is steadier than requests per second on a machine whose other
 * load takes cores away: it counts only what the process itself did.
 */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Samples a process's RSS every 200 ms until stopped; returns the highest seen. */
export function watchRss(pid: number) {
  let max = rssMb(pid);
  const timer = setInterval(() => {
    try {
      max = Math.max(max, rssMb(pid));
    } catch {}
  }, 200);
  return () => (clearInterval(timer), max);
}

async function waitHealthy(port: number, path: string, child: Spawned, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const exit = child.child.exitCode;
    if (exit !== null) throw new Error(`process exited with ${exit} before ${path} answered:\n${child.stderr()}`);
    const ok = await fetch(`http://127.0.0.1:${port}${path}`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${path} did not answer within ${timeoutMs} ms:\n${child.stderr()}`);
    await sleep(10);
  }
}

export type Server = { port: number; pid: number; proc: Spawned; stop: () => Promise<void> };

async function stopProcess(p: Spawned): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill("SIGTERM");
  const timer = setTimeout(() => p.child.kill("SIGKILL"), 20_000);
  await p.exited;
  clearTimeout(timer);
}

/** A process with its output kept (stderr for the errors; stdout is small at LOG_LEVEL=warn). */
function spawnNode(args: string[], env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (b) => (out = (out + b).slice(-20_000)));
  child.stderr!.on("data", (b) => (err = (err + b).slice(-20_000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  onCleanup(() => stopProcess({ child, stdout: () => out, stderr: () => err, exited }));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** `pitcrew serve` from the run's build, on a free port, once /readyz answers. The environment is its only configuration. */
export async function startServe(env: Record<string, string>): Promise<Server> {
  const port = await freePort();
  const proc = spawnNode([await buildForBench(), "serve"], { HOST: "127.0.0.1", PORT: String(port), ...env });
  await waitHealthy(port, "/readyz", proc);
  return { port, pid: proc.child.pid!, proc, stop: () => stopProcess(proc) };
}

export async function startRunnerProcess(env: Record<string, string>): Promise<Spawned> {
  return spawnNode([await buildForBench(), "runner"], env);
}

/** The baseline: a bare fastify app (bench/bare-server.mjs), run by node the same way. */
export async function startBare(): Promise<Server & { startMs: number }> {
  const port = await freePort();
  const t0 = performance.now();
  const proc = spawnNode([join(ROOT, "bench", "bare-server.mjs")], { PORT: String(port) });
  await waitHealthy(port, "/healthz", proc);
  return { port, pid: proc.child.pid!, proc, stop: () => stopProcess(proc), startMs: round(performance.now() - t0) };
}

export type Load = {
  url: string;
  connections: number;
  /** Either a duration, or a number of requests to complete (what --quick runs). */
  seconds?: number;
  amount?: number;
  headers: Record<string, string>;
  /** A new body for every request. */
  body: () => string;
};

/**
 * One autocannon run. Requests that failed (connection errors, timeouts, non-2xx answers) are
 * counted beside the figures; `strict` (--quick) makes any of them an error.
 */
export async function load(l: Load, strict = false) {
  const result = await autocannon({
    url: l.url,
    method: "POST",
    connections: l.connections,
    ...(l.amount ? { amount: l.amount } : { duration: l.seconds ?? 10 }),
    headers: l.headers,
    timeout: 60,
    requests: [{ setupRequest: (req) => ({ ...req, body: l.body() }) }],
  });
  const ok = result["2xx"];
  const failed = result.errors + result.timeouts + result.non2xx;
  if (strict && (failed || ok === 0))
    throw new Error(
      `${l.url}: ${ok} answered 2xx; ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx (${JSON.stringify(result.statusCodeStats)})`,
    );
  return {
    requests: ok,
    ...(failed ? { failed: { errors: result.errors, timeouts: result.timeouts, non2xx: result.non2xx } } : {}),
    per_s: Math.round(ok / result.duration),
    // Nothing answered within the run (every request slower than it): no latency to show.
    p50_ms: ok ? result.latency.p50 : null,
    p99_ms: ok ? result.latency.p99 : null,
    max_ms: ok ? result.latency.max : null,
  };
}

/** A database of the run's own on the MySQL server at MYSQL_URL (bench_<random>), dropped at cleanup. */
export async function benchDatabase(): Promise<string> {
  const name = `bench_${randomBytes(4).toString("hex")}`;
  const admin = openStore({ dialect: "mysql", url: MYSQL_URL, poolSize: 1 });
  await sql.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`).execute(admin.db);
  onCleanup(async () => {
    await sql.raw(`DROP DATABASE IF EXISTS \`${name}\``).execute(admin.db);
    await admin.close();
  });
  const url = new URL(MYSQL_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** A NATS_PREFIX of the run's own; its streams are deleted at cleanup. */
export function benchPrefix(): string {
  const prefix = `bench${randomBytes(3).toString("hex")}`;
  onCleanup(async () => {
    const { deleteStreams } = await import("../test/helpers/queues.ts");
    await deleteStreams({
      tasksStream: `${prefix.toUpperCase()}_TASKS`,
      eventsStream: `${prefix.toUpperCase()}_EVENTS`,
    });
  });
  return prefix;
}
