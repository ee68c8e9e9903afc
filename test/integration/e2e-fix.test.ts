import { mkdtempSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gitSync, makeBareRepo } from "../helpers/git.ts";
import { createOutboxRelay } from "../../src/bus/outbox.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { listEvents } from "../../src/events/repo.ts";
import { createAnalysisWorker } from "../../src/incidents/analysis.ts";
import { incidentFixHook } from "../../src/incidents/fix-outcome.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { INCIDENT_STATES } from "../../src/incidents/lifecycle.ts";
import { createLocalGitHost } from "../../src/gitops/local.ts";
import { createApprovalService } from "../../src/approvals/service.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { rulesPlanner } from "../../src/skills/planner.ts";
import { createControlJobs } from "../../src/tasks/control-jobs.ts";
import { createRunner } from "../../runner/worker.ts";
import { createSkillExecutor } from "../../runner/executors/skill.ts";
import { fixture, newTag, postAlerts } from "../helpers/alerts.ts";
import { intakeApp, skills, TOKEN, type IntakeHarness } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

// From an AlertManager alert to a merged (or closed) pull request, embedded: the intake, the
// analysis and approvals jobs on one control-pool consumer, the outbox relay, the event ingester
// and a runner, against a real bare repository. AUTO_APPROVE_MAX_RISK is `low`: the low-risk scale
// skill merges on the policy's approval, the medium-risk rollback waits for a person.

const sqlite = (await storeFactories()).find((f) => f.name === "sqlite")!;
const run = gitSync;

const deployment = (ns: string, tag: string) => `# Checkout service — owned by the payments team
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  namespace: ${ns}
spec:
  replicas: 3 # keep at least three
  template:
    spec:
      containers:
        - name: checkout
          image: registry.example.com/checkout:${tag} # bumped by CI
`;

