import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/shared/logger.ts";
import { openStore } from "../../src/store/db.ts";
import { createSkillSync } from "../../src/skills/sync.ts";
import { hasMysql, hasNats, NATS_URL } from "../helpers/services.ts";
import { privateMysqlUrl, storeFactories } from "../helpers/store.ts";
import { freePort, spawnPitcrew } from "../helpers/process.ts";
import { waitFor } from "../helpers/wait.ts";
import { deleteStreams } from "../helpers/queues.ts";

const factories = await storeFactories();
const natsUp = await hasNats();
const mysqlUp = await hasMysql();
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "pitcrew-skills-"));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A skill for alert `alertname`; with `grouped`, one incident per namespace/deployment. */
function skillYaml(name: string, alertname: string, grouped: boolean): string {
  return [
    `name: ${name}`,
    `description: restart ${alertname} workloads`,
    "match:",
    `  alertname: [${alertname}]`,
    ...(grouped ? ['dedupe_key: "{{labels.namespace}}/{{labels.deployment}}"'] : []),
    "risk: low",
    "action:",
    "  builtin: restart",
    '  with: { namespace: "{{labels.namespace}}", deployment: "{{labels.deployment}}" }',
    "",
  ].join("\n");
}

function skillsDir(files: Record<string, string>): string {
  const dir = tempDir();
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return dir;
}

for (const f of factories) {
  describe.skipIf(!f.available)(`shared skill set on ${f.name}`, () => {
    it("makes a reload on one replica the set every replica uses, and keeps it when the folder cannot be read", async () => {
      const store = await f.make({ own: true });
      const other = openStore(store.database);
      try {
        const a = createSkillSync({
          store,
          log: silentLogger,
          now: Date.now,
          dir: skillsDir({ "a.yaml": skillYaml("restart-a", "CrashA", true) }),
        });
        const bDir = skillsDir({ "b.yaml": skillYaml("restart-b", "CrashB", false) });
        const b = createSkillSync({ store: other, log: silentLogger, now: Date.now, dir: bDir });

        expect((await b.publish({ actor: "test:b", channel: "system" })).published).toBe(true);
        const first = await a.publish({ actor: "test:a", channel: "system" });
        expect(first.published).toBe(true);
        // B follows A's set: same skills, same version.
        expect(await b.refresh()).toBe(true);
        expect(b.skills().map((s) => s.name)).toEqual(["restart-a"]);
        expect(b.version()).toBe(a.version());
        expect(await b.refresh()).toBe(false);
        // Publishing the same set again writes nothing.
        expect((await a.publish({ actor: "test:a", channel: "system" })).published).toBe(false);
        const published = await store.db
          .selectFrom("events")
          .select(["actor"])
          .where("type", "=", "skills.published")
          .orderBy("seq")
          .execute();
        expect(published.map((e) => e.actor)).toEqual(["test:b", "test:a"]);

        // A file that cannot be read is one problem; the rest of B's folder still publishes.
        symlinkSync(join(bDir, "missing-target.yaml"), join(bDir, "dangling.yaml"));
        writeFileSync(join(bDir, "c.yaml"), skillYaml("restart-c", "CrashC", false));
        const second = await b.publish({ actor: "test:b", channel: "system" });
        expect(second.skills.map((s) => s.name)).toEqual(["restart-b", "restart-c"]);
        expect(second.problems).toEqual([
          expect.objectContaining({
            file: expect.stringContaining("dangling.yaml"),
            message: "cannot be read (ENOENT)",
          }),
        ]);
        await a.refresh();
        expect(a.skills().map((s) => s.name)).toEqual(["restart-b", "restart-c"]);

        // A folder that is gone publishes nothing: every replica keeps its skills.
        rmSync(bDir, { recursive: true, force: true });
        const gone = await b.publish({ actor: "test:b", channel: "system" });
        expect(gone.published).toBe(false);
        expect(gone.problems[0]!.message).toBe("skills folder not found");
        expect(b.skills().map((s) => s.name)).toEqual(["restart-b", "restart-c"]);
        expect(await a.refresh()).toBe(false);
        expect(a.skills().map((s) => s.name)).toEqual(["restart-b", "restart-c"]);
      } finally {
        await other.close();
        await store.close();
      }
    });
  });
}

async function post(port: number, body: unknown, token: string) {
  const res = await fetch(`http://127.0.0.1:${port}/webhooks/alertmanager`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { incidents: string[] } };
}

