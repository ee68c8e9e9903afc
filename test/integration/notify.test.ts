import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { createLocalGitHost } from "../../src/gitops/local.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { incidentFixHook } from "../../src/incidents/fix-outcome.ts";
import { getIncident } from "../../src/incidents/repo.ts";
import { applyTransition, closeAsResolved } from "../../src/incidents/service.ts";
import { createApprovalService, expireDueApprovals } from "../../src/approvals/service.ts";
import { createNotices } from "../../src/notify/service.ts";
import { createTelegramChannel } from "../../src/approvals/telegram.ts";
import { Telegram } from "telegraf";
import { newId } from "../../src/shared/ids.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createTaskService, enqueueTask } from "../../src/tasks/service.ts";
import { scheduleRunHook } from "../../src/schedules/run-outcome.ts";
import { createTelegramMock, TELEGRAM_API_ROOT, type StoredMessage } from "../msw/telegram.ts";
import { gitSync, makeBareRepo } from "../helpers/git.ts";
import { openIncident } from "../helpers/incidents.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";
import { strictMockServer } from "../helpers/msw.ts";

// Telegram notices through a whole incident, against the Bot API fake and a real bare repository:
// the pull request is reported by the real event ingester, decided and merged by the approvals
// service; every message the fake received is what a chat would show.

const factories = await storeFactories();
const TOKEN = "123456789:AAHnotifyTESTtokenABCDEFGHIJKLMNOPQ";
const DEFAULT_CHAT = "-1001000000001";
const PAYMENTS_CHAT = "-1001000000002";
const uid = () => randomBytes(4).toString("hex");
const alice = { subject: "alice", actor: "mcp:alice", channel: "mcp" };
const server = strictMockServer();
const MERGE = { skill: "replicas-mismatch-scale", risk: "medium", approval: "before_merge" };

type Sev = "info" | "warning" | "critical";
function config(minSeverity: Sev = "warning") {
  return {
    telegram: {
      token: TOKEN,
      defaultChat: DEFAULT_CHAT,
      routes: [{ label: "namespace", value: "payments", chat: PAYMENTS_CHAT }],
      approverIds: [],
      apiRoot: TELEGRAM_API_ROOT,
      mode: "polling" as const,
    },
    notify: { minSeverity },
  };
}