const cart = (ns: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: cart
  namespace: ${ns}
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: cart
          image: registry.example.com/cart:v3.1.0
`;

describe("from alert to pull request (embedded)", () => {
  let store: TestStore;
  let h: IntakeHarness;
  let dir: string;
  let bare: string;
  let approvals: ReturnType<typeof createApprovalService>;
  // One workload per test: each test's alert has its own namespace.
  const crashTags = [newTag(), newTag(), newTag()];
  const shopTag = newTag();
  const stops: Array<() => Promise<void>> = [];
  const alice = { subject: "alice", actor: "mcp:alice", channel: "mcp" };

  const git = (...args: string[]) => run(dir, "--git-dir", bare, ...args);
  const branchExists = (branch: string) => git("for-each-ref", `refs/heads/${branch}`).trim() !== "";
  const pullRecord = (n: number) =>
    JSON.parse(git("cat-file", "blob", `refs/pitcrew/pulls/${n}`)) as {
      state: string;
      comments: Array<{ body: string }>;
    };
  const events = async (id: string) => listEvents(store.db, { incidentId: id, limit: 1000 });
  const states = async (id: string) =>
    (await events(id))
      .map((e) => e.type.replace(/^incident\./, ""))
      .filter((t) => (INCIDENT_STATES as readonly string[]).includes(t));

  async function settle(id: string, wanted: string[]) {
    const inc = await waitFor(
      async () => {
        const i = await getIncident(store.db, id);
        return i && [...wanted, "failed", "escalated"].includes(i.state) ? i : undefined;
      },
      30_000,
      100,
    );
    expect(wanted, JSON.stringify((await events(id)).map((e) => [e.type, e.reason]))).toContain(inc.state);
    return inc;
  }

  async function open(body: unknown): Promise<string> {
    h.clock.set("2026-11-20T09:45:00Z");
    const res = await postAlerts(h.app, body, TOKEN);
    expect(res.statusCode, res.body).toBe(200);
    return res.json().incidents[0];
  }

  async function resolve(body: any, endsAt: string): Promise<void> {
    body.status = "resolved";
    for (const a of body.alerts) Object.assign(a, { status: "resolved", endsAt });
    h.clock.set("2026-11-20T10:40:00Z");
    const res = await postAlerts(h.app, body, TOKEN);
    expect(res.statusCode, res.body).toBe(200);
  }

  beforeAll(async () => {
    store = await sqlite.make();
    h = await intakeApp(store);
    dir = mkdtempSync(join(tmpdir(), "pitcrew-e2e-"));
    const files = (v: string) => ({
      ...Object.fromEntries(
        crashTags.map((t) => [`apps/payments-${t}/deployment.yaml`, deployment(`payments-${t}`, v)]),
      ),
      [`apps/shop-${shopTag}/cart.yaml`]: cart(`shop-${shopTag}`),
    });
    bare = makeBareRepo(
      dir,
      ["v1.4.0", "v1.5.0"].map((v) => ({ message: `checkout ${v}`, files: files(v) })),
    );

    const host = createLocalGitHost({ repoPath: bare, committer: { name: "Pitcrew", email: "pitcrew@example.com" } });
    const onTerminal = incidentFixHook(store.dialect, { autoApproveMaxRisk: "low" });
    const relay = createOutboxRelay(
      { store, queue: h.queue, log: silentLogger },
      { intervalMs: 20, batch: 100, retentionMs: 86_400_000 },
    );
    const ingesting = createEventIngester({
      store,
      queue: h.queue,
      log: silentLogger,
      now: Date.now,
      onTerminal,
    }).start(4);
    const analysis = createAnalysisWorker({
      store,
      queue: h.queue,
      log: silentLogger,
      now: Date.now,
      skills: () => skills,
      planner: rulesPlanner,
      guardrails: {
        dryRun: false,
        maxPrsPerHour: 100,
        maxPrsPerDay: 100,
        maxFixesPerNamespace: 5,
        autoApproveMaxRisk: "low",
      },
      onEnqueued: () => relay.kick(),
    });
    approvals = createApprovalService({
      store,
      log: silentLogger,
      now: Date.now,
      skills: () => skills,
      gitHost: host,
      fixPool: "default",
      deleteMergedBranches: true,
      sweep: { stuckAfterMs: 600_000, maxRetries: 3 },
      onEnqueued: () => relay.kick(),
    });
    const control = createControlJobs(
      { store, queue: h.queue, log: silentLogger, now: Date.now, onDone: () => relay.kick() },
      { "incident.analyze": analysis.job, ...approvals.jobs },
    ).start(2);
    const runner = createRunner(
      {
        queue: h.queue,
        log: silentLogger,
        executors: {
          skill: createSkillExecutor({
            host,
            baseBranch: "main",
            author: { name: "Pitcrew", email: "pitcrew@example.com" },
            workspaceBase: dir,
          }),
        },
      },
      {
        id: "e2e-runner",
        pool: "default",
        concurrency: 2,
        heartbeatMs: 60_000,
        ackWaitMs: 30_000,
        version: "test",
        drainTimeoutMs: 1000,
      },
    );
    runner.start();
    relay.start();
    stops.push(
      () => runner.stop(),
      () => control.stop(),
      () => relay.stop(),
      () => ingesting.stop(),
    );
  });

  afterAll(async () => {
    for (const s of stops) await s();
    await h.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("merges a low-risk fix on the policy's approval: pr.merged with the sha, approved by policy, branch deleted, and the resolve names the fix", async () => {
    const body = fixture("replicas-mismatch.json", shopTag);
    const id = await open(body);
    const inc = await settle(id, ["verifying"]);
    expect(inc.state).toBe("verifying");

    const approval = await store.db
      .selectFrom("approvals")
      .selectAll()
      .where("incident_id", "=", id)
      .executeTakeFirstOrThrow();
    expect(approval).toMatchObject({
      state: "approved",
      decided_by: "policy",
      channel: "policy",
      risk: "low",
      merged_at: expect.anything(),
    });
    expect(approval.reason).toBe(
      "approved by policy: low-risk skill replicas-mismatch-scale is at or below AUTO_APPROVE_MAX_RISK (low)",
    );
    const merged = (await events(id)).find((e) => e.type === "pr.merged")!;
    const data = JSON.parse(merged.data) as { sha: string; pr: { number: number; branch: string }; approvedBy: string };
    expect(data).toMatchObject({ sha: git("rev-parse", "main").trim(), approvedBy: "policy" });
    expect(git("show", `main:apps/shop-${shopTag}/cart.yaml`)).toContain("replicas: 3");
    expect((await states(id)).slice(-4)).toEqual(["fixing", "proposed", "approved", "verifying"]);
    expect(git("log", "-1", "--format=%(trailers:only,unfold)", "main").trim().split("\n")).toEqual([
      "Approved-by: policy",
      "Approved-via: policy",
      `Pitcrew-Incident: ${id}`,
    ]);
    await waitFor(async () => (await events(id)).find((e) => e.type === "pr.branch_deleted"), 10_000);
    expect(branchExists(data.pr.branch)).toBe(false);

    await resolve(body, "2026-11-20T10:30:00Z");
    const resolved = (await events(id)).filter((e) => e.type === "incident.resolved").at(-1)!;
    expect(resolved.reason).toMatch(
      new RegExp(
        `^alert resolved \\w+ after pull request #${data.pr.number} \\(replicas-mismatch-scale, merged ${data.sha.slice(0, 7)}\\), approved by policy$`,
      ),
    );
  });

  it("a person's approval merges at the proposed commit with their trailer, and the resolve names the fix, the pull request and the approver", async () => {
    const body = fixture("crashloop-firing.json", crashTags[0]!);
    const id = await open(body);
    await settle(id, ["proposed"]);
    const pending = await store.db
      .selectFrom("approvals")
      .selectAll()
      .where("incident_id", "=", id)
      .executeTakeFirstOrThrow();
    // The plan's risk, not "unknown".
    expect(pending).toMatchObject({ state: "pending", risk: "medium", pr_number: expect.any(Number) });

    const r = await approvals.approve({ incidentId: id }, alice, "looks right");
    expect(r.merged).toMatchObject({ number: pending.pr_number, sha: git("rev-parse", "main").trim() });
    expect(r.incident.state).toBe("verifying");
    expect(git("show", `main:apps/payments-${crashTags[0]}/deployment.yaml`)).toBe(
      deployment(`payments-${crashTags[0]}`, "v1.4.0"),
    );
    expect(git("log", "-1", "--format=%(trailers:only,unfold)", "main").trim().split("\n")).toEqual([
      "Approved-by: alice",
      "Approved-via: mcp",
      `Pitcrew-Incident: ${id}`,
    ]);
    const merged = (await events(id)).filter((e) => e.type === "pr.merged");
    expect(merged).toHaveLength(1);
    expect(merged[0]).toMatchObject({ actor: "mcp:alice", channel: "mcp" });
    expect((await states(id)).slice(-3)).toEqual(["proposed", "approved", "verifying"]);
    await waitFor(async () => (await events(id)).find((e) => e.type === "pr.branch_deleted"), 10_000);
    expect(branchExists(pending.pr_branch!)).toBe(false);
    // The merge job queued with the claim ran after the inline merge and found it done.
    await waitFor(
      async () =>
        (
          await store.db
            .selectFrom("tasks")
            .select("state")
            .where("incident_id", "=", id)
            .where("kind", "=", "approval.merge")
            .executeTakeFirst()
        )?.state === "succeeded",
    );
    expect((await events(id)).filter((e) => e.type === "pr.merged")).toHaveLength(1);

    const resolvedBody = fixture("crashloop-resolved.json", crashTags[0]!);
    h.clock.set("2026-11-20T10:40:00Z");
    expect((await postAlerts(h.app, resolvedBody, TOKEN)).statusCode).toBe(200);
    expect((await getIncident(store.db, id))!.state).toBe("resolved");
    const resolved = (await events(id)).filter((e) => e.type === "incident.resolved").at(-1)!;
    expect(resolved.reason).toMatch(
      new RegExp(
        `^alert resolved \\w+ after pull request #${pending.pr_number} \\(crashloop-after-deploy, merged ${r.merged!.sha.slice(0, 7)}\\), approved by alice via mcp$`,
      ),
    );
  });

  it("refuses to approve a branch that moved since it was proposed: approval.head_moved, the approval superseded by a new one for the new head, nothing merged", async () => {
    const id = await open(fixture("crashloop-firing.json", crashTags[1]!));
    await settle(id, ["proposed"]);
    const branch = `pitcrew/${id}-crashloop-after-deploy`.toLowerCase();
    expect(git("show", `${branch}:apps/payments-${crashTags[1]}/deployment.yaml`)).toBe(
      deployment(`payments-${crashTags[1]}`, "v1.4.0"),
    );
    expect(git("log", "-1", "--format=%an <%ae>", branch).trim()).toBe("Pitcrew <pitcrew@example.com>");
    const types = (await events(id)).map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining([
        "incident.planned",
        "task.started",
        "task.pr_opened",
        "task.succeeded",
        "approval.requested",
        "incident.proposed",
      ]),
    );
    // The runner's scratch workspace is gone.
    expect(readdirSync(dir).filter((d) => d.startsWith("pitcrew-skill-"))).toEqual([]);

    const approval = await store.db
      .selectFrom("approvals")
      .selectAll()
      .where("incident_id", "=", id)
      .executeTakeFirstOrThrow();
    expect(approval.head_sha).toBe(git("rev-parse", branch).trim());
    const other = join(dir, `other-${id}`);
    run(dir, "clone", "--quiet", "--branch", branch, bare, other);
    writeFileSync(join(other, "EXTRA.md"), "not reviewed\n");
    run(other, "add", ".");
    run(other, "commit", "--quiet", "-m", "sneaky");
    run(other, "push", "--quiet", "origin", `HEAD:${branch}`);
    const mainBefore = git("rev-parse", "main").trim();

    await expect(approvals.approve({ incidentId: id }, alice, null)).rejects.toMatchObject({
      code: "approval.head_moved",
    });
    expect(
      await store.db.selectFrom("approvals").selectAll().where("id", "=", approval.id).executeTakeFirstOrThrow(),
    ).toMatchObject({ state: "superseded", merged_at: null });
    const next = await store.db
      .selectFrom("approvals")
      .selectAll()
      .where("incident_id", "=", id)
      .where("state", "=", "pending")
      .executeTakeFirstOrThrow();
    expect(next).toMatchObject({ pr_number: approval.pr_number, head_sha: git("rev-parse", branch).trim() });
    // The new approval shows the change as it is now, the unreviewed file included.
    expect((JSON.parse(next.diff_summary!) as { files: Array<{ path: string }> }).files.map((f) => f.path)).toEqual([
      "EXTRA.md",
      `apps/payments-${crashTags[1]}/deployment.yaml`,
    ]);
    expect((await getIncident(store.db, id))!.state).toBe("proposed");
    expect((await states(id)).at(-1)).toBe("proposed");
    expect((await events(id)).map((e) => e.type)).not.toContain("approval.approved");
    expect(git("rev-parse", "main").trim()).toBe(mainBefore);
  });

  it("an AlertManager resolve of a proposed incident cancels its approval, closes its pull request with a comment and deletes its branch", async () => {
    const id = await open(fixture("crashloop-firing.json", crashTags[2]!));
    await settle(id, ["proposed"]);
    const approval = await store.db
      .selectFrom("approvals")
      .selectAll()
      .where("incident_id", "=", id)
      .executeTakeFirstOrThrow();
    const mainBefore = git("rev-parse", "main").trim();

    h.clock.set("2026-11-20T10:40:00Z");
    expect((await postAlerts(h.app, fixture("crashloop-resolved.json", crashTags[2]!), TOKEN)).statusCode).toBe(200);
    expect((await getIncident(store.db, id))!.state).toBe("resolved");
    expect(
      (await store.db.selectFrom("approvals").select("state").where("id", "=", approval.id).executeTakeFirstOrThrow())
        .state,
    ).toBe("cancelled");

    // The pr.close job queued with the resolve: its event is written once the branch is gone.
    const closed = await waitFor(async () => (await events(id)).find((e) => e.type === "pr.closed"), 10_000);
    expect(closed.reason).toContain(`pull request #${approval.pr_number}: closed`);
    expect(branchExists(approval.pr_branch!)).toBe(false);
    const pr = pullRecord(approval.pr_number!);
    expect(pr.state).toBe("closed");
    expect(pr.comments.map((c) => c.body)).toEqual([
      `Closed by Pitcrew: the alert resolved without this change (incident ${id}).`,
    ]);
    expect(git("rev-parse", "main").trim()).toBe(mainBefore);
  });
});
