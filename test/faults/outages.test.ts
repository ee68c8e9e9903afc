import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore, type Store } from "../../src/store/db.ts";
import { hasMysql } from "../helpers/services.ts";
import { privateMysqlUrl } from "../helpers/store.ts";
import { startTcpProxy } from "../helpers/tcp-proxy.ts";
import { waitFor } from "../helpers/wait.ts";
import {
  alertmanagerSender,
  type DeliveryCounts,
  type Plane,
  privateNats,
  report,
  sleep,
  startPlane,
  stormAlert,
} from "./helpers.ts";
import { amPayload } from "../helpers/alerts.ts";

// A distributed control plane (MariaDB + JetStream) under a steady storm loses NATS for 10 s (a
// nats-server of the test's own, stopped and started again on the same port and store), then its
// database for 10 s (every connection cut and refused by a TCP proxy). The sender retries like
// AlertManager. During the database cut the webhook answers 503; afterwards every alert is stored
// once and every incident analysed once, by the same process: no restart.

const OUTAGE_MS = 10_000;
const mysqlUp = await hasMysql();

describe.skipIf(!mysqlUp)("NATS stopped and the database cut for 10 s each during a storm", () => {
  const tag = randomBytes(4).toString("hex");
  let dir: string;
  let db: Awaited<ReturnType<typeof privateMysqlUrl>>;
  let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
  let nats: Awaited<ReturnType<typeof privateNats>>;
  let store: Store;
  let plane: Plane;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "pitcrew-faults-outage-"));
    mkdirSync(join(dir, "skills"));
    db = await privateMysqlUrl();
    proxy = await startTcpProxy(db.url);
    nats = await privateNats(join(dir, "nats"));
    plane = await startPlane({
      DATABASE_URL: proxy.url,
      NATS_URL: nats.url,
      DATA_DIR: join(dir, "data"),
      SKILLS_DIR: join(dir, "skills"),
      TASK_ACK_WAIT: "3s",
      STUCK_AFTER: "2s",
      SWEEP_INTERVAL: "250ms",
      SWEEP_MAX_RETRIES: "20",
    });
    store = openStore({ dialect: "mysql", url: db.url, poolSize: 2 });
  });

  afterAll(async () => {
    await plane?.stop();
    await nats?.stop();
    await proxy?.close();
    await store?.close();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("answers 503 while the database is cut, loses nothing and does not restart", async () => {
    const pid = plane.proc.child.pid;
    const sender = alertmanagerSender(() => plane.base, { giveUpAfterMs: 60_000 });
    let stop = false;
    let nextAlert = 0;
    let accepted = 0;
    const refused: string[] = [];
    // Eight senders, two alerts a payload, a short pause between payloads: a steady storm.
    const senders = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const i = nextAlert;
        nextAlert += 2;
        const body = JSON.stringify(amPayload([stormAlert(tag, i), stormAlert(tag, i + 1)], `{}:{s="${tag}-${i}"}`));
        const res = await sender.deliver(body);
        if (res.status >= 300) refused.push(`${res.status} ${String(res.json).slice(0, 200)}`);
        else accepted += 2;
        await sleep(20);
      }
    });
    const until = (n: number) => waitFor(() => accepted >= n, 60_000, 20);
    const snapshot = (): DeliveryCounts => structuredClone(sender.counts);
    const diff = (a: DeliveryCounts, b: DeliveryCounts) => {
      const out: Record<string, number> = {};
      for (const k of new Set([...Object.keys(a.byStatus), ...Object.keys(b.byStatus)]))
        out[k] = (b.byStatus[k] ?? 0) - (a.byStatus[k] ?? 0);
      return out;
    };

    await until(200);
    const beforeNats = snapshot();
    const acceptedBeforeNats = accepted;
    await nats.stop();
    await sleep(OUTAGE_MS);
    await nats.start();
    const duringNats = diff(beforeNats, snapshot());
    const acceptedDuringNats = accepted - acceptedBeforeNats;

    await until(accepted + 200);
    const beforeDb = snapshot();
    await proxy.down();
    await sleep(OUTAGE_MS);
    await proxy.up();
    const duringDb = diff(beforeDb, snapshot());

    await until(accepted + 200);
    stop = true;
    await Promise.all(senders);
    const sent = nextAlert;

    const unfinished = () =>
      store.db
        .selectFrom("incidents")
        .select("id")
        .where("namespace", "=", `storm-${tag}`)
        .where("state", "in", ["detected", "analyzing"])
        .execute();
    await waitFor(async () => (await unfinished()).length === 0, 120_000, 500).catch(async (err) => {
      throw new Error(
        `${err}: ${(await unfinished()).length} still detected or analyzing\n${plane.proc.stderr().slice(-3000)}`,
      );
    });

    const alertRows = await store.db
      .selectFrom("alerts")
      .select(["fingerprint", (eb) => eb.fn.countAll<number>().as("n")])
      .where("labels", "like", `%storm-${tag}%`)
      .groupBy("fingerprint")
      .execute();
    const incidents = await store.db
      .selectFrom("incidents")
      .select(["id", "state"])
      .where("namespace", "=", `storm-${tag}`)
      .execute();
    const verdicts = await store.db
      .selectFrom("events")
      .innerJoin("incidents", "incidents.id", "events.incident_id")
      .select(["events.incident_id as id", "events.reason"])
      .where("incidents.namespace", "=", `storm-${tag}`)
      .where("events.type", "=", "incident.escalated")
      .execute();
    const perIncident = new Map<string, number>();
    for (const v of verdicts) perIncident.set(v.id!, (perIncident.get(v.id!) ?? 0) + 1);

    report("NATS stopped 10 s, then the database cut 10 s, during a storm", {
      alertsSent: sent,
      acceptedWhileNatsDown: acceptedDuringNats,
      answersWhileNatsDown: duringNats,
      answersWhileDatabaseCut: duringDb,
      ...sender.counts,
      alertRows: alertRows.length,
      duplicateAlertRows: alertRows.filter((r) => Number(r.n) > 1).length,
      incidents: incidents.length,
      unanalysed: incidents.filter((i) => i.state !== "escalated").length,
      analysedTwice: [...perIncident.values()].filter((n) => n > 1).length,
      restarted: plane.proc.child.pid !== pid || !plane.alive(),
    });

    expect(plane.alive()).toBe(true);
    expect(plane.proc.child.pid).toBe(pid);
    expect(refused).toEqual([]);
    // The database cut was answered with 503 (AlertManager retries those), never with another 5xx.
    expect(duringDb["503"] ?? 0).toBeGreaterThan(0);
    expect(Object.keys(sender.counts.byStatus).filter((s) => s !== "200" && s !== "503" && s !== "error")).toEqual([]);
    expect(alertRows).toHaveLength(sent);
    expect(alertRows.filter((r) => Number(r.n) !== 1)).toEqual([]);
    expect(incidents).toHaveLength(sent);
    expect(incidents.filter((i) => i.state !== "escalated")).toEqual([]);
    expect(new Set(verdicts.map((v) => v.reason))).toEqual(new Set(["no skill matches this incident"]));
    expect([...perIncident.values()].filter((n) => n !== 1)).toEqual([]);
    expect(perIncident.size).toBe(sent);
  }, 240_000);
});
