import type { FastifyInstance } from "fastify";
import { createAlertIntake, type IntakeSettings } from "../../src/alerts/intake.ts";
import type { AlertmanagerAuth } from "../../src/alerts/route.ts";
import { defaultLabelMapping } from "../../src/alerts/normalize.ts";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import type { TaskQueue } from "../../src/bus/port.ts";
import { buildHttpApp } from "../../src/http/app.ts";
import { createMetrics } from "../../src/shared/metrics.ts";
import { createAnalysisWorker, type Guardrails } from "../../src/incidents/analysis.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { loadSkills } from "../../src/skills/load.ts";
import { rulesPlanner } from "../../src/skills/planner.ts";
import type { Store } from "../../src/store/db.ts";

export const TOKEN = "test-token-0123456789abcdef";
export const skills = loadSkills("skills").skills;

export type Clock = { now: number; set(iso: string): void; advance(ms: number): void };

export function makeClock(iso = "2026-11-20T08:15:00Z"): Clock {
  const c = {
    now: Date.parse(iso),
    set(s: string) {
      c.now = Date.parse(s);
    },
    advance(ms: number) {
      c.now += ms;
    },
  };
  return c;
}

export type IntakeHarness = {
  app: FastifyInstance;
  clock: Clock;
  queue: TaskQueue;
  analysis: ReturnType<typeof createAnalysisWorker>;
  close(): Promise<void>;
};

export async function intakeApp(
  store: Store,
  opts: {
    settings?: Partial<IntakeSettings>;
    guardrails?: Partial<Guardrails>;
    auth?: AlertmanagerAuth;
    /** The webhook route's body limit (ALERTMANAGER_BODY_LIMIT); 32 MiB by default, as in production. */
    bodyLimit?: number;
    requestTimeoutMs?: number;
    clock?: Clock;
    skills?: typeof skills;
  } = {},
): Promise<IntakeHarness> {
  const clock = opts.clock ?? makeClock();
  const now = () => clock.now;
  const queue = createMemoryQueue({ log: silentLogger });
  const intake = createAlertIntake({
    store,
    log: silentLogger,
    now,
    skills: () => skills,
    settings: {
      flapWindowMs: 30 * 60_000,
      flapLimit: 3,
      maxFailedFixes: 3,
      labels: defaultLabelMapping,
      ...opts.settings,
    },
  });
  const analysis = createAnalysisWorker({
    store,
    queue,
    log: silentLogger,
    now,
    skills: () => opts.skills ?? skills,
    planner: rulesPlanner,
    guardrails: {
      dryRun: false,
      maxPrsPerHour: 1000,
      maxPrsPerDay: 10_000,
      maxFixesPerNamespace: 10,
      autoApproveMaxRisk: "read",
      ...opts.guardrails,
    },
  });
  const metrics = createMetrics();
  const app = await buildHttpApp({
    log: silentLogger,
    store,
    queue,
    metrics,
    bodyLimit: 1_048_576,
    requestTimeoutMs: opts.requestTimeoutMs,
    alertmanager: {
      intake,
      auth: opts.auth ?? { mode: "token", token: TOKEN, user: "alertmanager" },
      bodyLimit: opts.bodyLimit ?? 32 * 1_048_576,
    },
  });
  await app.ready();
  return {
    app,
    clock,
    queue,
    analysis,
    async close() {
      await app.close();
      await queue.close();
    },
  };
}
