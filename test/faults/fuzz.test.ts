import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore, type Store } from "../../src/store/db.ts";
import { amPayload, fp } from "../helpers/alerts.ts";
import { hasMysql } from "../helpers/services.ts";
import { privateMysqlUrl } from "../helpers/store.ts";
import { type Plane, prng, report, startPlane, TOKEN } from "./helpers.ts";
import { type Fuzzed, fuzzed } from "./mutations.ts";

// 3,000 seeded mutations of the AlertManager fixtures, then two groups of 10,000 alerts as
// AlertManager sends them with `max_alerts: 0` (about 3 MB each), against one `pitcrew serve` on
// SQLite and one on MariaDB. No 5xx, the process stays up, nothing stored of an invalid payload,
// everything of a valid one. FUZZ_SEED picks another run; a failure prints the seed and names.

const SEED = Number(process.env.FUZZ_SEED ?? 20261128);
const PAYLOADS = 3000;
const BIG_GROUP = 10_000;
const mysqlUp = await hasMysql();
type Answer = { status: number; body: string };

/** A group of `n` firing KubePodCrashLooping alerts of one deployment, as AlertManager sends it. */
function bigGroup(n: number, tag: string) {
  const alerts = Array.from({ length: n }, (_, i) => ({
    status: "firing",
    labels: {
      alertname: "KubePodCrashLooping",
      namespace: `big-${tag}`,
      pod: `api-7d9f8b6c5-${i.toString(36).padStart(5, "0")}`,
      container: "api",
      severity: "warning",
    },
    annotations: { summary: "crash looping" },
    startsAt: "2026-11-20T08:00:00.123Z",
    endsAt: "0001-01-01T00:00:00Z",
    generatorURL: "http://prometheus:9090/graph?g0.expr=up",
    fingerprint: fp(`big-${i}`, tag),
  }));
  return amPayload(alerts, `{}/{severity=~"warning|critical"}:{namespace="big-${tag}"}`);
}

function fingerprintsIn(body: string | Buffer): string[] {
  const text = typeof body === "string" ? body : body.toString("latin1");
  return [...text.matchAll(/"fingerprint":\s*"([^"\\]{1,64})"/g)].map((m) => m[1]!);
}

