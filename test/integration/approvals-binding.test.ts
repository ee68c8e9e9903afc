import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/shared/logger.ts";
import { createApprovalService } from "../../src/approvals/service.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { fixHarness, scaleSkill, type FixHarness } from "../helpers/fixes.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// An approval is bound to the exact change: the runner's diff summary and excerpt are stored on it
// and listed by list_approvals; a pull request that moved since the request refuses the decision,
// supersedes the approval and requests a new one for the new head; decisions through MCP record
// the person (a named token, a JWT subject), the channel and the reason, and the merge commit names
// them. Real bare repository, the real skill executor and ingester, both stores.

const factories = await storeFactories();
const alice = { subject: "alice", actor: "mcp:alice", channel: "mcp" };
const skill = scaleSkill();

for (const f of factories) {
  describe.skipIf(!f.available)(`approvals bound to the change on ${f.name}`, () => {
    let store: TestStore;
    let h: FixHarness;

    beforeAll(async () => {
      store = await f.make();
      h = await fixHarness(store, [skill]);
    });
    afterAll(async () => {
      await h?.close();
      await store?.close();
    });

    /** An incident whose fix opened its pull request and waits for a person. */
    async function proposed() {
      const fix = await h.fixing(skill);
      const run = await h.runTask(fix.taskId);
      expect(run.ok, JSON.stringify(run)).toBe(true);
      const approval = await h.pending(fix.id);
      return { ...fix, approval, result: (run as { result: any }).result };
    }

    it("stores the runner's diff on the approval, lists it with list_approvals to an approve-only token, and records a named token's decision", async () => {
      const p = await proposed();
      const summary = { files: [{ path: p.file, added: 1, removed: 1 }], added: 1, removed: 1 };
      expect(p.result.diffSummary).toEqual(summary);
      expect(JSON.parse(p.approval.diff_summary!)).toEqual(summary);
      expect(p.approval.diff_excerpt).toContain(`+++ b/${p.file}`);
      expect(p.approval.diff_excerpt!.split("\n")).toEqual(
        expect.arrayContaining(["-  replicas: 2", "+  replicas: 3"]),
      );
      expect(JSON.parse((await h.eventsOf(p.id, "approval.requested"))[0]!.data)).toMatchObject({
        approvalId: p.approval.id,
        diff: summary,
      });

      const approver = await h.mcp("release-bot", ["approve"]);
      const listed = await approver("list_approvals", { incident_id: p.id });
      expect(listed.isError, listed.text).toBe(false);
      expect(listed.data.approvals).toEqual([
        expect.objectContaining({
          id: p.approval.id,
          incident_id: p.id,
          state: "pending",
          risk: "medium",
          kind: "before_merge",
          pr: {
            number: p.approval.pr_number,
            url: expect.stringContaining(`#pull/${p.approval.pr_number}`),
            branch: `pitcrew/${p.id.toLowerCase()}-scale-app`,
          },
          head_sha: p.result.pr.sha,
          diff_summary: summary,
          diff_excerpt: p.approval.diff_excerpt,
          requested_at: new Date(h.clock.now).toISOString(),
          expires_at: new Date(h.clock.now + 24 * 3_600_000).toISOString(),
        }),
      ]);
      // `approve` grants `read`: the approver can look around, but not write.
      expect((await approver("get_incident", { incident_id: p.id })).isError).toBe(false);
      expect((await approver("list_incidents", { state: "proposed" })).isError).toBe(false);
      await expect(approver("submit_task", { kind: "noop", payload: {} })).rejects.toThrow(/needs the 'write' scope/);

      const r = await approver("approve_action", { approval_id: p.approval.id, reason: "diff is the one-line bump" });
      expect(r.isError, r.text).toBe(false);
      expect(r.data.merged).toMatchObject({ number: p.approval.pr_number });
      const decided = (await h.approvalsOf(p.id))[0]!;
      expect(decided).toMatchObject({
        state: "approved",
        decided_by: "release-bot",
        channel: "mcp",
        reason: "diff is the one-line bump",
      });
      expect((await h.eventsOf(p.id, "approval.approved"))[0]).toMatchObject({
        actor: "mcp:release-bot",
        channel: "mcp",
        reason: "diff is the one-line bump",
      });
      const sha = r.data.merged.sha as string;
      expect(h.git("log", "-1", "--format=%B", sha)).toBe(
        [
          `Merge pull request #${p.approval.pr_number} from pitcrew/${p.id.toLowerCase()}-scale-app`,
          "",
          `[pitcrew] scale-app: ${p.app} is slow`,
          "",
          `Incident ${p.id}: ${p.app} is slow`,
          "Approved by release-bot via mcp: diff is the one-line bump",
          "",
          "Approved-by: release-bot",
          "Approved-via: mcp",
          `Pitcrew-Incident: ${p.id}`,
          "",
          "",
        ].join("\n"),
      );
      // Pending only, by default: the decided approval is no longer listed.
      expect((await approver("list_approvals", { incident_id: p.id })).data.approvals).toEqual([]);
    });

    it("refuses a decision for a pull request that moved since the request, supersedes the approval and requests one for the new head", async () => {
      const p = await proposed();
      const branch = p.approval.pr_branch!;
      const mainBefore = h.git("rev-parse", "main").trim();
      const moved = h.push(branch, { "apps/extra.yaml": "sneaky: true\n" });

      const carol = await h.mcp("oidc|carol", ["approve"], "jwt");
      const refused = await carol("approve_action", { incident_id: p.id, reason: "lgtm" });
      expect(refused.isError).toBe(true);
      expect(refused.text).toContain(
        `pull request #${p.approval.pr_number} changed since approval ${p.approval.id} was requested: its head moved from ${p.approval.head_sha!.slice(0, 7)} to ${moved.slice(0, 7)}`,
      );
      expect(refused.text).toContain("(approval.head_moved)");

      const [old, next] = await h.approvalsOf(p.id);
      expect(old).toMatchObject({ id: p.approval.id, state: "superseded", merged_at: null });
      expect(old!.reason).toContain(`superseded by ${next!.id}`);
      expect(next).toMatchObject({
        state: "pending",
        pr_number: p.approval.pr_number,
        pr_branch: branch,
        head_sha: moved,
        task_id: p.taskId,
        risk: "medium",
      });
      const files = [
        { path: "apps/extra.yaml", added: 1, removed: 0 },
        { path: p.file, added: 1, removed: 1 },
      ].sort((x, y) => (x.path < y.path ? -1 : 1));
      expect(JSON.parse(next!.diff_summary!)).toEqual({ files, added: 2, removed: 1 });
      expect(next!.diff_excerpt).toContain("+sneaky: true");
      expect(JSON.parse((await h.eventsOf(p.id, "approval.superseded"))[0]!.data)).toMatchObject({
        approvalId: old!.id,
        newApprovalId: next!.id,
        from: p.approval.head_sha,
        to: moved,
      });
      const requested = await h.eventsOf(p.id, "approval.requested");
      expect(requested).toHaveLength(2);
      expect(JSON.parse(requested[1]!.data)).toMatchObject({
        approvalId: next!.id,
        supersedes: old!.id,
        pr: { number: p.approval.pr_number, sha: moved },
      });
      expect((await h.incident(p.id)).state).toBe("proposed");
      expect(await h.eventsOf(p.id, "approval.approved")).toEqual([]);
      expect(h.git("rev-parse", "main").trim()).toBe(mainBefore);

      // Every approval of the incident, a page at a time.
      const all1 = await carol("list_approvals", { incident_id: p.id, state: "all", limit: 1 });
      expect(all1.data.approvals.map((a: { id: string }) => a.id)).toEqual([next!.id]);
      const all2 = await carol("list_approvals", {
        incident_id: p.id,
        state: "all",
        limit: 1,
        cursor: all1.data.next_cursor,
      });
      expect(all2.data.approvals.map((a: { id: string; state: string }) => [a.id, a.state])).toEqual([
        [old!.id, "superseded"],
      ]);
      expect(
        (await carol("list_approvals", { incident_id: p.id, state: "all", limit: 1, cursor: all2.data.next_cursor }))
          .data,
      ).toEqual({ approvals: [], next_cursor: null });

      // The old approval's button is stale; the new one merges the head it was requested for.
      expect(await carol("approve_action", { approval_id: old!.id })).toMatchObject({
        isError: true,
        text: expect.stringContaining("already superseded"),
      });
      const ok = await carol("approve_action", { approval_id: next!.id, reason: "checked the extra file" });
      expect(ok.isError, ok.text).toBe(false);
      expect(h.show("main", "apps/extra.yaml")).toBe("sneaky: true\n");
      expect((await h.approvalsOf(p.id))[1]).toMatchObject({
        state: "approved",
        decided_by: "oidc|carol",
        channel: "mcp",
        reason: "checked the extra file",
        merge_sha: ok.data.merged.sha,
      });
      expect((await h.eventsOf(p.id, "approval.approved"))[0]).toMatchObject({
        actor: "mcp:oidc|carol",
        channel: "mcp",
        reason: "checked the extra file",
      });
      expect(h.git("log", "-1", "--format=%(trailers:only,unfold)", ok.data.merged.sha).trim().split("\n")).toEqual([
        "Approved-by: oidc|carol",
        "Approved-via: mcp",
        `Pitcrew-Incident: ${p.id}`,
      ]);
      expect((await h.incident(p.id)).state).toBe("verifying");
    });

    it("a push between the claim and the merge: the pinned merge refuses, the claim is released and a new approval is requested for the new head", async () => {
      const p = await proposed();
      const claimed = await h.approvals.approve({ approvalId: p.approval.id }, alice, "ship it", { mergeNow: false });
      expect(claimed.incident.state).toBe("approved");
      const moved = h.push(p.approval.pr_branch!, { "apps/late.yaml": "late: true\n" });
      const [out] = await h.runJobs(p.id, "approval.merge");
      expect(out).toMatchObject({ status: "failed", code: "gitops.head_moved" });
      const [old, next] = await h.approvalsOf(p.id);
      expect(old).toMatchObject({ state: "superseded" });
      expect(next).toMatchObject({ state: "pending", head_sha: moved });
      expect(JSON.parse(next!.diff_summary!).files.map((x: { path: string }) => x.path)).toEqual(
        ["apps/late.yaml", p.file].sort(),
      );
      expect((await h.incident(p.id)).state).toBe("proposed");
      expect((await h.events(p.id)).map((e) => e.type).filter((t) => t.startsWith("approval."))).toEqual([
        "approval.requested",
        "approval.approved",
        "approval.merge_failed",
        "approval.superseded",
        "approval.requested",
      ]);
    });

    it("a host that cannot say where the head is does not block the decision: the merge stays pinned to the approved head", async () => {
      const p = await proposed();
      const down: GitHost = { ...h.host, getPullRequest: async () => Promise.reject(new Error("connection refused")) };
      const svc = createApprovalService({
        store,
        log: silentLogger,
        now: () => h.clock.now,
        skills: () => [skill],
        gitHost: down,
        fixPool: "default",
        deleteMergedBranches: false,
        sweep: { stuckAfterMs: 600_000, maxRetries: 2 },
      });
      const r = await svc.approve({ approvalId: p.approval.id }, alice, null);
      expect(r.merged).toMatchObject({ number: p.approval.pr_number });
      expect(h.show("main", p.file)).toContain("replicas: 3");
    });
  });
}