function crash(alertname: string, fingerprint: string, ns: string) {
  return {
    version: "4",
    groupKey: `{}:{alertname="${alertname}"}`,
    truncatedAlerts: 0,
    status: "firing",
    receiver: "pitcrew",
    groupLabels: { alertname },
    commonLabels: { alertname },
    commonAnnotations: {},
    externalURL: "http://alertmanager:9093",
    alerts: [
      {
        status: "firing",
        labels: { alertname, namespace: ns, deployment: "checkout", pod: `checkout-${fingerprint.slice(0, 5)}` },
        annotations: { summary: "crash looping" },
        startsAt: new Date().toISOString(),
        endsAt: "0001-01-01T00:00:00Z",
        generatorURL: "http://prometheus:9090/graph",
        fingerprint,
      },
    ],
  };
}

describe.skipIf(!natsUp || !mysqlUp)("two control planes", () => {
  it("compute the same incident for one workload after a reload on one of them, and survive an unreadable skill file on SIGHUP", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    const db = await privateMysqlUrl();
    const token = `tok-${randomBytes(12).toString("hex")}`;
    const grouped = skillsDir({ "restart.yaml": skillYaml("restart-grouped", "CrashLoop", true) });
    const ungrouped = skillsDir({ "restart.yaml": skillYaml("restart-single", "CrashLoop", false) });
    const [portA, portB] = [await freePort(), await freePort()];
    const env = (port: number, dir: string) => ({
      PORT: String(port),
      DATABASE_URL: db.url,
      NATS_URL,
      NATS_PREFIX: prefix,
      DATA_DIR: tempDir(),
      SKILLS_DIR: dir,
      ALERTMANAGER_TOKEN: token,
      SKILLS_SYNC_INTERVAL: "1h",
      RUNNER_POOL: "nobody",
    });
    const ready = (port: number) =>
      waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 30_000, 200);
    const a = spawnPitcrew(["serve"], env(portA, grouped));
    let b: ReturnType<typeof spawnPitcrew> | undefined;
    try {
      await ready(portA);
      // B starts last with another folder: its set is the one in use.
      b = spawnPitcrew(["serve"], env(portB, ungrouped));
      await ready(portB);
      const store = openStore({ dialect: "mysql", url: db.url, poolSize: 2 });
      try {
        const publishedBy = async () =>
          (
            await store.db
              .selectFrom("events")
              .select(["actor", "data"])
              .where("type", "=", "skills.published")
              .orderBy("seq", "desc")
              .limit(1)
              .executeTakeFirst()
          )?.data ?? "";
        await waitFor(async () => (await publishedBy()).includes("restart-single"), 10_000, 100);

        // A reload on A (SIGHUP) publishes its folder; B uses it for its very next payload.
        a.child.kill("SIGHUP");
        await waitFor(async () => (await publishedBy()).includes("restart-grouped"), 10_000, 100);
        const ns = `payments-${prefix}`;
        const one = await post(portA, crash("CrashLoop", randomBytes(8).toString("hex"), ns), token);
        const two = await post(portB, crash("CrashLoop", randomBytes(8).toString("hex"), ns), token);
        expect(one.status).toBe(200);
        expect(two.status).toBe(200);
        expect(two.body.incidents).toEqual(one.body.incidents);
        const incidents = await store.db
          .selectFrom("incidents")
          .select(["id", "dedupe_key"])
          .where("namespace", "=", ns)
          .execute();
        expect(incidents).toEqual([{ id: one.body.incidents[0], dedupe_key: `d:restart-grouped:${ns}/checkout` }]);

        // An unreadable file on SIGHUP is a reported problem, not a crash; the good skill stays.
        mkdirSync(join(grouped, "sub.yaml"));
        symlinkSync(join(grouped, "nowhere.yaml"), join(grouped, "dangling.yaml"));
        writeFileSync(join(grouped, "extra.yaml"), skillYaml("restart-extra", "OtherCrash", false));
        a.child.kill("SIGHUP");
        await waitFor(async () => (await publishedBy()).includes("restart-extra"), 10_000, 100);
        expect(await publishedBy()).toContain("dangling.yaml:0: cannot be read");
        expect((await fetch(`http://127.0.0.1:${portA}/healthz`)).status).toBe(200);
        expect(a.child.exitCode).toBeNull();
      } finally {
        await store.close();
      }
      a.child.kill("SIGTERM");
      b.child.kill("SIGTERM");
      expect((await a.exited).code).toBe(0);
      expect((await b.exited).code).toBe(0);
    } finally {
      a.child.kill("SIGKILL");
      b?.child.kill("SIGKILL");
      await deleteStreams({
        tasksStream: `${prefix.toUpperCase()}_TASKS`,
        eventsStream: `${prefix.toUpperCase()}_EVENTS`,
      });
      await db.drop();
    }
  });
});