for (const dialect of ["sqlite", "mysql"] as const) {
  describe.skipIf(dialect === "mysql" && !mysqlUp)(
    `3,000 seeded payloads and two 10,000-alert groups on ${dialect}`,
    () => {
      let dir: string;
      let plane: Plane;
      let store: Store;
      let db: Awaited<ReturnType<typeof privateMysqlUrl>> | undefined;

      beforeAll(async () => {
        dir = mkdtempSync(join(tmpdir(), "pitcrew-faults-fuzz-"));
        // A fresh database: every alert row in it comes from this run.
        if (dialect === "mysql") db = await privateMysqlUrl();
        // DRY_RUN: every incident is planned and recorded, nothing is fixed (the fuzz is about intake).
        plane = await startPlane({
          DATA_DIR: join(dir, "data"),
          DRY_RUN: "true",
          ...(db ? { DATABASE_URL: db.url } : {}),
        });
        store = db
          ? openStore({ dialect: "mysql", url: db.url, poolSize: 2 })
          : openStore({ dialect: "sqlite", file: join(dir, "data", "pitcrew.db") });
      });
      afterAll(async () => {
        await plane?.stop();
        await store?.close();
        await db?.drop();
        if (dir) rmSync(dir, { recursive: true, force: true });
      });

      async function post(f: Pick<Fuzzed, "body" | "contentType">): Promise<Answer> {
        const res = await fetch(`${plane.base}/webhooks/alertmanager`, {
          method: "POST",
          headers: { "content-type": f.contentType, authorization: `Bearer ${TOKEN}` },
          body: f.body,
        });
        return { status: res.status, body: await res.text() };
      }

      it("answers no 5xx, stays up, stores every valid payload whole and nothing of an invalid one", async () => {
        const rnd = prng(SEED);
        const run = randomBytes(3).toString("hex");
        const cases = Array.from({ length: PAYLOADS }, (_, i) => fuzzed(rnd, `${run}${i.toString(36)}`));
        const answers: Answer[] = new Array(cases.length);
        let next = 0;
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            while (next < cases.length) {
              const i = next++;
              answers[i] = await post(cases[i]!);
            }
          }),
        );

        const bigTags = [randomBytes(4).toString("hex"), randomBytes(4).toString("hex")];
        const bigBodies = bigTags.map((t) => JSON.stringify(bigGroup(BIG_GROUP, t)));
        const bigAnswers: Answer[] = [];
        for (const body of bigBodies) bigAnswers.push(await post({ body, contentType: "application/json" }));

        const expected = new Set<string>();
        const refusedFingerprints = new Set<string>();
        const problems: string[] = [];
        const byClass: Record<string, Record<string, number>> = {};
        for (const [i, f] of cases.entries()) {
          const a = answers[i]!;
          const cls = (byClass[f.expect] ??= {});
          cls[a.status] = (cls[a.status] ?? 0) + 1;
          const what = `#${i} ${f.name} -> ${a.status} ${a.body.slice(0, 200)}`;
          if (a.status >= 500) problems.push(`5xx: ${what}`);
          else if (f.expect === "valid" && a.status !== 200) problems.push(`valid payload refused: ${what}`);
          else if (f.expect === "invalid" && a.status < 400) problems.push(`invalid payload accepted: ${what}`);
          if (a.status === 200) {
            const outcomes = JSON.parse(a.body).outcomes as { fingerprint: string; outcome: string }[];
            if (f.alerts !== undefined && outcomes.length !== f.alerts)
              problems.push(`${outcomes.length} outcomes for ${f.alerts} alerts: ${what}`);
            for (const o of outcomes) if (o.outcome !== "ignored") expected.add(o.fingerprint);
          } else for (const x of fingerprintsIn(f.body)) refusedFingerprints.add(x);
        }
        for (const [k, a] of bigAnswers.entries()) {
          if (a.status !== 200)
            problems.push(
              `a ${bigBodies[k]!.length}-byte group of ${BIG_GROUP} refused: ${a.status} ${a.body.slice(0, 300)}`,
            );
          else for (const o of JSON.parse(a.body).outcomes as { fingerprint: string }[]) expected.add(o.fingerprint);
        }

        const stored = new Map(
          (
            await store.db
              .selectFrom("alerts")
              .select(["fingerprint", (eb) => eb.fn.countAll<number>().as("n")])
              .groupBy("fingerprint")
              .execute()
          ).map((r) => [r.fingerprint, Number(r.n)]),
        );
        const missing = [...expected].filter((x) => !stored.has(x));
        const unexpected = [...stored.keys()].filter((x) => !expected.has(x));
        const fromRefused = [...refusedFingerprints].filter((x) => stored.has(x) && !expected.has(x));
        const health = await fetch(`${plane.base}/healthz`);

        report(`fuzz on ${dialect}`, {
          seed: SEED,
          payloads: PAYLOADS,
          answersByExpectation: byClass,
          bigGroups: bigAnswers.map((a, k) => ({ bytes: bigBodies[k]!.length, status: a.status })),
          alertsExpected: expected.size,
          alertFingerprintsStored: stored.size,
          missing: missing.length,
          unexpected: unexpected.length,
          storedFromRefusedPayloads: fromRefused.length,
          restarts: plane.restarts,
          alive: plane.alive(),
          problems: problems.length,
        });

        expect(problems.slice(0, 20), `seed ${SEED}`).toEqual([]);
        expect(plane.alive()).toBe(true);
        expect(health.status).toBe(200);
        expect(bigBodies.every((b) => b.length > 3_000_000)).toBe(true);
        expect(missing.slice(0, 20)).toEqual([]);
        expect(unexpected.slice(0, 20)).toEqual([]);
        expect(fromRefused).toEqual([]);
      }, 300_000);
    },
  );
}
