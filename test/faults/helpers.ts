import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { connect } from "node:net";
import { freePort, spawnPitcrew, type Spawned } from "../helpers/process.ts";
import { amPayload, fp } from "../helpers/alerts.ts";
import { waitFor } from "../helpers/wait.ts";

export const TOKEN = "fault-token-0123456789abcdef";
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Servers this file started: killed when the test process exits, so a failed test leaves none behind.
const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
function track(c: ChildProcess): void {
  children.add(c);
  c.once("exit", () => children.delete(c));
}

/** One line per fact, so a CI log shows what each fault run did and counted. */
export function report(what: string, facts: Record<string, unknown>): void {
  process.stdout.write(`[faults] ${what}: ${JSON.stringify(facts)}\n`);
}

/** A deterministic PRNG (mulberry32): the same seed gives the same storm, the same fuzz. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
  };
}

/**
 * A control plane (`pitcrew serve`) on its own port that a test can SIGKILL and start again with
 * the same settings; `restarts` counts the starts after the first.
 */
export async function startPlane(env: Record<string, string>) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const full = { PORT: String(port), HOST: "127.0.0.1", ALERTMANAGER_TOKEN: TOKEN, ...env };
  let current: Spawned;
  let starts = 0;
  const launch = async () => {
    current = spawnPitcrew(["serve"], full);
    track(current.child);
    starts++;
    const child = current;
    await waitFor(
      async () => {
        if (child.child.exitCode !== null || child.child.signalCode !== null) throw new Error("exited");
        return (await fetch(`${base}/readyz`)).ok;
      },
      60_000,
      100,
    ).catch((err) => {
      throw new Error(
        `control plane did not start: ${err}\n${child.stderr().slice(-4000)}\n${child.stdout().slice(-4000)}`,
      );
    });
  };
  await launch();
  return {
    port,
    base,
    get proc() {
      return current;
    },
    get restarts() {
      return starts - 1;
    },
    /** SIGKILL, then start again at once; resolves when the new one is ready. */
    async killAndRestart() {
      const dying = current;
      dying.child.kill("SIGKILL");
      const exit = await dying.exited;
      if (exit.signal !== "SIGKILL") throw new Error(`control plane exited on its own: ${JSON.stringify(exit)}`);
      await launch();
    },
    /** Still the same process, alive. */
    alive: () => current.child.exitCode === null && current.child.signalCode === null,
    async stop() {
      if (current.child.exitCode !== null || current.child.signalCode !== null) return;
      current.child.kill("SIGTERM");
      const t = setTimeout(() => current.child.kill("SIGKILL"), 20_000);
      await current.exited;
      clearTimeout(t);
    },
  };
}
export type Plane = Awaited<ReturnType<typeof startPlane>>;

export type DeliveryCounts = {
  payloads: number;
  accepted: number;
  attempts: number;
  retried5xx: number;
  status503: number;
  connectionErrors: number;
  refused4xx: number;
  /** Every answer by status code; "error" for a connection refused, reset or timed out. */
  byStatus: Record<string, number>;
};

/**
 * Posts like AlertManager's webhook notifier: a 5xx or a connection error is tried again with
 * exponential backoff (capped, with jitter), a 4xx is never tried again (the payload is dropped,
 * and counted, so a test can fail on it), a 2xx ends it.
 */
