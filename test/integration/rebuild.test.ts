import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixHarness, scaleSkill, type FixHarness } from "../helpers/fixes.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// Rebuild: a merge that failed with a conflict (or a pull request that moved) is answered by
// re-running the fix on the current base as a new pull request and a new approval; the old pull
// request is closed and its branch deleted. A real bare repository, the real skill executor, MCP's
// rebuild_fix, both stores.

const factories = await storeFactories();
const skill = scaleSkill();

for (const f of factories) {
  describe.skipIf(!f.available)(`rebuild on ${f.name}`, () => {
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

    async function proposed() {
      const fix = await h.fixing(skill);
      const run = await h.runTask(fix.taskId);
      expect(run.ok, JSON.stringify(run)).toBe(true);
      return { ...fix, approval: await h.pending(fix.id) };
    }

    it("after a merge conflict, rebuilds the fix on the new base as a new pull request that needs a new approval, and merges it", async () => {
      const alice = await h.mcp("alice", ["approve"]);
      const p = await proposed();
      const oldBranch = p.approval.pr_branch!;
      // Someone changes the same line on main after the pull request was opened.
      h.push("main", { [p.file]: `kind: Deployment\nmetadata:\n  name: ${p.app}\nspec:\n  replicas: 5\n` });

      const conflicted = await alice("approve_action", { approval_id: p.approval.id });
      expect(conflicted).toMatchObject({ isError: true, text: expect.stringContaining("(gitops.merge_conflict)") });
      expect(await h.pending(p.id)).toMatchObject({ id: p.approval.id });
      expect(JSON.parse((await h.eventsOf(p.id, "approval.merge_failed"))[0]!.data)).toMatchObject({
        approvalId: p.approval.id,
        code: "gitops.merge_conflict",
      });

      const r = await alice("rebuild_fix", { approval_id: p.approval.id, reason: "main moved" });
      expect(r.isError, r.text).toBe(false);
      expect(r.data).toMatchObject({
        rebuild: 1,
        closing_pull_requests: 1,
        incident: { state: "fixing" },
        approval: { id: p.approval.id, state: "cancelled", decided_by: "alice", channel: "mcp" },
      });
      // The old pull request is closed and its branch deleted, with the reason.
      expect(h.pullRecord(p.approval.pr_number!)).toMatchObject({
        state: "closed",
        comments: [
          {
            body: expect.stringContaining(
              "rebuilt on the current base as a new pull request (requested by alice via mcp: main moved)",
            ),
          },
        ],
      });
      expect(h.branchExists(oldBranch)).toBe(false);
      expect(JSON.parse((await h.eventsOf(p.id, "approval.cancelled"))[0]!.data)).toEqual({
        approvals: 1,
        approvalIds: [p.approval.id],
        cause: "rebuild",
      });

      const [, task] = await h.tasksOf(p.id, "skill");
      expect(task!.id).toBe(r.data.task_id);
      expect(JSON.parse(task!.payload)).toMatchObject({
        incidentId: p.id,
        skill: "scale-app",
        approval: "before_merge",
        rebuild: 1,
      });
      const run = await h.runTask(task!.id);
      expect(run.ok, JSON.stringify(run)).toBe(true);
      const rebuilt = await h.pending(p.id);
      const newBranch = `${oldBranch}-rebuild-1`;
      expect(rebuilt).toMatchObject({
        pr_branch: newBranch,
        task_id: task!.id,
        head_sha: h.git("rev-parse", newBranch).trim(),
      });
      expect(rebuilt.pr_number).not.toBe(p.approval.pr_number);
      // On the new base: main is its parent, and the diff is 5 → 3.
      expect(h.git("rev-parse", `${newBranch}^`).trim()).toBe(h.git("rev-parse", "main").trim());
      expect(JSON.parse(rebuilt.diff_summary!)).toEqual({
        files: [{ path: p.file, added: 1, removed: 1 }],
        added: 1,
        removed: 1,
      });
      expect(rebuilt.diff_excerpt!.split("\n")).toEqual(expect.arrayContaining(["-  replicas: 5", "+  replicas: 3"]));

      const merged = await alice("approve_action", { approval_id: rebuilt.id, reason: "rebuilt cleanly" });
      expect(merged.isError, merged.text).toBe(false);
      expect(h.show("main", p.file)).toContain("replicas: 3");
      expect(h.pullRecord(rebuilt.pr_number!).state).toBe("merged");
      expect(h.git("log", "-1", "--format=%(trailers:only,unfold)", "main").trim().split("\n")).toEqual([
        "Approved-by: alice",
        "Approved-via: mcp",
        `Pitcrew-Incident: ${p.id}`,
      ]);
      expect(await h.states(p.id)).toEqual([
        "detected",
        "analyzing",
        "fixing",
        "proposed",
        "approved",
        "proposed",
        "fixing",
        "proposed",
        "approved",
        "verifying",
      ]);
      const fixing = (await h.events(p.id)).filter((e) => e.type === "incident.fixing").at(-1)!;
      expect(fixing).toMatchObject({ actor: "mcp:alice", channel: "mcp" });
      expect(fixing.reason).toContain(
        "rebuild 1 of scale-app on the current base, requested by alice via mcp: main moved",
      );
    });

    it("rebuilds a pull request that moved since its approval was requested, closing it at its new head", async () => {
      const p = await proposed();
      h.push(p.approval.pr_branch!, { "apps/hand-edit.yaml": "x: 1\n" });
      const bob = await h.mcp("bob", ["approve"]);
      expect(await bob("approve_action", { incident_id: p.id })).toMatchObject({
        isError: true,
        text: expect.stringContaining("(approval.head_moved)"),
      });
      const r = await bob("rebuild_fix", { incident_id: p.id });
      expect(r.isError, r.text).toBe(false);
      expect(r.data).toMatchObject({ rebuild: 1, closing_pull_requests: 1 });
      expect(h.pullRecord(p.approval.pr_number!).state).toBe("closed");
      expect((await h.approvalsOf(p.id)).map((a) => a.state)).toEqual(["superseded", "cancelled"]);
    });

    it("refuses to rebuild a pull request whose merge did not fail, and changes nothing", async () => {
      const p = await proposed();
      const bob = await h.mcp("bob", ["approve"]);
      expect(await bob("rebuild_fix", { approval_id: p.approval.id })).toMatchObject({
        isError: true,
        text: expect.stringContaining("(approval.rebuild_not_allowed)"),
      });
      expect(await h.pending(p.id)).toMatchObject({ id: p.approval.id });
      expect((await h.incident(p.id)).state).toBe("proposed");
      expect(await h.tasksOf(p.id, "skill")).toHaveLength(1);
      expect(h.pullRecord(p.approval.pr_number!).state).toBe("open");
      // And it needs the approve scope.
      const reader = await h.mcp("rita", ["read"]);
      await expect(reader("rebuild_fix", { approval_id: p.approval.id })).rejects.toThrow(/needs the 'approve' scope/);
    });
  });
}
