import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { listEvents } from "../../src/events/repo.ts";
import { createLocalGitHost } from "../../src/gitops/local.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { incidentFixHook } from "../../src/incidents/fix-outcome.ts";
import { getIncident, newIncidentRow } from "../../src/incidents/repo.ts";
import { applyTransition, closeAsResolved } from "../../src/incidents/service.ts";
import { INCIDENT_STATES } from "../../src/incidents/lifecycle.ts";
import { createApprovalService, expireDueApprovals } from "../../src/approvals/service.ts";
import { callTool } from "../../src/mcp/server.ts";
import type { McpDeps } from "../../src/mcp/tool.ts";
import { resolveIncident } from "../../src/mcp/tools/resolve-incident.ts";
import { AppError } from "../../src/shared/errors.ts";
import { newId } from "../../src/shared/ids.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { enqueueTask } from "../../src/tasks/service.ts";
import { gitSync, makeBareRepo } from "../helpers/git.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// The approvals domain against a real bare repository and both stores: a fix task's pull request
// reported through the real event ingester and its terminal hook, decisions, merges and the
// pr.close jobs run as the control-plane consumer runs them.

const factories = await storeFactories();
const uid = () => randomBytes(4).toString("hex");
const alice = { subject: "alice", actor: "mcp:alice", channel: "mcp" };
const SYSTEM = { actor: "alertmanager", channel: "alertmanager" };