export function alertmanagerSender(
  base: () => string,
  opts: { maxBackoffMs?: number; giveUpAfterMs?: number; attemptTimeoutMs?: number } = {},
) {
  const counts: DeliveryCounts = {
    payloads: 0,
    accepted: 0,
    attempts: 0,
    retried5xx: 0,
    status503: 0,
    connectionErrors: 0,
    refused4xx: 0,
    byStatus: {},
  };
  const maxBackoff = opts.maxBackoffMs ?? 1000;
  const giveUpAfter = opts.giveUpAfterMs ?? 120_000;
  // AlertManager waits for a webhook at most its group_interval (5 m by default).
  const attemptTimeout = opts.attemptTimeoutMs ?? 300_000;
  async function deliver(body: string): Promise<{ status: number; json?: unknown }> {
    counts.payloads++;
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      counts.attempts++;
      try {
        const res = await fetch(`${base()}/webhooks/alertmanager`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
          body,
          signal: AbortSignal.timeout(attemptTimeout),
        });
        const text = await res.text();
        counts.byStatus[res.status] = (counts.byStatus[res.status] ?? 0) + 1;
        if (res.ok) {
          counts.accepted++;
          return { status: res.status, json: JSON.parse(text) };
        }
        if (res.status < 500) {
          counts.refused4xx++;
          return { status: res.status, json: text };
        }
        counts.retried5xx++;
        if (res.status === 503) counts.status503++;
      } catch {
        counts.connectionErrors++;
        counts.byStatus.error = (counts.byStatus.error ?? 0) + 1;
      }
      if (Date.now() - started > giveUpAfter) throw new Error(`payload not accepted within ${giveUpAfter} ms`);
      const backoff = Math.min(maxBackoff, 25 * 2 ** attempt);
      await sleep(backoff / 2 + Math.random() * (backoff / 2));
    }
  }
  return { deliver, counts };
}

/** One firing alert of a storm, unique to `tag` and `i`, that no skill matches. */
export function stormAlert(tag: string, i: number) {
  return {
    status: "firing",
    labels: {
      alertname: "FaultStormProbe",
      namespace: `storm-${tag}`,
      instance: `10.1.${(i >> 8) & 255}.${i & 255}:9100`,
      severity: "warning",
    },
    annotations: { summary: `storm alert ${i}` },
    startsAt: "2026-11-20T08:00:00Z",
    endsAt: "0001-01-01T00:00:00Z",
    generatorURL: "http://prometheus:9090/graph?g0.expr=up",
    fingerprint: fp(`storm-${i}`, tag),
  };
}

/**
 * `total` storm alerts in payloads of 1 to 4 alerts (as AlertManager groups them), sent by
 * `concurrency` senders; `onAccepted` sees the running count of accepted alerts.
 */
export async function storm(
  sender: ReturnType<typeof alertmanagerSender>,
  tag: string,
  total: number,
  concurrency: number,
  onAccepted?: (alerts: number) => void,
): Promise<void> {
  const payloads: string[] = [];
  for (let i = 0; i < total; ) {
    const n = Math.min(total - i, (payloads.length % 4) + 1);
    const alerts = Array.from({ length: n }, (_, k) => stormAlert(tag, i + k));
    payloads.push(JSON.stringify(amPayload(alerts, `{}:{storm="${tag}-${payloads.length}"}`)));
    i += n;
  }
  let next = 0;
  let accepted = 0;
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < payloads.length) {
        const body = payloads[next++]!;
        const res = await sender.deliver(body);
        if (res.status >= 300) failures.push(`${res.status} ${JSON.stringify(res.json).slice(0, 300)}`);
        else {
          accepted += (res.json as { alerts: number }).alerts;
          onAccepted?.(accepted);
        }
      }
    }),
  );
  if (failures.length) throw new Error(`${failures.length} payloads refused with 4xx: ${failures.slice(0, 3)}`);
}

/** A nats-server of the test's own (JetStream, its own port and store folder), to stop and start. */
export async function privateNats(storeDir: string) {
  const port = await freePort();
  mkdirSync(storeDir, { recursive: true });
  let child: ChildProcess | undefined;
  const portOpen = () =>
    new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), resolve(true)));
      s.once("error", () => (s.destroy(), resolve(false)));
    });
  const start = async () => {
    child = spawn("/usr/sbin/nats-server", ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], {
      stdio: "ignore",
    });
    track(child);
    await waitFor(portOpen, 15_000, 50);
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGTERM");
    const t = setTimeout(() => c.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(t);
  };
  await start();
  return { url: `nats://127.0.0.1:${port}`, port, start, stop };
}
