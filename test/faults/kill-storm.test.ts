import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { afterAll, describe, expect, it } from "vitest";
import { openStore, type Store } from "../../src/store/db.ts";
import { deleteStreams } from "../helpers/queues.ts";
import { hasMysql, hasNats, NATS_URL } from "../helpers/services.ts";
import { privateMysqlUrl } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";
import { alertmanagerSender, report, startPlane, storm } from "./helpers.ts";

// The control plane is SIGKILLed three times while a 3,000-alert storm comes in from a sender that
// retries like AlertManager. Afterwards: every alert stored once, every incident analysed once (the
// storm's alerts match no skill, so analysis ends in `escalated: no skill matches`), none left
// `detected` or `analyzing`. What a kill cut off is redelivered, or found by the sweeper.

const ALERTS = 3000;
const KILLS_AT = [600, 1500, 2400];
const SWEEP = { STUCK_AFTER: "2s", SWEEP_INTERVAL: "250ms", SWEEP_MAX_RETRIES: "20" };
const distributed = (await hasMysql()) && (await hasNats());

type Backend = { name: string; env: Record<string, string>; store: () => Store; cleanup: () => Promise<void> };

async function sqliteBackend(dir: string): Promise<Backend> {
  let store: Store | undefined;
  return {
    name: "SQLite (embedded)",
    env: { DATA_DIR: join(dir, "data") },
    store: () => (store ??= openStore({ dialect: "sqlite", file: join(dir, "data", "pitcrew.db") })),
    cleanup: async () => void (await store?.close()),
  };
}

async function distributedBackend(): Promise<Backend> {
  const db = await privateMysqlUrl();
  const prefix = `f${randomBytes(4).toString("hex")}`;
  const store = openStore({ dialect: "mysql", url: db.url, poolSize: 2 });
  return {
    name: "MariaDB + JetStream",
    env: { DATABASE_URL: db.url, NATS_URL, NATS_PREFIX: prefix, TASK_ACK_WAIT: "3s" },
    store: () => store,
    cleanup: async () => {
      await store.close();
      await db.drop();
      await deleteStreams({
        tasksStream: `${prefix.toUpperCase()}_TASKS`,
        eventsStream: `${prefix.toUpperCase()}_EVENTS`,
      });
    },
  };
}

const count = async (q: Promise<{ n: number | string | bigint }[]>) => Number((await q)[0]?.n ?? 0);

