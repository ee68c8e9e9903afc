import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEventIngester } from "../../src/events/ingester.ts";
import { listEvents } from "../../src/events/repo.ts";
import { incidentFixHook } from "../../src/incidents/fix-outcome.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { fixture, newTag, postAlerts } from "../helpers/alerts.ts";
import { intakeApp, TOKEN, type IntakeHarness } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// MAX_PRS_PER_HOUR/DAY count pull requests opened (and fixes still under way, which may open
// one), not fix tasks that failed before they opened anything. Each dialect gets a database of its
// own: the limits count the whole database.

const factories = await storeFactories();

for (const f of factories) {
  describe.skipIf(!f.available)(`pull request limits on ${f.name}`, () => {
    let store: TestStore;
    let h: IntakeHarness;

    beforeAll(async () => {
      store = await f.make({ own: true });
      h = await intakeApp(store, { guardrails: { maxPrsPerHour: 1, maxPrsPerDay: 1 } });
    });
    afterAll(async () => {
      await h?.close();
      await store?.close();
    });

    const hook = () => incidentFixHook(store.dialect);
    const fixOf = async (id: string) =>
      (
        await store.db
          .selectFrom("tasks")
          .selectAll()
          .where("incident_id", "=", id)
          .where("kind", "in", ["skill", "agent"])
          .execute()
      )[0];

    async function analyzed(): Promise<{ id: string; outcome: string }> {
      const res = await postAlerts(h.app, fixture("crashloop-firing.json", newTag()), TOKEN);
      expect(res.statusCode, res.body).toBe(200);
      const id = res.json().incidents[0] as string;
      return { id, outcome: await h.analysis.analyze(id) };
    }

    /** What a runner reports when its fix opened pull request #n and finished. */
    async function openedPullRequest(taskId: string, n: number) {
      const ingester = createEventIngester({
        store,
        queue: h.queue,
        log: silentLogger,
        now: () => h.clock.now,
        onTerminal: hook(),
      });
      const base = { taskId, runnerId: "runner-1", attempt: 1, at: h.clock.now };
      const pr = { number: n, url: `https://git.example/pulls/${n}`, branch: `pitcrew/${taskId}` };
      await ingester.applyTaskEvent({
        ...base,
        id: `evt_${randomBytes(8).toString("hex")}`,
        type: "task.pr_opened",
        ...pr,
      });
      await ingester.applyTaskEvent({
        ...base,
        id: `evt_${randomBytes(8).toString("hex")}`,
        type: "task.succeeded",
        result: { changed: true, summary: "rolled back", pr: { ...pr, sha: "0".repeat(40) } },
      });
    }

    it("counts pull requests opened and fixes under way, not a fix task that failed before opening one", async () => {
      const a = await analyzed();
      expect(a.outcome).toBe("fixing");

      // One fix under way uses the hour's only pull request.
      const b = await analyzed();
      expect(b.outcome).toBe("escalated");
      expect((await listEvents(store.db, { incidentId: b.id, type: "guardrail.max_prs_per_hour" }))[0]!.reason).toBe(
        "1 pull requests opened or under way in the last hour (MAX_PRS_PER_HOUR 1)",
      );

      // It failed before opening anything (e.g. the clone failed): nothing was used up.
      const tasks = createTaskService({ store, log: silentLogger, now: () => h.clock.now, onTerminal: hook() });
      expect(
        await tasks.fail(
          (await fixOf(a.id))!.id,
          "git clone failed: repository not found",
          "runner:runner-1",
          "runner",
        ),
      ).toBe(true);
      expect((await getIncident(store.db, a.id))!.state).toBe("failed");
      const c = await analyzed();
      expect(c.outcome).toBe("fixing");

      // A pull request opened counts for the whole hour, whatever became of its task.
      await openedPullRequest((await fixOf(c.id))!.id, 7);
      expect((await fixOf(c.id))!.state).toBe("succeeded");
      const d = await analyzed();
      expect(d.outcome).toBe("escalated");
      expect((await listEvents(store.db, { incidentId: d.id, type: "guardrail.max_prs_per_hour" }))[0]!.reason).toMatch(
        /^1 pull requests opened/,
      );

      // An hour later the hour's budget is free, the day's is not; a day later both are.
      h.clock.advance(61 * 60_000);
      const e = await analyzed();
      expect(e.outcome).toBe("escalated");
      expect((await listEvents(store.db, { incidentId: e.id, type: "guardrail.max_prs_per_day" }))[0]!.reason).toBe(
        "1 pull requests opened or under way in the last day (MAX_PRS_PER_DAY 1)",
      );
      h.clock.advance(24 * 3_600_000);
      expect((await analyzed()).outcome).toBe("fixing");
    });
  });
}
