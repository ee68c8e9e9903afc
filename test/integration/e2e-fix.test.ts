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
import { createLocalGitHost } from "../../src/gitops/local.ts";
import { createApprovalDecisions } from "../../src/incidents/approvals.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { rulesPlanner } from "../../src/skills/planner.ts";
import { createRunner } from "../../runner/worker.ts";
import { createSkillExecutor } from "../../runner/executors/skill.ts";
import { fixture, newTag, postAlerts } from "../helpers/alerts.ts";
import { intakeApp, skills, TOKEN, type IntakeHarness } from "../helpers/intake-app.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

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

describe("from alert to pull request (embedded)", () => {
  let store: TestStore;
  let h: IntakeHarness;
  let dir: string;
  let bare: string;
  const tag = newTag();
  const ns = `payments-${tag}`;
  const stops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    store = await sqlite.make();
    h = await intakeApp(store);
    dir = mkdtempSync(join(tmpdir(), "pitcrew-e2e-"));
    bare = makeBareRepo(
      dir,
      ["v1.4.0", "v1.5.0"].map((v) => ({ message: `checkout ${v}`, files: { [`apps/${ns}/deployment.yaml`]: deployment(ns, v) } })),
    );

    const host = createLocalGitHost({ repoPath: bare });
    const onTerminal = incidentFixHook(store.dialect);
    const relay = createOutboxRelay({ store, queue: h.queue, log: silentLogger }, { intervalMs: 20, batch: 100, retentionMs: 86_400_000 });
    const ingesting = createEventIngester({ store, queue: h.queue, log: silentLogger, now: Date.now, onTerminal }).start(4);
    const analysis = createAnalysisWorker({
      store,
      queue: h.queue,
      log: silentLogger,
      now: Date.now,
      skills: () => skills,
      planner: rulesPlanner,
      guardrails: { dryRun: false, maxPrsPerHour: 100, maxPrsPerDay: 100, maxFixesPerNamespace: 5, autoApproveMaxRisk: "read" },
      onEnqueued: () => relay.kick(),
    }).start(2);
    const runner = createRunner(
      { queue: h.queue, log: silentLogger, executors: { skill: createSkillExecutor({ host, baseBranch: "main", author: { name: "Pitcrew", email: "pitcrew@example.com" }, workspaceBase: dir }) } },
      { id: "e2e-runner", pool: "default", concurrency: 2, heartbeatMs: 60_000, ackWaitMs: 30_000, version: "test", drainTimeoutMs: 1000 },
    );
    runner.start();
    relay.start();
    stops.push(() => runner.stop(), () => analysis.stop(), () => relay.stop(), () => ingesting.stop());
  });

  afterAll(async () => {
    for (const s of stops) await s();
    await h.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("rolls the crash-looping Deployment back in a pull request and waits for approval", async () => {
    h.clock.set(new Date().toISOString());
    const id = (await postAlerts(h.app, fixture("crashloop-firing.json", tag), TOKEN)).json().incidents[0];
    const inc = await waitFor(async () => {
      const i = await getIncident(store.db, id);
      return i && ["proposed", "failed", "escalated"].includes(i.state) ? i : undefined;
    }, 30_000, 100);
    expect(inc.state, JSON.stringify(await listEvents(store.db, { incidentId: id }))).toBe("proposed");

    const branch = `pitcrew/${id}-crashloop-after-deploy`.toLowerCase();
    const changed = run(dir, "--git-dir", bare, "show", `${branch}:apps/${ns}/deployment.yaml`);
    expect(changed).toBe(deployment(ns, "v1.4.0"));
    expect(run(dir, "--git-dir", bare, "log", "-1", "--format=%an <%ae>", branch).trim()).toBe("Pitcrew <pitcrew@example.com>");

    const pr = await createLocalGitHost({ repoPath: bare }).findOpenPullRequest(branch);
    expect(pr).toMatchObject({ state: "open", base: "main", branch });
    const types = (await listEvents(store.db, { incidentId: id, limit: 1000 })).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["incident.planned", "task.started", "task.pr_opened", "task.succeeded", "approval.requested", "incident.proposed"]));
    const approvals = await store.db.selectFrom("approvals").selectAll().where("incident_id", "=", id).execute();
    expect(approvals).toHaveLength(1);
    expect(approvals[0]!.state).toBe("pending");
    // The runner's scratch workspace is gone.
    expect(readdirSync(dir).filter((d) => d.startsWith("pitcrew-skill-"))).toEqual([]);

    // The approval pins the commit the runner proposed: a push after it makes the merge refuse.
    const action = JSON.parse(approvals[0]!.action) as { merge: { sha: string } };
    expect(action.merge.sha).toBe(run(dir, "--git-dir", bare, "rev-parse", branch).trim());
    const other = join(dir, "other");
    run(dir, "clone", "--quiet", "--branch", branch, bare, other);
    writeFileSync(join(other, "EXTRA.md"), "not reviewed\n");
    run(other, "add", ".");
    run(other, "commit", "--quiet", "-m", "sneaky");
    run(other, "push", "--quiet", "origin", `HEAD:${branch}`);
    const decisions = createApprovalDecisions({ store, log: silentLogger, now: Date.now, skills: () => skills, gitHost: createLocalGitHost({ repoPath: bare }), fixPool: "default" });
    const by = { subject: "alice", actor: "mcp:alice", channel: "mcp" };
    await expect(decisions.approve({ incidentId: id }, by, null)).rejects.toMatchObject({ code: "gitops.head_moved" });
    expect((await store.db.selectFrom("approvals").select("state").where("incident_id", "=", id).executeTakeFirstOrThrow()).state).toBe("pending");
    expect(run(dir, "--git-dir", bare, "log", "-1", "--format=%s", "main").trim()).toBe("checkout v1.5.0");
  });
});