async function runStorm(backend: Backend, dir: string) {
  const tag = randomBytes(4).toString("hex");
  // No skills: every incident's analysis ends in one verdict, "no skill matches".
  const skills = join(dir, "skills");
  mkdirSync(skills);
  const plane = await startPlane({
    ...backend.env,
    ...SWEEP,
    SKILLS_DIR: skills,
    ANALYSIS_CONCURRENCY: "8",
    DATA_DIR: join(dir, "data"),
  });
  const sender = alertmanagerSender(() => plane.base);
  const started = Date.now();
  try {
    const kills: Promise<void>[] = [];
    let killed = 0;
    // Kill when the storm has passed each mark; the senders keep sending (and retrying) meanwhile.
    let chain = Promise.resolve();
    await storm(sender, tag, ALERTS, 16, (accepted) => {
      while (killed < KILLS_AT.length && accepted >= KILLS_AT[killed]!) {
        killed++;
        chain = chain.then(() => plane.killAndRestart());
        kills.push(chain);
      }
    });
    await Promise.all(kills);
    const stormMs = Date.now() - started;
    const db = backend.store().db;

    const unfinished = () =>
      count(
        db
          .selectFrom("incidents")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("namespace", "=", `storm-${tag}`)
          .where("state", "in", ["detected", "analyzing"])
          .execute(),
      );
    await waitFor(async () => (await unfinished()) === 0, 150_000, 500).catch(async (err) => {
      throw new Error(
        `${err}: ${await unfinished()} incidents still detected or analyzing\n${plane.proc.stderr().slice(-3000)}`,
      );
    });

    const alertRows = await db
      .selectFrom("alerts")
      .select([
        "fingerprint",
        (eb) => eb.fn.countAll<number>().as("n"),
        (eb) => eb.fn.max("repeat_count").as("repeats"),
      ])
      .where("labels", "like", `%storm-${tag}%`)
      .groupBy("fingerprint")
      .execute();
    const incidents = await db
      .selectFrom("incidents")
      .select(["id", "state"])
      .where("namespace", "=", `storm-${tag}`)
      .execute();
    const analysed = await db
      .selectFrom("events")
      .innerJoin("incidents", "incidents.id", "events.incident_id")
      .select(["events.incident_id as id", "events.type", "events.reason"])
      .where("incidents.namespace", "=", `storm-${tag}`)
      .where("events.type", "in", ["incident.escalated", "incident.fixing", "incident.suppressed"])
      .execute();
    const perIncident = new Map<string, number>();
    for (const e of analysed) perIncident.set(e.id!, (perIncident.get(e.id!) ?? 0) + 1);
    const byReason: Record<string, number> = {};
    for (const e of analysed) byReason[e.reason ?? e.type] = (byReason[e.reason ?? e.type] ?? 0) + 1;
    const resumed = await count(
      db
        .selectFrom("events")
        .innerJoin("incidents", "incidents.id", "events.incident_id")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("incidents.namespace", "=", `storm-${tag}`)
        .where("events.type", "in", ["incident.resumed", "incident.requeued"])
        .execute(),
    );
    const states: Record<string, number> = {};
    for (const i of incidents) states[i.state] = (states[i.state] ?? 0) + 1;

    report(`kill storm on ${backend.name}`, {
      alertsSent: ALERTS,
      kills: plane.restarts,
      stormMs,
      settledMs: Date.now() - started,
      ...sender.counts,
      alertRows: alertRows.length,
      duplicateAlertRows: alertRows.filter((r) => Number(r.n) > 1).length,
      // Committed, then sent again because the answer was lost (a kill between commit and reply).
      alertsReceivedAgain: alertRows.filter((r) => Number(r.repeats) > 0).length,
      incidents: incidents.length,
      states,
      analysisOutcomes: byReason,
      analysedTwice: [...perIncident.values()].filter((n) => n > 1).length,
      resumedOrRequeued: resumed,
    });

    expect(plane.restarts).toBe(KILLS_AT.length);
    expect(sender.counts.refused4xx).toBe(0);
    expect(alertRows).toHaveLength(ALERTS);
    expect(alertRows.filter((r) => Number(r.n) !== 1)).toEqual([]);
    // Each alert of the storm has its own fingerprint and no skill groups them: one incident each.
    expect(incidents).toHaveLength(ALERTS);
    expect(states).toEqual({ escalated: ALERTS });
    // Analysed, once: the planner's own verdict, not a sweeper giving up on an incident.
    expect(byReason).toEqual({ "no skill matches this incident": ALERTS });
    expect([...perIncident.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect(perIncident.size).toBe(ALERTS);
    // Nothing left unsent in the outbox. A row a killed relay had claimed stays leased to it for
    // the lease's 30 s; the running control plane sends it then (JetStream drops the copy of a
    // message the dead one had already published).
    const unsent = () =>
      count(
        db
          .selectFrom("outbox")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where(sql<boolean>`sent_at is null`)
          .execute(),
      );
    const unsentAtSettle = await unsent();
    await waitFor(async () => (await unsent()) === 0, 90_000, 500).catch(async (err) => {
      throw new Error(`${err}: ${await unsent()} outbox rows unsent (${unsentAtSettle} when the incidents settled)`);
    });
    report(`kill storm on ${backend.name}, outbox`, { unsentWhenSettled: unsentAtSettle, unsentAfter: 0 });
  } finally {
    await plane.stop();
  }
}

describe("the control plane SIGKILLed three times during a 3,000-alert storm", () => {
  const dirs: string[] = [];
  const mkdir = () => {
    const d = mkdtempSync(join(tmpdir(), "pitcrew-faults-kill-"));
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("on SQLite: stores every alert once and analyses every incident once", async () => {
    const dir = mkdir();
    const backend = await sqliteBackend(dir);
    try {
      await runStorm(backend, dir);
    } finally {
      await backend.cleanup();
    }
  }, 300_000);

  it.skipIf(!distributed)(
    "on MariaDB + JetStream: stores every alert once and analyses every incident once",
    async () => {
      const dir = mkdir();
      const backend = await distributedBackend();
      try {
        await runStorm(backend, dir);
      } finally {
        await backend.cleanup();
      }
    },
    300_000,
  );
});