for (const f of factories) {
  describe.skipIf(!f.available)(`Telegram notices on ${f.name}`, () => {
    let store: TestStore;
    let dir: string;
    let bare: string;
    let host: GitHost;
    const clock = { now: Date.parse("2026-11-20T08:00:00Z") };
    const queue = createMemoryQueue({ log: silentLogger });
    let ingester: ReturnType<typeof createEventIngester>;
    let mock: ReturnType<typeof createTelegramMock>;

    beforeAll(async () => {
      store = await f.make({ own: true });
      dir = mkdtempSync(join(tmpdir(), "pitcrew-notify-"));
      bare = makeBareRepo(dir, [{ message: "initial", files: { "apps/cart.yaml": "replicas: 2\n" } }]);
      host = createLocalGitHost({ repoPath: bare });
      ingester = createEventIngester({
        store,
        queue,
        log: silentLogger,
        now: () => clock.now,
        onTerminal: incidentFixHook(store.dialect, { autoApproveMaxRisk: "low" }),
      });
      server.listen();
    });
    afterEach(async () => {
      server.resetHandlers();
      await store.db.deleteFrom("deliveries").execute();
      await store.db.deleteFrom("settings").where("key", "=", "notify.deliverer").execute();
    });
    afterAll(async () => {
      server.close();
      await queue.close();
      await store?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    function fake(now: () => number = () => clock.now) {
      mock = createTelegramMock({ token: TOKEN, now });
      server.use(...mock.handlers);
      return mock;
    }
    const deliverer = (cfg: Parameters<typeof createNotices>[0] = config(), now = () => clock.now, pollMs?: number) =>
      createNotices(cfg, { store, log: silentLogger, now, owner: `cp-${uid()}`, settings: pollMs ? { pollMs } : {} });
    const approvals = () =>
      createApprovalService({
        store,
        log: silentLogger,
        now: () => clock.now,
        skills: () => [],
        gitHost: host,
        fixPool: "default",
        deleteMergedBranches: false,
        sweep: { stuckAfterMs: 600_000, maxRetries: 2 },
      });

    async function drain(d: ReturnType<typeof deliverer>) {
      for (let i = 0; i < 1000; i++) {
        const r = await d.runOnce();
        if (r.more) continue;
        if (r.nextAt === null) return;
        clock.now = Math.max(clock.now + 1, r.nextAt);
      }
      throw new Error("deliveries never settled");
    }

    /** An incident as the intake opens it (test/helpers/incidents.ts): cart short of replicas. */
    const open = (
      opts: {
        labels?: Record<string, string>;
        annotations?: Record<string, string>;
        severity?: string;
        title?: string;
        namespace?: string;
      } = {},
    ) => {
      const key = uid();
      return openIncident(store, {
        now: clock.now,
        key,
        title: opts.title ?? `cart lags ${key}`,
        severity: opts.severity,
        namespace: opts.namespace,
        service: "cart",
        alertname: "KubeDeploymentReplicasMismatch",
        labels: opts.labels,
        annotations: opts.annotations ?? { summary: "cart has fewer replicas than wanted" },
      });
    };

    /** Planned and fixing: the plan recorded, a fix task queued. */
    async function fixing(id: string, plan: typeof MERGE = MERGE) {
      return store.db.transaction().execute(async (trx) => {
        const by = { actor: "pitcrew:analysis", channel: "engine" };
        const inc = (await getIncident(trx, id))!;
        await trx
          .updateTable("incidents")
          .set({
            plan: JSON.stringify({
              ...plan,
              params: {},
              rationale: "2 of 3 replicas ready for 10 minutes",
              confidence: 0.9,
              planner: "rules",
            }),
          })
          .where("id", "=", id)
          .execute();
        let cur = await applyTransition(trx, store.dialect, inc, "analysis.started", by, clock.now);
        cur = await applyTransition(trx, store.dialect, cur, "fix.started", by, clock.now);
        return enqueueTask(
          trx,
          store.dialect,
          {
            kind: "skill",
            pool: "default",
            payload: { incidentId: id, skill: plan.skill, approval: plan.approval, params: {} },
            incidentId: id,
            createdBy: "test",
            channel: "test",
          },
          clock.now,
        );
      });
    }

    /**
     * The runner's work: a branch, its pull request, and task.succeeded naming it (with the diff
     * summary and excerpt when `diff`). `conflict`: main gets the same file with other content.
     */
    async function propose(id: string, opts: { plan?: typeof MERGE; diff?: boolean; conflict?: boolean } = {}) {
      const taskId = await fixing(id, opts.plan);
      const branch = `pitcrew/${id.toLowerCase()}-${MERGE.skill}`;
      const work = join(dir, `work-${id}`);
      gitSync(dir, "clone", "--quiet", bare, work);
      gitSync(work, "checkout", "--quiet", "-b", branch);
      mkdirSync(join(work, "apps"), { recursive: true });
      writeFileSync(join(work, `apps/${id}.yaml`), `replicas: 3 # ${id}\n`);
      gitSync(work, "add", ".");
      gitSync(work, "commit", "--quiet", "-m", `scale for ${id}`);
      gitSync(work, "push", "--quiet", "origin", `HEAD:refs/heads/${branch}`);
      const sha = gitSync(work, "rev-parse", "HEAD").trim();
      const pr = await host.createPullRequest({ branch, base: "main", title: `Scale cart (${id})`, body: "" });
      if (opts.conflict) {
        gitSync(work, "checkout", "--quiet", "-b", `other-${id}`, "origin/main");
        writeFileSync(join(work, `apps/${id}.yaml`), `replicas: 5 # someone else\n`);
        gitSync(work, "add", ".");
        gitSync(work, "commit", "--quiet", "-m", "someone else's change");
        gitSync(work, "push", "--quiet", "origin", "HEAD:main");
      }
      const diff = opts.diff
        ? {
            diffSummary: { files: [{ path: `apps/${id}.yaml`, added: 1, removed: 0 }], added: 1, removed: 0 },
            diffExcerpt: `+++ b/apps/${id}.yaml\n+replicas: 3 # <b>&</b>\n`,
          }
        : {};
      const result = {
        changed: true,
        summary: "scale cart to 3 replicas",
        pr: { number: pr.number, url: pr.url, branch, sha },
        ...diff,
      };
      await ingester.applyTaskEvent({
        type: "task.succeeded",
        id: newId("evt"),
        taskId,
        runnerId: "r1",
        attempt: 1,
        at: clock.now,
        result,
      });
      const approval = await store.db
        .selectFrom("approvals")
        .selectAll()
        .where("incident_id", "=", id)
        .executeTakeFirstOrThrow();
      return { number: pr.number, approval };
    }

    const resolveByAlert = (id: string) =>
      store.db
        .transaction()
        .execute(async (trx) =>
          closeAsResolved(
            trx,
            store.dialect,
            (await getIncident(trx, id))!,
            "alert.resolved",
            { actor: "alertmanager", channel: "alertmanager", reason: "alert resolved" },
            clock.now,
          ),
        );

    const inChat = (chat: string, needle: string): StoredMessage[] =>
      mock.messages(chat).filter((m) => m.text.includes(needle));
    const buttonsOf = (m: StoredMessage) => (m.reply_markup?.inline_keyboard ?? []).flat().map((b) => b.callback_data);

    it("follows a whole incident with one card edited in place and one approval message edited after the decision", async () => {
      fake();
      const d = deliverer();
      const svc = approvals();
      const id = await open();
      await drain(d);
      const [card] = inChat(DEFAULT_CHAT, id);
      expect(card!.text).toContain("Open: Pitcrew is looking for a fix");

      const { number, approval } = await propose(id);
      await drain(d);
      expect(mock.message(DEFAULT_CHAT, card!.message_id)!.text).toContain("Waiting for approval");
      const asking = inChat(DEFAULT_CHAT, approval.id);
      expect(asking).toHaveLength(1);
      const msg = asking[0]!;
      expect(msg.text).toContain(`Approval needed: Merge of pull request #${number}`);
      expect(msg.text).toContain("2 of 3 replicas ready for 10 minutes");
      expect(buttonsOf(msg)).toEqual([`v1:a:${approval.id}`, `v1:r:${approval.id}`, `v1:d:${approval.id}`]);
      expect(
        await store.db
          .selectFrom("approvals")
          .select(["chat_id", "message_id"])
          .where("id", "=", approval.id)
          .executeTakeFirstOrThrow(),
      ).toEqual({ chat_id: DEFAULT_CHAT, message_id: String(msg.message_id) });

      await svc.approve({ approvalId: approval.id }, alice, "looks right", { mergeNow: false });
      await drain(d);
      expect(mock.message(DEFAULT_CHAT, msg.message_id)!.text).toMatch(
        /Approved by alice via mcp at 2026-11-20 \d\d:\d\d UTC — looks right · merging…/,
      );
      expect(mock.message(DEFAULT_CHAT, msg.message_id)!.reply_markup?.inline_keyboard ?? []).toEqual([]);
      expect(mock.message(DEFAULT_CHAT, card!.message_id)!.text).toContain("Approved: merging");

      const merged = await svc.merge(approval.id, alice);
      expect(merged.status).toBe("merged");
      await drain(d);
      const sha = (merged as { sha: string }).sha;
      expect(mock.message(DEFAULT_CHAT, msg.message_id)!.text).toContain(`merged ${sha.slice(0, 12)}`);
      expect(mock.message(DEFAULT_CHAT, card!.message_id)!.text).toContain(
        "Fix applied: waiting for the alert to resolve",
      );

      clock.now += 180_000;
      await resolveByAlert(id);
      await drain(d);
      const final = mock.message(DEFAULT_CHAT, card!.message_id)!;
      expect(final.text).toMatch(/Resolved in \dm\d\ds/);
      expect(final.text).toContain(`pull request #${number}`);

      // Two messages in the chat for the whole story; the card was edited as the incident moved.
      expect(mock.messages(DEFAULT_CHAT).filter((m) => m.text.includes(id))).toHaveLength(2);
      expect(mock.succeeded("sendMessage")).toHaveLength(2);
      expect(final.edits).toBeGreaterThanOrEqual(4);
      expect(mock.calls.filter((c) => !c.ok)).toEqual([]);
    });

    it("shows the change an approval is bound to: files, lines and an excerpt of the diff, escaped", async () => {
      fake();
      const d = deliverer();
      const id = await open();
      const { approval } = await propose(id, { diff: true });
      await drain(d);
      const [msg] = inChat(DEFAULT_CHAT, approval.id);
      expect(msg!.text).toContain(`Change: 1 file, +1 −0`);
      expect(msg!.text).toContain(`apps/${id}.yaml +1 −0`);
      expect(msg!.text).toContain("+replicas: 3 # <b>&</b>");
      expect(msg!.raw).toContain("<pre>");
    });

    it("offers Rebuild on the approval message after the merge failed on a conflict", async () => {
      fake();
      const d = deliverer();
      const svc = approvals();
      const id = await open();
      const { approval } = await propose(id, { conflict: true });
      await drain(d);
      await expect(svc.approve({ approvalId: approval.id }, alice, null)).rejects.toMatchObject({
        code: "gitops.merge_conflict",
      });
      await drain(d);
      const [msg] = inChat(DEFAULT_CHAT, approval.id);
      expect(msg!.text).toContain("Merge failed at");
      expect(msg!.text).toContain("rebuild it on the current base");
      expect(buttonsOf(msg!)).toEqual([
        `v1:a:${approval.id}`,
        `v1:r:${approval.id}`,
        `v1:d:${approval.id}`,
        `v1:b:${approval.id}`,
      ]);
      expect(inChat(DEFAULT_CHAT, id).find((m) => m.message_id !== msg!.message_id)!.text).toContain("merge failed");
    });

    it("sends no approval message for a fix the policy approved; the card tells the story", async () => {
      fake();
      const d = deliverer();
      const svc = approvals();
      const id = await open();
      const { approval } = await propose(id, {
        plan: { skill: "replicas-mismatch-scale", risk: "low", approval: "none" },
      });
      expect(approval.state).toBe("approved");
      expect((await svc.merge(approval.id)).status).toBe("merged");
      await drain(d);
      expect(inChat(DEFAULT_CHAT, approval.id)).toHaveLength(0);
      const [card] = inChat(DEFAULT_CHAT, id);
      expect(card!.text).toContain("Fix applied: waiting for the alert to resolve");
      expect(card!.text).toContain("approved by policy");
      expect(await store.db.selectFrom("deliveries").select("state").where("ref", "=", approval.id).execute()).toEqual([
        { state: "skipped" },
      ]);
    });

    it("an approver's button press merges once and edits the approval message: who, when, no buttons", async () => {
      fake();
      const d = deliverer();
      const svc = approvals();
      const cfg = config();
      const channel = createTelegramChannel({
        store,
        log: silentLogger,
        now: () => clock.now,
        telegram: { ...cfg.telegram, approverIds: [4242] },
        api: new Telegram(TOKEN, { apiRoot: TELEGRAM_API_ROOT }),
        approvals: svc,
        queue,
        kick: () => undefined,
      });
      const id = await open();
      const { approval } = await propose(id);
      await drain(d);
      const [msg] = inChat(DEFAULT_CHAT, approval.id);
      await channel.handleUpdate(
        mock.callbackQuery({
          from: { id: 4242, username: "alice" },
          chat: DEFAULT_CHAT,
          messageId: msg!.message_id,
          data: buttonsOf(msg!)[0]!,
        }),
      );
      await drain(d);
      const edited = mock.message(DEFAULT_CHAT, msg!.message_id)!;
      expect(edited.text).toMatch(
        /Approved by @alice \(tg:4242\) via telegram at 2026-11-20 \d\d:\d\d UTC · merged [0-9a-f]{12}/,
      );
      expect(buttonsOf(edited)).toEqual([]);
      expect(
        await store.db
          .selectFrom("events")
          .select("id")
          .where("incident_id", "=", id)
          .where("type", "=", "pr.merged")
          .execute(),
      ).toHaveLength(1);
    });

    it("edits the approval message when it expires, and the card says the incident went to a person", async () => {
      fake();
      const d = deliverer();
      const id = await open();
      const { approval } = await propose(id);
      await drain(d);
      const [msg] = inChat(DEFAULT_CHAT, approval.id);
      expect(buttonsOf(msg!)).toHaveLength(3);
      clock.now = Number(approval.expires_at) + 1000;
      // Other tests' approvals still pending in this database expire too.
      expect(await expireDueApprovals(store, clock.now)).toBeGreaterThanOrEqual(1);
      expect(
        (await store.db.selectFrom("approvals").select("state").where("id", "=", approval.id).executeTakeFirstOrThrow())
          .state,
      ).toBe("expired");
      await drain(d);
      const edited = mock.message(DEFAULT_CHAT, msg!.message_id)!;
      expect(edited.text).toContain("Expired at");
      expect(edited.text).toContain("without a decision");
      expect(buttonsOf(edited)).toEqual([]);
      expect(inChat(DEFAULT_CHAT, id).find((m) => m.message_id !== msg!.message_id)!.text).toContain(
        "Escalated to a person",
      );
    });

    it("says no action was taken when the alert resolves by itself while the approval waits", async () => {
      fake();
      const d = deliverer();
      const id = await open();
      const { approval } = await propose(id);
      await drain(d);
      await resolveByAlert(id);
      await drain(d);
      const [msg] = inChat(DEFAULT_CHAT, approval.id);
      expect(msg!.text).toContain("No action taken: the alert resolved");
      expect(buttonsOf(msg!)).toEqual([]);
    });

    it("announces openings from NOTIFY_MIN_SEVERITY, and a quieter incident once it needs a person", async () => {
      fake();
      const d = deliverer(config("warning"));
      const info = await open({ severity: "info" });
      const warning = await open({ severity: "warning" });
      await drain(d);
      expect(inChat(DEFAULT_CHAT, info)).toHaveLength(0);
      expect(inChat(DEFAULT_CHAT, warning)).toHaveLength(1);
      expect(await store.db.selectFrom("deliveries").select("state").where("ref", "=", info).execute()).toEqual([
        { state: "skipped" },
      ]);

      await store.db
        .transaction()
        .execute(async (trx) =>
          applyTransition(
            trx,
            store.dialect,
            (await getIncident(trx, info))!,
            "escalate",
            { actor: "pitcrew:analysis", channel: "engine", reason: "no skill matches this incident" },
            clock.now,
          ),
        );
      await drain(d);
      const [card] = inChat(DEFAULT_CHAT, info);
      expect(card!.text).toContain("Escalated to a person — no skill matches this incident");

      const strict = deliverer(config("critical"));
      const quiet = await open({ severity: "warning" });
      await drain(strict);
      expect(inChat(DEFAULT_CHAT, quiet)).toHaveLength(0);
    });

    it("routes by label: the first matching route's chat, else the default chat", async () => {
      fake();
      const d = deliverer();
      const pay = await open({ namespace: "payments" });
      const shop = await open({ namespace: "shop" });
      await drain(d);
      expect(inChat(PAYMENTS_CHAT, pay)).toHaveLength(1);
      expect(inChat(DEFAULT_CHAT, pay)).toHaveLength(0);
      expect(inChat(DEFAULT_CHAT, shop)).toHaveLength(1);
      const { approval } = await propose(pay);
      await drain(d);
      expect(inChat(PAYMENTS_CHAT, approval.id)).toHaveLength(1);
    });

    it("escapes hostile labels, titles and annotations and keeps the message within 4,096 characters", async () => {
      fake();
      const d = deliverer();
      const id = await open({
        title: "<b>checkout</b> & <a href='x'>payments</a>",
        labels: { "<b>": "&", evil: "<script>alert(1)</script>", amp: "&amp;&lt;" },
        annotations: { summary: "<i>&".repeat(60_000), description: "x".repeat(200_000) },
      });
      await drain(d);
      const sends = mock.calls.filter((c) => c.method === "sendMessage");
      expect(sends.map((c) => c.status)).toEqual([200]);
      expect(String(sends[0]!.body.text).length).toBeLessThanOrEqual(4096);
      const [card] = inChat(DEFAULT_CHAT, id);
      expect(card!.text).toContain("<b>checkout</b> & <a href='x'>payments</a>");
      expect(card!.text).toContain("evil=<script>alert(1)</script>");
      expect(card!.text).toContain("amp=&amp;&lt;");
      expect(card!.text).toContain("<i>&<i>&");
    });

    it("tells the default chat once when a scheduled run fails: the schedule, its task and why, escaped", async () => {
      fake();
      const d = deliverer();
      const tasks = createTaskService({
        store,
        log: silentLogger,
        now: () => clock.now,
        onTerminal: scheduleRunHook(store.dialect),
      });
      const { task } = await tasks.create({
        kind: "agent",
        payload: { prompt: "audit" },
        createdBy: "schedule:weekly-audit",
        channel: "schedule",
      });
      const other = await tasks.create({
        kind: "agent",
        payload: { prompt: "audit" },
        createdBy: "mcp:ops",
        channel: "mcp",
      });
      expect(await tasks.fail(task.id, "the agent exited 2: <no lockfile> & no audit", "runner:r1", "runner")).toBe(
        true,
      );
      // A task that no schedule made says nothing when it fails.
      expect(await tasks.fail(other.task.id, "exited 1", "runner:r1", "runner")).toBe(true);
      await drain(d);
      const sent = inChat(DEFAULT_CHAT, "Scheduled run failed");
      expect(sent).toHaveLength(1);
      expect(sent[0]!.text).toContain("weekly-audit");
      expect(sent[0]!.text).toContain(task.id);
      expect(sent[0]!.text).toContain("the agent exited 2: <no lockfile> & no audit");
      expect(mock.calls.filter((c) => c.method === "sendMessage")).toHaveLength(1);
      const events = await store.db
        .selectFrom("events")
        .select(["type", "actor"])
        .where("task_id", "=", task.id)
        .where("type", "=", "schedule.run_failed")
        .execute();
      expect(events).toEqual([{ type: "schedule.run_failed", actor: "schedule:weekly-audit" }]);
    });

    it("without Telegram configured, drops the notices instead of keeping them to send later", async () => {
      fake();
      const off = deliverer({ telegram: undefined, notify: { minSeverity: "warning" } });
      const id = await open();
      expect(await store.db.selectFrom("deliveries").select("state").where("ref", "=", id).execute()).toEqual([
        { state: "pending" },
      ]);
      const r = await off.runOnce();
      expect(r.dropped).toBeGreaterThanOrEqual(1);
      expect(await store.db.selectFrom("deliveries").select("id").where("ref", "=", id).execute()).toEqual([]);
      await off.stop();
      // Configured later: nothing stale goes out.
      await store.db.deleteFrom("settings").where("key", "=", "notify.deliverer").execute();
      await drain(deliverer());
      expect(mock.calls).toEqual([]);
    });

    it("wakes right after a commit that asks for a notice, without waiting for its poll", async () => {
      fake(() => Date.now());
      const d = deliverer(config(), () => Date.now(), 600_000);
      d.start();
      try {
        // The first pass (at start) found nothing; the next poll is ten minutes away.
        await waitFor(
          async () =>
            (await store.db
              .selectFrom("settings")
              .select("key")
              .where("key", "=", "notify.deliverer")
              .executeTakeFirst()) !== undefined,
          5000,
        );
        const id = await open();
        await waitFor(() => inChat(DEFAULT_CHAT, id).length === 1, 5000);
      } finally {
        await d.stop();
      }
    });
  });
}
