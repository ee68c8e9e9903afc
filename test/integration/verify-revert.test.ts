import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMetrics } from "../../src/shared/metrics.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { closeAsResolved } from "../../src/incidents/service.ts";
import { createVerifier } from "../../src/incidents/verifier.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { fixHarness, scaleSkill, type FixHarness } from "../helpers/fixes.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// After the merge the incident is verifying: its alert resolving names the fix and how long after
// the merge it resolved, and records the time to resolve (on the incident, and once in the
// histogram across replicas); the window passing escalates it, and with `verify.on_failure: revert`
// Pitcrew also opens a revert of its own change that needs approval. A real bare repository, the
// real skill executor (revert included), private databases (the histogram scans every resolve).

const factories = await storeFactories();
const AM = { actor: "alertmanager", channel: "alertmanager" };
const alice = { subject: "alice", actor: "mcp:alice", channel: "mcp" };
const plain = scaleSkill({ verify: { alert_resolves_within: "10m" } });
const reverting = scaleSkill({
  name: "scale-or-revert",
  verify: { alert_resolves_within: "10m", on_failure: "revert" },
});

for (const f of factories) {
  describe.skipIf(!f.available)(`verification on ${f.name}`, () => {
    let store: TestStore;
    let h: FixHarness;
    let verifier: ReturnType<typeof createVerifier>;
    const metrics = createMetrics();
    const histogram = async () => {
      const values = (await metrics.timeToResolve.get()).values;
      const of = (name: string) =>
        values.find((v) => v.metricName === name && Object.keys(v.labels).length === 0)?.value ?? 0;
      return {
        count: of("pitcrew_incident_time_to_resolve_seconds_count"),
        sum: of("pitcrew_incident_time_to_resolve_seconds_sum"),
      };
    };

    beforeAll(async () => {
      store = await f.make({ own: true });
      h = await fixHarness(store, [plain, reverting]);
      verifier = createVerifier({
        store,
        log: silentLogger,
        now: () => h.clock.now,
        skills: () => [plain, reverting],
        fixPool: "default",
        observeResolved: (s) => metrics.timeToResolve.observe(s),
      });
    });
    afterAll(async () => {
      await h?.close();
      await store?.close();
    });

    /** A fix of `skill` merged on alice's approval; the incident verifying. */
    async function merged(skill = plain) {
      const fix = await h.fixing(skill);
      const run = await h.runTask(fix.taskId);
      expect(run.ok, JSON.stringify(run)).toBe(true);
      const approval = await h.pending(fix.id);
      h.clock.now += 60_000;
      const r = await h.approvals.approve({ approvalId: approval.id }, alice, "scale it");
      expect(r.incident.state).toBe("verifying");
      return { ...fix, approval, sha: r.merged!.sha };
    }

    const resolveAlert = (id: string) =>
      store.db
        .transaction()
        .execute(async (trx) =>
          closeAsResolved(
            trx,
            store.dialect,
            (await getIncident(trx, id))!,
            "alert.resolved",
            { ...AM, reason: "alert resolved by itself" },
            h.clock.now,
          ),
        );

    it("names the fix and how long after its merge the alert resolved, records the time to resolve, and counts each resolve once", async () => {
      await verifier.tick(); // resolves of earlier tests counted first
      const before = await histogram();
      const opened = h.clock.now;
      const p = await merged();
      h.clock.now += 192_000;
      await resolveAlert(p.id);
      const inc = await h.incident(p.id);
      expect(inc).toMatchObject({ state: "resolved", time_to_resolve_ms: 252_000, ttr_observed_at: null });
      expect(inc.time_to_resolve_ms).toBe(h.clock.now - opened);
      const resolved = (await h.eventsOf(p.id, "incident.resolved"))[0]!;
      expect(resolved.reason).toBe(
        `alert resolved 3m12s after pull request #${p.approval.pr_number} (scale-app, merged ${p.sha.slice(0, 7)}), approved by alice via mcp`,
      );
      expect(JSON.parse(resolved.data)).toMatchObject({
        timeToResolveMs: 252_000,
        fix: { pr: p.approval.pr_number, sha: p.sha, approvedBy: "alice via mcp", afterMergeMs: 192_000 },
      });

      await verifier.tick();
      expect(await histogram()).toEqual({ count: before.count + 1, sum: before.sum + 252 });
      expect((await h.incident(p.id)).ttr_observed_at).toBe(h.clock.now);
      // Again, and on another replica: already counted.
      await verifier.tick();
      const other = createMetrics();
      const replica = createVerifier({
        store,
        log: silentLogger,
        now: () => h.clock.now,
        skills: () => [plain],
        observeResolved: (s) => other.timeToResolve.observe(s),
      });
      expect(await replica.observeResolved()).toBe(0);
      expect(await histogram()).toEqual({ count: before.count + 1, sum: before.sum + 252 });
    });

    it("an alert that resolves while the fix awaits approval cancels the approval saying so, and a person's resolve records the time to resolve too", async () => {
      const fix = await h.fixing(plain);
      await h.runTask(fix.taskId);
      const pending = await h.pending(fix.id);
      h.clock.now += 30_000;
      await resolveAlert(fix.id);
      expect((await h.approvalsOf(fix.id))[0]).toMatchObject({
        id: pending.id,
        state: "cancelled",
        reason: "no action taken: the alert resolved",
      });
      expect(JSON.parse((await h.eventsOf(fix.id, "approval.cancelled"))[0]!.data)).toEqual({
        approvals: 1,
        approvalIds: [pending.id],
        cause: "alert_resolved",
      });
      expect((await h.incident(fix.id)).time_to_resolve_ms).toBe(30_000);

      const other = await h.fixing(plain);
      await h.runTask(other.taskId);
      h.clock.now += 5_000;
      const rita = await h.mcp("rita", ["write"]);
      const r = await rita("resolve_incident", { incident_id: other.id, reason: "fixed by hand" });
      expect(r.isError, r.text).toBe(false);
      expect((await h.approvalsOf(other.id))[0]).toMatchObject({
        state: "cancelled",
        reason: "no action taken: resolved by mcp:rita: fixed by hand",
      });
      expect(JSON.parse((await h.eventsOf(other.id, "approval.cancelled"))[0]!.data)).toMatchObject({
        cause: "resolved_by_hand",
      });
      expect((await h.incident(other.id)).time_to_resolve_ms).toBe(5_000);
    });

    it("escalates a fix that did not resolve the alert in its window and leaves it in place when the skill does not ask for a revert", async () => {
      const p = await merged(plain);
      h.clock.now += 9 * 60_000;
      await verifier.tick();
      expect((await h.incident(p.id)).state).toBe("verifying");
      h.clock.now += 2 * 60_000;
      await verifier.tick();
      const inc = await h.incident(p.id);
      expect(inc.state).toBe("escalated");
      expect((await h.events(p.id)).at(-1)).toMatchObject({
        type: "incident.escalated",
        reason: "the alert still fires 10m after the fix",
      });
      expect(await h.tasksOf(p.id, "skill")).toHaveLength(1);
      expect(h.show("main", p.file)).toContain("replicas: 3");
    });

    it("with verify.on_failure: revert, escalates and opens a pull request reverting Pitcrew's change, which merges only on approval", async () => {
      const p = await merged(reverting);
      expect(h.show("main", p.file)).toContain("replicas: 3");
      h.clock.now += 11 * 60_000;
      expect(await verifier.tick()).toBeGreaterThanOrEqual(1);
      expect((await h.incident(p.id)).state).toBe("escalated");
      const escalated = (await h.eventsOf(p.id, "incident.escalated"))[0]!;
      expect(escalated.reason).toBe(
        `the alert still fires 10m after the fix; reverting pull request #${p.approval.pr_number} (the revert needs approval)`,
      );
      const [, revertTask] = await h.tasksOf(p.id, "skill");
      expect(JSON.parse(revertTask!.payload)).toMatchObject({
        incidentId: p.id,
        skill: "revert",
        approval: "before_merge",
        risk: "medium",
        action: { revert: { sha: p.sha, number: p.approval.pr_number } },
      });
      expect((await h.eventsOf(p.id, "revert.queued"))[0]).toMatchObject({
        task_id: revertTask!.id,
        actor: "pitcrew:verifier",
      });
      // A second tick queues nothing more.
      await verifier.tick();
      expect(await h.tasksOf(p.id, "skill")).toHaveLength(2);

      const run = await h.runTask(revertTask!.id);
      expect(run.ok, JSON.stringify(run)).toBe(true);
      const branch = `pitcrew/${p.id.toLowerCase()}-revert`;
      expect(h.show(branch, p.file)).toContain("replicas: 2");
      expect(h.git("log", "-1", "--format=%B", branch)).toContain(`This reverts commit ${p.sha}.`);
      expect(h.git("log", "-1", "--format=%(trailers:only,unfold)", branch).trim()).toBe(`Pitcrew-Incident: ${p.id}`);
      const revert = await h.pending(p.id);
      expect(revert).toMatchObject({ pr_branch: branch, task_id: revertTask!.id, risk: "medium" });
      expect(JSON.parse(revert.action)).toMatchObject({ skill: "revert" });
      expect(JSON.parse(revert.diff_summary!)).toEqual({
        files: [{ path: p.file, added: 1, removed: 1 }],
        added: 1,
        removed: 1,
      });
      expect(revert.diff_excerpt!.split("\n")).toEqual(expect.arrayContaining(["-  replicas: 3", "+  replicas: 2"]));
      expect((await h.incident(p.id)).state).toBe("proposed");
      expect(h.show("main", p.file)).toContain("replicas: 3");

      const r = await h.approvals.approve({ approvalId: revert.id }, alice, "take it back");
      expect(r.incident.state).toBe("verifying");
      expect(h.show("main", p.file)).toContain("replicas: 2");
      expect((await h.states(p.id)).slice(-5)).toEqual(["verifying", "escalated", "proposed", "approved", "verifying"]);
      // A revert that does not resolve the alert either is escalated, not reverted again.
      h.clock.now += 11 * 60_000;
      await verifier.tick();
      expect((await h.incident(p.id)).state).toBe("escalated");
      expect(await h.tasksOf(p.id, "skill")).toHaveLength(2);
    });

    it("a revert that conflicts with what followed is a timeline event; the incident stays with a person", async () => {
      const p = await merged(reverting);
      h.push("main", { [p.file]: `kind: Deployment\nmetadata:\n  name: ${p.app}\nspec:\n  replicas: 7\n` });
      h.clock.now += 11 * 60_000;
      await verifier.tick();
      const [, revertTask] = await h.tasksOf(p.id, "skill");
      const run = await h.runTask(revertTask!.id);
      expect(run).toMatchObject({ ok: false, code: "gitops.revert_conflict" });
      const failed = (await h.eventsOf(p.id, "revert.failed"))[0]!;
      expect(failed.reason).toContain(`the revert of pull request #${p.approval.pr_number} failed`);
      expect(failed.reason).toContain("revert it by hand");
      expect((await h.incident(p.id)).state).toBe("escalated");
      expect((await h.approvalsOf(p.id)).filter((a) => a.state === "pending")).toEqual([]);
    });
  });
}