for (const f of factories) {
  describe.skipIf(!f.available)(`approvals on ${f.name}`, () => {
    let store: TestStore;
    let dir: string;
    let bare: string;
    let host: GitHost;
    const clock = { now: Date.now() };
    const queue = createMemoryQueue({ log: silentLogger });
    let ingester: ReturnType<typeof createEventIngester>;

    const git = (...args: string[]) => gitSync(dir, "--git-dir", bare, ...args);
    const branchExists = (branch: string) => git("for-each-ref", `refs/heads/${branch}`).trim() !== "";
    const onMain = (file: string) => git("ls-tree", "--name-only", "main", file).trim() !== "";
    const pullRecord = (n: number) =>
      JSON.parse(git("cat-file", "blob", `refs/pitcrew/pulls/${n}`)) as {
        state: string;
        comments: Array<{ body: string }>;
      };
    const events = (id: string) => listEvents(store.db, { incidentId: id, limit: 1000 });
    const eventsOf = async (id: string, type: string) => (await events(id)).filter((e) => e.type === type);
    const states = async (id: string) =>
      (await events(id))
        .map((e) => e.type.replace(/^incident\./, ""))
        .filter((t) => (INCIDENT_STATES as readonly string[]).includes(t));
    const approvalOf = (id: string) =>
      store.db
        .selectFrom("approvals")
        .selectAll()
        .where("incident_id", "=", id)
        .orderBy("requested_at", "desc")
        .executeTakeFirstOrThrow();
    const jobsOf = (id: string, kind: string) =>
      store.db
        .selectFrom("tasks")
        .selectAll()
        .where("incident_id", "=", id)
        .where("kind", "=", kind)
        .orderBy("id")
        .execute();

    function service(gitHost: GitHost = host, sweep = { stuckAfterMs: 600_000, maxRetries: 2 }) {
      return createApprovalService({
        store,
        log: silentLogger,
        now: () => clock.now,
        skills: () => [],
        gitHost,
        fixPool: "default",
        deleteMergedBranches: true,
        sweep,
      });
    }

    /** Runs the queued control jobs of a kind for the incident, as the control-pool consumer would. */
    async function runJobs(svc: ReturnType<typeof service>, id: string, kind: string): Promise<unknown[]> {
      const out: unknown[] = [];
      for (const t of await jobsOf(id, kind)) {
        if (t.state !== "queued") continue;
        out.push(await svc.jobs[kind]!.run(JSON.parse(t.payload), { taskId: t.id, incidentId: id, attempt: 1 }));
        await store.db.updateTable("tasks").set({ state: "succeeded" }).where("id", "=", t.id).execute();
      }
      return out;
    }

    /** An incident whose fix task is running: the plan recorded, `fixing`. */
    async function fixing(
      plan: { skill: string; risk: string; approval: string },
      payload: Record<string, unknown> = {},
    ) {
      const now = clock.now;
      const key = uid();
      const row = newIncidentRow(
        {
          id: newId("inc", now),
          fingerprint: key,
          dedupe_key: null,
          open_key: key,
          title: `cart lags ${key}`,
          source: "test",
          severity: "warning",
          namespace: "shop",
          service: "cart",
          alertname: "KubeDeploymentReplicasMismatch",
          labels: {},
          annotations: {},
        },
        now,
      );
      return store.db.transaction().execute(async (trx) => {
        await trx
          .insertInto("incidents")
          .values({ ...row, plan: JSON.stringify({ ...plan, params: {}, rationale: "test" }) })
          .execute();
        const by = { actor: "pitcrew:analysis", channel: "engine" };
        let inc = await applyTransition(
          trx,
          store.dialect,
          { ...row, plan: JSON.stringify(plan) },
          "analysis.started",
          by,
          now,
        );
        inc = await applyTransition(trx, store.dialect, inc, "fix.started", by, now);
        const taskId = await enqueueTask(
          trx,
          store.dialect,
          {
            kind: "skill",
            pool: "default",
            payload: { incidentId: row.id, skill: plan.skill, approval: plan.approval, params: {}, ...payload },
            incidentId: row.id,
            createdBy: "test",
            channel: "test",
          },
          now,
        );
        return { id: row.id, taskId };
      });
    }

    /** The runner's work: a branch with a new file, its pull request, and task.succeeded with it. */
    async function proposed(plan: { skill: string; risk: string; approval: string }, file?: string) {
      const { id, taskId } = await fixing(plan);
      const branch = `pitcrew/${id.toLowerCase()}-${plan.skill}`;
      const work = join(dir, `work-${id}`);
      gitSync(dir, "clone", "--quiet", bare, work);
      gitSync(work, "checkout", "--quiet", "-b", branch);
      const path = file ?? `apps/${id}.yaml`;
      mkdirSync(join(work, "apps"), { recursive: true });
      writeFileSync(join(work, path), `replicas: 3 # ${id}\n`);
      gitSync(work, "add", ".");
      gitSync(work, "commit", "--quiet", "-m", `scale for ${id}`);
      gitSync(work, "push", "--quiet", "origin", `HEAD:refs/heads/${branch}`);
      const sha = gitSync(work, "rev-parse", "HEAD").trim();
      const pr = await host.createPullRequest({ branch, base: "main", title: `Scale cart (${id})`, body: "" });
      await ingester.applyTaskEvent({
        type: "task.pr_opened",
        id: newId("evt"),
        taskId,
        runnerId: "r1",
        attempt: 1,
        at: clock.now,
        url: pr.url,
        branch,
        number: pr.number,
      });
      await ingester.applyTaskEvent({
        type: "task.succeeded",
        id: newId("evt"),
        taskId,
        runnerId: "r1",
        attempt: 1,
        at: clock.now,
        result: { changed: true, summary: "scaled cart", pr: { number: pr.number, url: pr.url, branch, sha } },
      });
      return { id, taskId, number: pr.number, branch, sha, path };
    }

    const MERGE = { skill: "replicas-mismatch-scale", risk: "medium", approval: "before_merge" };
    const POLICY = { skill: "replicas-mismatch-scale", risk: "low", approval: "none" };

    beforeAll(async () => {
      store = await f.make({ own: true });
      dir = mkdtempSync(join(tmpdir(), "pitcrew-approvals-"));
      bare = makeBareRepo(dir, [{ message: "initial", files: { "apps/cart.yaml": "replicas: 2\n" } }]);
      host = createLocalGitHost({ repoPath: bare });
      ingester = createEventIngester({
        store,
        queue,
        log: silentLogger,
        now: () => clock.now,
        onTerminal: incidentFixHook(store.dialect, { autoApproveMaxRisk: "low" }),
      });
    });
    afterAll(async () => {
      await queue.close();
      await store?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("asks a person to approve the merge, storing the plan's risk and the proposed head", async () => {
      const p = await proposed(MERGE);
      expect(await approvalOf(p.id)).toMatchObject({
        state: "pending",
        risk: "medium",
        pr_number: p.number,
        pr_branch: p.branch,
        head_sha: p.sha,
        task_id: p.taskId,
      });
      expect((await getIncident(store.db, p.id))!.state).toBe("proposed");
      expect(await jobsOf(p.id, "approval.merge")).toHaveLength(0);
    });

    it("approves a policy fix at once and merges it through the same job: pr.merged with the sha, verifying, branch deleted", async () => {
      const svc = service();
      const p = await proposed(POLICY);
      const a = await approvalOf(p.id);
      expect(a).toMatchObject({
        state: "approved",
        decided_by: "policy",
        channel: "policy",
        risk: "low",
        merged_at: null,
      });
      expect(a.reason).toBe(
        "approved by policy: low-risk skill replicas-mismatch-scale is at or below AUTO_APPROVE_MAX_RISK (low)",
      );
      expect((await states(p.id)).slice(-3)).toEqual(["fixing", "proposed", "approved"]);
      const [job] = await jobsOf(p.id, "approval.merge");
      expect(JSON.parse(job!.payload)).toEqual({ approvalId: a.id, actor: "pitcrew:policy", channel: "policy" });

      expect(await runJobs(svc, p.id, "approval.merge")).toEqual([
        { status: "merged", number: p.number, sha: git("rev-parse", "main").trim() },
      ]);
      expect(onMain(p.path)).toBe(true);
      const [merged] = await eventsOf(p.id, "pr.merged");
      expect(merged).toMatchObject({ actor: "pitcrew:policy", channel: "policy" });
      expect(JSON.parse(merged!.data)).toMatchObject({
        sha: git("rev-parse", "main").trim(),
        approvedBy: "policy",
        pr: { number: p.number, branch: p.branch },
      });
      expect((await getIncident(store.db, p.id))!.state).toBe("verifying");
      expect(branchExists(p.branch)).toBe(true);
      await runJobs(svc, p.id, "pr.close");
      expect(branchExists(p.branch)).toBe(false);
      expect(await eventsOf(p.id, "pr.branch_deleted")).toHaveLength(1);
    });

    it("a merge approved before the fix ran is recorded as that person's decision", async () => {
      const { id } = await fixing({ skill: "restart", risk: "medium", approval: "before_run" });
      await store.db
        .insertInto("approvals")
        .values({
          id: `apr_${uid()}`,
          incident_id: id,
          task_id: null,
          state: "approved",
          risk: "medium",
          action: "{}",
          requested_at: clock.now,
          expires_at: clock.now + 1,
          decided_at: clock.now,
          decided_by: "bob",
          channel: "mcp",
          reason: null,
          chat_id: null,
          message_id: null,
          pr_number: null,
          pr_branch: null,
          head_sha: null,
          merge_queued_at: null,
          merge_started_at: null,
          merge_sha: null,
          merged_at: null,
        })
        .execute();
      const taskId = (await jobsOf(id, "skill"))[0]!.id;
      await ingester.applyTaskEvent({
        type: "task.succeeded",
        id: newId("evt"),
        taskId,
        runnerId: "r1",
        attempt: 1,
        at: clock.now,
        result: { changed: true, pr: { number: 999, url: "x", branch: "b", sha: "0".repeat(40) } },
      });
      const a = await store.db
        .selectFrom("approvals")
        .selectAll()
        .where("incident_id", "=", id)
        .where("pr_number", "=", 999)
        .executeTakeFirstOrThrow();
      expect(a).toMatchObject({ state: "approved", decided_by: "bob", channel: "mcp" });
      expect(JSON.parse((await jobsOf(id, "approval.merge"))[0]!.payload)).toMatchObject({
        actor: "mcp:bob",
        channel: "mcp",
      });
    });

    it("claims first: a resolve between the claim and the merge wins, nothing is merged and the pull request is closed", async () => {
      const svc = service();
      const p = await proposed(MERGE);
      const claimed = await svc.approve({ incidentId: p.id }, alice, "go", { mergeNow: false });
      expect(claimed).toMatchObject({
        merged: null,
        approval: { state: "approved", decided_by: "alice" },
        incident: { state: "approved" },
      });
      expect(await jobsOf(p.id, "approval.merge")).toHaveLength(1);

      const mainBefore = git("rev-parse", "main").trim();
      await store.db
        .transaction()
        .execute(async (trx) =>
          closeAsResolved(
            trx,
            store.dialect,
            (await getIncident(trx, p.id))!,
            "alert.resolved",
            { ...SYSTEM, reason: "alert resolved by itself" },
            clock.now,
          ),
        );
      expect(await approvalOf(p.id)).toMatchObject({ state: "cancelled" });
      expect((await eventsOf(p.id, "incident.resolved"))[0]!.reason).toBe("alert resolved by itself");

      expect(await runJobs(svc, p.id, "approval.merge")).toEqual([expect.objectContaining({ status: "skipped" })]);
      expect(git("rev-parse", "main").trim()).toBe(mainBefore);
      expect(await eventsOf(p.id, "pr.merged")).toHaveLength(0);
      await runJobs(svc, p.id, "pr.close");
      expect(pullRecord(p.number)).toMatchObject({
        state: "closed",
        comments: [{ body: `Closed by Pitcrew: the alert resolved without this change (incident ${p.id}).` }],
      });
      expect(branchExists(p.branch)).toBe(false);
    });

    it("once the merge call went out, a resolve no longer revokes it: the merge completes and the resolve says so", async () => {
      let release!: () => void;
      let entered!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const inside = new Promise<void>((r) => (entered = r));
      const slow: GitHost = {
        ...host,
        mergePullRequest: async (n, o) => (entered(), await gate, host.mergePullRequest(n, o)),
      };
      const svc = service(slow);
      const p = await proposed(MERGE);
      await svc.approve({ incidentId: p.id }, alice, null, { mergeNow: false });
      const merging = svc.merge((await approvalOf(p.id)).id, alice);
      await inside;
      const r = await store.db
        .transaction()
        .execute(async (trx) =>
          closeAsResolved(
            trx,
            store.dialect,
            (await getIncident(trx, p.id))!,
            "alert.resolved",
            { ...SYSTEM, reason: "alert resolved by itself" },
            clock.now,
          ),
        );
      expect(r).toMatchObject({ cancelled: 0, closing: [] });
      expect((await eventsOf(p.id, "incident.resolved"))[0]!.reason).toBe(
        `alert resolved while the fix replicas-mismatch-scale in pull request #${p.number}, approved by alice via mcp, was being merged`,
      );
      release();
      expect(await merging).toMatchObject({ status: "merged" });
      expect(onMain(p.path)).toBe(true);
      expect(await approvalOf(p.id)).toMatchObject({ state: "approved", merged_at: expect.anything() });
      expect(await eventsOf(p.id, "pr.merged")).toHaveLength(1);
      expect((await getIncident(store.db, p.id))!.state).toBe("resolved");
    });

    it("a merge whose process died mid-call is finished by its retry, even when the incident resolved meanwhile", async () => {
      // The first attempt reaches the host, which merges, but the process dies before recording it.
      const dying: GitHost = {
        ...host,
        mergePullRequest: async (n, o) => (
          await host.mergePullRequest(n, o), Promise.reject(new Error("process killed"))
        ),
      };
      const p = await proposed(MERGE);
      const svc = service(dying);
      await svc.approve({ incidentId: p.id }, alice, null, { mergeNow: false });
      const id = (await approvalOf(p.id)).id;
      await expect(svc.merge(id, alice)).rejects.toThrow("process killed");
      expect(onMain(p.path)).toBe(true);
      await store.db
        .transaction()
        .execute(async (trx) =>
          closeAsResolved(
            trx,
            store.dialect,
            (await getIncident(trx, p.id))!,
            "alert.resolved",
            { ...SYSTEM, reason: "alert resolved by itself" },
            clock.now,
          ),
        );
      // The retry records the merge the host already made instead of cancelling the claim.
      expect(await service().merge(id, alice)).toMatchObject({ status: "merged" });
      expect(await approvalOf(p.id)).toMatchObject({ state: "approved", merged_at: expect.anything() });
      expect(await eventsOf(p.id, "pr.merged")).toHaveLength(1);
      expect(await eventsOf(p.id, "approval.merge_failed")).toHaveLength(0);
    });

    it("a resolve racing the merge has one winner: merged and recorded, or cancelled and not merged — never both", async () => {
      const svc = service();
      for (let round = 0; round < 4; round++) {
        const p = await proposed(MERGE);
        await svc.approve({ incidentId: p.id }, alice, null, { mergeNow: false });
        const id = (await approvalOf(p.id)).id;
        const resolveIt = store.db
          .transaction()
          .execute(async (trx) =>
            closeAsResolved(
              trx,
              store.dialect,
              (await getIncident(trx, p.id))!,
              "alert.resolved",
              { ...SYSTEM, reason: "alert resolved by itself" },
              clock.now,
            ),
          );
        const [out] = await Promise.all([svc.merge(id, alice), resolveIt]);
        const a = await approvalOf(p.id);
        const merged = onMain(p.path);
        if (merged) {
          expect(out.status).toBe("merged");
          expect(a).toMatchObject({ state: "approved", merged_at: expect.anything() });
          expect(await eventsOf(p.id, "pr.merged")).toHaveLength(1);
          // Only the merged branch's deletion: the pull request is not closed.
          expect((await jobsOf(p.id, "pr.close")).map((t) => JSON.parse(t.payload).merged)).toEqual([true]);
        } else {
          expect(out.status).toBe("skipped");
          expect(a).toMatchObject({ state: "cancelled", merged_at: null });
          expect(await eventsOf(p.id, "pr.merged")).toHaveLength(0);
          expect((await jobsOf(p.id, "pr.close")).map((t) => JSON.parse(t.payload).merged)).toEqual([false]);
        }
        expect((await getIncident(store.db, p.id))!.state).toBe("resolved");
      }
    });

    it("a merge conflict releases the claim: the approval is pending again, the incident proposed, approval.merge_failed names the code", async () => {
      const svc = service();
      const p = await proposed(MERGE, "apps/cart.yaml");
      // main changes the same file meanwhile.
      const work = join(dir, `conflict-${p.id}`);
      gitSync(dir, "clone", "--quiet", bare, work);
      writeFileSync(join(work, "apps/cart.yaml"), "replicas: 5\n");
      gitSync(work, "commit", "--quiet", "-am", "by hand");
      gitSync(work, "push", "--quiet", "origin", "HEAD:main");
      const mainBefore = git("rev-parse", "main").trim();

      const err = await svc.approve({ incidentId: p.id }, alice, null).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(AppError);
      expect(err).toMatchObject({
        code: "gitops.merge_conflict",
        message: expect.stringContaining("is pending again"),
      });
      expect(await approvalOf(p.id)).toMatchObject({
        state: "pending",
        decided_by: null,
        merge_started_at: null,
        merged_at: null,
      });
      expect((await getIncident(store.db, p.id))!.state).toBe("proposed");
      expect((await states(p.id)).slice(-3)).toEqual(["proposed", "approved", "proposed"]);
      const [failed] = await eventsOf(p.id, "approval.merge_failed");
      expect(JSON.parse(failed!.data)).toMatchObject({ code: "gitops.merge_conflict", approvedBy: "alice via mcp" });
      expect(git("rev-parse", "main").trim()).toBe(mainBefore);
      // The job queued with the claim finds nothing to do; the approval can be decided again.
      expect(await runJobs(svc, p.id, "approval.merge")).toEqual([expect.objectContaining({ status: "skipped" })]);
      expect((await svc.reject({ incidentId: p.id }, alice, "conflicts")).incident.state).toBe("rejected");
    });

    it("rejecting closes the pull request with a comment saying why and deletes its branch", async () => {
      const p = await proposed(MERGE);
      const r = await service().reject({ incidentId: p.id }, alice, "wrong deployment");
      expect(r.incident.state).toBe("rejected");
      expect(pullRecord(p.number)).toMatchObject({
        state: "closed",
        comments: [{ body: `Closed by Pitcrew: rejected by alice: wrong deployment (incident ${p.id}).` }],
      });
      expect(branchExists(p.branch)).toBe(false);
      // The queued job runs later and adds nothing.
      await runJobs(service(), p.id, "pr.close");
      expect(pullRecord(p.number).comments).toHaveLength(1);
      expect(await eventsOf(p.id, "pr.closed")).toHaveLength(1);
    });

    it("resolve_incident on a proposed incident cancels its approval, closes its pull request and deletes its branch", async () => {
      const p = await proposed(MERGE);
      let kicks = 0;
      const deps = { store, log: silentLogger, now: () => clock.now, kick: () => void kicks++ } as unknown as McpDeps;
      const res = await callTool(
        resolveIncident,
        { incident_id: p.id, reason: "fixed by hand" },
        { principal: { subject: "alice", scopes: new Set(["write"] as const), via: "token" }, deps },
      );
      expect(res.isError).toBeFalsy();
      expect(res.structuredContent).toMatchObject({
        cancelled_approvals: 1,
        closing_pull_requests: 1,
        incident: { state: "resolved" },
      });
      expect(kicks).toBe(1);
      expect((await eventsOf(p.id, "incident.resolved"))[0]!.reason).toBe("fixed by hand");
      await runJobs(service(), p.id, "pr.close");
      expect(pullRecord(p.number)).toMatchObject({
        state: "closed",
        comments: [{ body: `Closed by Pitcrew: incident resolved by mcp:alice: fixed by hand (incident ${p.id}).` }],
      });
      expect(branchExists(p.branch)).toBe(false);
    });

    it("an approval that expires escalates its incident and closes its pull request", async () => {
      const p = await proposed(MERGE);
      expect(await expireDueApprovals(store, clock.now + 25 * 3_600_000)).toBeGreaterThanOrEqual(1);
      expect(await approvalOf(p.id)).toMatchObject({ state: "expired" });
      expect((await getIncident(store.db, p.id))!.state).toBe("escalated");
      await runJobs(service(), p.id, "pr.close");
      expect(pullRecord(p.number)).toMatchObject({
        state: "closed",
        comments: [{ body: `Closed by Pitcrew: its approval expired without a decision (incident ${p.id}).` }],
      });
      expect(branchExists(p.branch)).toBe(false);
    });

    it("the resolve after a merged fix names the skill, the pull request, the merge and the approver", async () => {
      const svc = service();
      const p = await proposed(MERGE);
      const r = await svc.approve({ incidentId: p.id }, alice, null);
      expect(r).toMatchObject({ merged: { number: p.number }, incident: { state: "verifying" }, mergePending: null });
      // Merging again (the job queued with the claim) changes nothing.
      expect(await runJobs(svc, p.id, "approval.merge")).toEqual([
        { status: "merged", number: p.number, sha: r.merged!.sha },
      ]);
      expect(await eventsOf(p.id, "pr.merged")).toHaveLength(1);
      await store.db
        .transaction()
        .execute(async (trx) =>
          closeAsResolved(
            trx,
            store.dialect,
            (await getIncident(trx, p.id))!,
            "alert.resolved",
            { ...SYSTEM, reason: "alert resolved by itself" },
            clock.now,
          ),
        );
      const [resolved] = await eventsOf(p.id, "incident.resolved");
      expect(resolved!.reason).toBe(
        `alert resolved 0s after pull request #${p.number} (replicas-mismatch-scale, merged ${r.merged!.sha.slice(0, 7)}), approved by alice via mcp`,
      );
      expect(JSON.parse(resolved!.data)).toMatchObject({
        fix: { skill: "replicas-mismatch-scale", pr: p.number, sha: r.merged!.sha, approvedBy: "alice via mcp" },
      });
      // A merged pull request is not closed; only its branch goes.
      expect((await jobsOf(p.id, "pr.close")).map((t) => JSON.parse(t.payload).merged)).toEqual([true]);
    });

    it("a host error is retried by the merge job; when it gives up, the claim is released", async () => {
      const down: GitHost = {
        ...host,
        mergePullRequest: async () =>
          Promise.reject(
            new AppError("unavailable", "github.unavailable", "GitHub merge failed (502): Server Error", {
              retryable: true,
            }),
          ),
      };
      const svc = service(down);
      const p = await proposed(MERGE);
      const r = await svc.approve({ incidentId: p.id }, alice, null);
      expect(r).toMatchObject({
        merged: null,
        mergePending: expect.stringContaining("502"),
        incident: { state: "approved" },
      });
      const [job] = await jobsOf(p.id, "approval.merge");
      const payload = JSON.parse(job!.payload);
      await expect(
        svc.jobs["approval.merge"]!.run(payload, { taskId: job!.id, incidentId: p.id, attempt: 1 }),
      ).rejects.toMatchObject({ retryable: true });
      await store.db
        .transaction()
        .execute((trx) =>
          svc.jobs["approval.merge"]!.onGiveUp!(
            trx,
            payload,
            new AppError("unavailable", "github.unavailable", "Server Error"),
            { taskId: job!.id, incidentId: p.id, attempt: 5 },
            clock.now,
          ),
        );
      expect(await approvalOf(p.id)).toMatchObject({ state: "pending" });
      expect((await getIncident(store.db, p.id))!.state).toBe("proposed");
      expect(JSON.parse((await eventsOf(p.id, "approval.merge_failed"))[0]!.data)).toMatchObject({
        code: "github.unavailable",
      });
    });

    it("recoverStuckMerges queues a merge stuck in approved again, then gives up: claim cancelled, approval.merge_failed, incident escalated", async () => {
      const svc = service(host, { stuckAfterMs: 60_000, maxRetries: 1 });
      const p = await proposed(MERGE);
      await svc.approve({ incidentId: p.id }, alice, null, { mergeNow: false });
      // Nobody ran the job (a crash after the claim).
      await store.db
        .updateTable("tasks")
        .set({ state: "failed" })
        .where("incident_id", "=", p.id)
        .where("kind", "=", "approval.merge")
        .execute();
      const now = (await approvalOf(p.id)).merge_queued_at! + 61_000;
      expect(await svc.recoverStuckMerges(now - 30_000)).toMatchObject({ requeued: 0 });
      const first = await svc.recoverStuckMerges(now);
      expect(first.requeued).toBeGreaterThanOrEqual(1);
      expect((await jobsOf(p.id, "approval.merge")).filter((t) => t.state === "queued")).toHaveLength(1);
      expect(await approvalOf(p.id)).toMatchObject({ state: "approved", merge_requeues: 1 });
      const second = await svc.recoverStuckMerges(now + 61_000);
      expect(second.gaveUp).toBeGreaterThanOrEqual(1);
      expect(await approvalOf(p.id)).toMatchObject({ state: "cancelled", merged_at: null });
      expect(JSON.parse((await eventsOf(p.id, "approval.merge_failed"))[0]!.data)).toMatchObject({
        code: "approval.merge_stuck",
      });
      expect((await getIncident(store.db, p.id))!.state).toBe("escalated");
      expect(branchExists(p.branch)).toBe(true);
    });

    for (const code of ["agent.not_installed", "agent.not_startable"]) {
      it(`escalates a fix whose agent failed with ${code}, with the reason and a hint, instead of failing it`, async () => {
        const { id, taskId } = await fixing(
          { skill: "investigate-with-agent", risk: "high", approval: "before_merge" },
          { agent: "claude-code" },
        );
        await store.db.updateTable("tasks").set({ kind: "agent" }).where("id", "=", taskId).execute();
        await ingester.applyTaskEvent({
          type: "task.failed",
          id: newId("evt"),
          taskId,
          runnerId: "r1",
          attempt: 1,
          at: clock.now,
          error: "claude-code: could not start claude: spawn claude ENOENT",
          code,
        });
        const inc = (await getIncident(store.db, id))!;
        expect(inc).toMatchObject({ state: "escalated", failed_fixes: 0 });
        const [esc] = await eventsOf(id, "incident.escalated");
        expect(esc!.reason).toBe(
          "claude-code: could not start claude: spawn claude ENOENT; install claude-code on the runners, or set AGENT_COMMANDS to a command they have",
        );
        expect(JSON.parse(esc!.data)).toMatchObject({ code });
      });
    }

    it("escalates a rollback with no safe previous version, with the runner's reason, instead of failing it", async () => {
      const { id, taskId } = await fixing(MERGE);
      const why =
        "images[name=checkout] in apps/kustomization.yaml: no safe version to roll back to (v1.4.2 was rolled back from in 1a2b3c4)";
      await ingester.applyTaskEvent({
        type: "task.failed",
        id: newId("evt"),
        taskId,
        runnerId: "r1",
        attempt: 1,
        at: clock.now,
        error: why,
        code: "gitops.no_safe_version",
      });
      expect((await getIncident(store.db, id))!).toMatchObject({ state: "escalated", failed_fixes: 0 });
      const [esc] = await eventsOf(id, "incident.escalated");
      expect(esc!.reason).toBe(`${why}; roll forward with a fixed image, or choose the version to deploy by hand`);
    });

    it("a fix that fails after opening a pull request fails the incident and closes the pull request", async () => {
      const { id, taskId } = await fixing(MERGE);
      const branch = `pitcrew/${id.toLowerCase()}-fail`;
      const work = join(dir, `fail-${id}`);
      gitSync(dir, "clone", "--quiet", bare, work);
      gitSync(work, "checkout", "--quiet", "-b", branch);
      gitSync(work, "commit", "--quiet", "--allow-empty", "-m", "half done");
      gitSync(work, "push", "--quiet", "origin", `HEAD:refs/heads/${branch}`);
      const pr = await host.createPullRequest({ branch, base: "main", title: "half", body: "" });
      await ingester.applyTaskEvent({
        type: "task.pr_opened",
        id: newId("evt"),
        taskId,
        runnerId: "r1",
        attempt: 1,
        at: clock.now,
        url: pr.url,
        branch,
        number: pr.number,
      });
      await ingester.applyTaskEvent({
        type: "task.failed",
        id: newId("evt"),
        taskId,
        runnerId: "r1",
        attempt: 1,
        at: clock.now,
        error: "git push rejected",
        code: "task.error",
      });
      expect((await getIncident(store.db, id))!).toMatchObject({ state: "failed", failed_fixes: 1 });
      await runJobs(service(), id, "pr.close");
      expect(pullRecord(pr.number)).toMatchObject({
        state: "closed",
        comments: [{ body: `Closed by Pitcrew: the fix failed: git push rejected (incident ${id}).` }],
      });
      expect(branchExists(branch)).toBe(false);
    });
  });
}
