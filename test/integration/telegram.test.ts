import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Telegram } from "telegraf";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { createEventIngester } from "../../src/events/ingester.ts";
import { listEvents } from "../../src/events/repo.ts";
import { createLocalGitHost } from "../../src/gitops/local.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { incidentFixHook } from "../../src/incidents/fix-outcome.ts";
import { getIncident, newIncidentRow } from "../../src/incidents/repo.ts";
import { applyTransition } from "../../src/incidents/service.ts";
import { createApprovalService } from "../../src/approvals/service.ts";
import { loadSkills } from "../../src/skills/load.ts";
import { createTelegramChannel } from "../../src/approvals/telegram.ts";
import { buildHttpApp } from "../../src/http/app.ts";
import { createMetrics } from "../../src/shared/metrics.ts";
import { newId } from "../../src/shared/ids.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { enqueueTask } from "../../src/tasks/service.ts";
import { gitSync, makeBareRepo } from "../helpers/git.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { strictMockServer } from "../helpers/msw.ts";
import { createTelegramMock, TELEGRAM_API_ROOT } from "../msw/telegram.ts";

// Telegram as an approvals channel, end to end on both stores: updates arrive through the real
// webhook route (fastify inject, with the secret), the Bot API is the msw fake (every call as
// Telegram would answer it), decisions go through the approvals service, merges land in a real
// bare repository.

const factories = await storeFactories();
const TOKEN = "123456789:AAH-test-token-for-pitcrew-telegram";
const SECRET = "s3cret-webhook-token-0123";
const CHAT = "-1001234567890";
const OTHER_CHAT = "-1009999999999";
const ALICE = { id: 4242, username: "alice", first_name: "Alice" };
const BOB = { id: 4343, username: "bob", first_name: "Bob" };
const MALLORY = { id: 6666, username: "mallory", first_name: "Mallory" };
const uid = () => randomBytes(4).toString("hex");

const clock = { now: Date.now() };
const tg = createTelegramMock({ token: TOKEN, now: () => clock.now });
const server = strictMockServer(...tg.handlers);
const MERGE = { skill: "replicas-mismatch-scale", risk: "medium", approval: "before_merge" };
const SKILLS = loadSkills(new URL("../../skills", import.meta.url).pathname).skills;

beforeAll(() => server.listen());
afterAll(() => server.close());

for (const f of factories) {
  describe.skipIf(!f.available)(`telegram approvals on ${f.name}`, () => {
    let store: TestStore;
    let dir: string;
    let bare: string;
    let host: GitHost;
    let app: FastifyInstance;
    const queue = createMemoryQueue({ log: silentLogger });
    let ingester: ReturnType<typeof createEventIngester>;
    let svc: ReturnType<typeof createApprovalService>;
    let channel: ReturnType<typeof createTelegramChannel>;
    const api = new Telegram(TOKEN, { apiRoot: TELEGRAM_API_ROOT });

    const git = (...args: string[]) => gitSync(dir, "--git-dir", bare, ...args);
    const onMain = (file: string) => git("ls-tree", "--name-only", "main", file).trim() !== "";
    const eventsOf = async (id: string, type: string) =>
      (await listEvents(store.db, { incidentId: id, limit: 1000 })).filter((e) => e.type === type);
    const approvalOf = (id: string) =>
      store.db
        .selectFrom("approvals")
        .selectAll()
        .where("incident_id", "=", id)
        .orderBy("requested_at", "desc")
        .executeTakeFirstOrThrow();
    const refusals = async (approvalId: string | null) =>
      (
        await store.db.selectFrom("events").selectAll().where("type", "=", "approval.refused").orderBy("seq").execute()
      ).filter((e) => JSON.parse(e.data).approvalId === approvalId);
    /** Telegram's webhook call; `secret: null` sends none. */
    const post = (update: unknown, secret: string | null = SECRET) =>
      app.inject({
        method: "POST",
        url: "/webhooks/telegram",
        headers: secret === null ? {} : { "x-telegram-bot-api-secret-token": secret },
        payload: update as object,
      });
    /** What the presser was told (answerCallbackQuery), by query id. */
    const answerTo = (update: { callback_query: { id: string } }) =>
      tg.calls.find((c) => c.method === "answerCallbackQuery" && c.body.callback_query_id === update.callback_query.id);
    const sentSince = (n: number, method = "sendMessage") =>
      tg.calls.slice(n).filter((c) => c.method === method && c.ok);

    /** A fix task's pull request, reported by the runner: a pending merge approval, `proposed`. */
    async function proposed() {
      const now = clock.now;
      const key = uid();
      const row = newIncidentRow(
        {
          id: newId("inc", now),
          fingerprint: key,
          dedupe_key: null,
          open_key: key,
          title: `cart lags <${key}> & more`,
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
      const { id, taskId } = await store.db.transaction().execute(async (trx) => {
        await trx
          .insertInto("incidents")
          .values({
            ...row,
            plan: JSON.stringify({
              ...MERGE,
              params: {},
              rationale: "replicas lag the desired count",
              confidence: 0.8,
              planner: "rules",
            }),
          })
          .execute();
        const by = { actor: "pitcrew:analysis", channel: "engine" };
        let inc = await applyTransition(trx, store.dialect, row, "analysis.started", by, now);
        inc = await applyTransition(trx, store.dialect, inc, "fix.started", by, now);
        const taskId = await enqueueTask(
          trx,
          store.dialect,
          {
            kind: "skill",
            pool: "default",
            payload: { incidentId: row.id, skill: MERGE.skill, approval: MERGE.approval, params: {} },
            incidentId: row.id,
            createdBy: "test",
            channel: "test",
          },
          now,
        );
        return { id: row.id, taskId };
      });
      const branch = `pitcrew/${id.toLowerCase()}-${MERGE.skill}`;
      const work = join(dir, `work-${id}`);
      gitSync(dir, "clone", "--quiet", bare, work);
      gitSync(work, "checkout", "--quiet", "-b", branch);
      const path = `apps/${id}.yaml`;
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
      const approval = await approvalOf(id);
      // The approval message as the notices deliver it: buttons that carry only a reference.
      const msg = await api.sendMessage(CHAT, `Approve the merge of pull request #${pr.number}?`, {
        reply_markup: {
          inline_keyboard: [["a", "r", "d"].map((v) => ({ text: v, callback_data: `v1:${v}:${approval.id}` }))],
        },
      });
      return { id, taskId, number: pr.number, branch, sha, path, approval, messageId: msg.message_id };
    }

    const press = (p: { messageId: number }, from: typeof ALICE, data: string, chat = CHAT) =>
      tg.callbackQuery({ from, chat, messageId: p.messageId, data });

    beforeAll(async () => {
      store = await f.make({ own: true });
      dir = mkdtempSync(join(tmpdir(), "pitcrew-telegram-"));
      bare = makeBareRepo(dir, [{ message: "initial", files: { "apps/cart.yaml": "replicas: 2\n" } }]);
      host = createLocalGitHost({ repoPath: bare });
      ingester = createEventIngester({
        store,
        queue,
        log: silentLogger,
        now: () => clock.now,
        onTerminal: incidentFixHook(store.dialect, { autoApproveMaxRisk: "low" }),
      });
      svc = createApprovalService({
        store,
        log: silentLogger,
        now: () => clock.now,
        skills: () => SKILLS,
        gitHost: host,
        fixPool: "default",
        deleteMergedBranches: true,
        sweep: { stuckAfterMs: 600_000, maxRetries: 2 },
      });
      channel = createTelegramChannel({
        store,
        log: silentLogger,
        now: () => clock.now,
        telegram: {
          token: TOKEN,
          defaultChat: CHAT,
          routes: [{ label: "namespace", value: "payments", chat: "-1005555555555" }],
          approverIds: [ALICE.id, BOB.id],
        },
        api,
        approvals: svc,
        queue,
        kick: () => {},
      });
      app = await buildHttpApp({
        log: silentLogger,
        store,
        queue,
        metrics: createMetrics(),
        bodyLimit: 1_048_576,
        telegram: { channel, secret: SECRET },
      });
    });
    afterAll(async () => {
      await app?.close();
      await queue.close();
      await store?.close();
      rmSync(dir, { recursive: true, force: true });
    });
    beforeEach(() => {
      clock.now = Date.now();
    });

    it("merges the pull request once when an approver presses Approve, and records who through Telegram", async () => {
      const p = await proposed();
      const u = press(p, ALICE, `v1:a:${p.approval.id}`);
      const res = await post(u);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ ok: true, outcome: "handled" });

      const a = await approvalOf(p.id);
      expect(a).toMatchObject({ state: "approved", decided_by: "@alice (tg:4242)", channel: "telegram" });
      expect(a.merged_at).not.toBeNull();
      expect(onMain(p.path)).toBe(true);
      expect(git("log", "-1", "--format=%B", "main")).toContain("Approved-by: @alice (tg:4242)");
      const [approved] = await eventsOf(p.id, "approval.approved");
      expect(approved).toMatchObject({ actor: "telegram:4242", channel: "telegram" });
      expect(JSON.parse(approved!.data)).toMatchObject({
        approvalId: a.id,
        telegram: { userId: 4242, username: "alice", chatId: Number(CHAT) },
      });
      expect(answerTo(u)?.body.text).toBe(`Approved by @alice (tg:4242): merging pull request #${p.number}.`);
      expect((await getIncident(store.db, p.id))!.state).toBe("verifying");

      // The queued merge job that follows finds the merge made: still one merge.
      const [job] = await store.db
        .selectFrom("tasks")
        .selectAll()
        .where("incident_id", "=", p.id)
        .where("kind", "=", "approval.merge")
        .execute();
      expect(
        await svc.jobs["approval.merge"]!.run(JSON.parse(job!.payload), {
          taskId: job!.id,
          incidentId: p.id,
          attempt: 1,
        }),
      ).toMatchObject({ status: "merged" });
      expect(await eventsOf(p.id, "pr.merged")).toHaveLength(1);
      expect(
        git("rev-list", "--merges", "main")
          .trim()
          .split("\n")
          .filter((l) => l && git("log", "-1", "--format=%B", l).includes(`Pitcrew-Incident: ${p.id}`)),
      ).toHaveLength(1);
    });

    it("refuses a stranger's press, audits it with who tried, and changes nothing", async () => {
      const p = await proposed();
      const u = press(p, MALLORY, `v1:a:${p.approval.id}`);
      expect((await post(u)).statusCode).toBe(200);

      expect(await approvalOf(p.id)).toMatchObject({ state: "pending", decided_by: null });
      expect((await getIncident(store.db, p.id))!.state).toBe("proposed");
      expect(onMain(p.path)).toBe(false);
      expect(
        await store.db
          .selectFrom("tasks")
          .select("id")
          .where("incident_id", "=", p.id)
          .where("kind", "=", "approval.merge")
          .execute(),
      ).toHaveLength(0);
      const [refused] = await refusals(p.approval.id);
      expect(refused).toMatchObject({
        incident_id: p.id,
        actor: "telegram:6666",
        channel: "telegram",
        reason: "@mallory (tg:6666) is not an approver (TELEGRAM_APPROVER_IDS)",
      });
      expect(JSON.parse(refused!.data)).toMatchObject({
        userId: 6666,
        username: "mallory",
        chatId: Number(CHAT),
        callbackData: `v1:a:${p.approval.id}`,
      });
      expect(answerTo(u)?.body).toMatchObject({
        text: "Refused: @mallory (tg:6666) is not an approver (TELEGRAM_APPROVER_IDS)",
        show_alert: true,
      });
    });

    it("refuses a press from a chat that is not configured, even by an approver", async () => {
      const p = await proposed();
      const u = press(p, ALICE, `v1:a:${p.approval.id}`, OTHER_CHAT);
      expect((await post(u)).statusCode).toBe(200);
      expect((await approvalOf(p.id)).state).toBe("pending");
      expect((await refusals(p.approval.id)).map((e) => e.reason)).toEqual([
        "this chat is not allowed to decide approvals",
      ]);
      expect(answerTo(u)?.body.text).toBe("Refused: this chat is not allowed to decide approvals");
    });

    it("merges once when two approvers press at the same time; the second is told who decided", async () => {
      const p = await proposed();
      const first = press(p, ALICE, `v1:a:${p.approval.id}`);
      const second = press(p, BOB, `v1:a:${p.approval.id}`);
      const answers = await Promise.all([post(first), post(second)]);
      expect(answers.map((r) => r.statusCode)).toEqual([200, 200]);

      const a = await approvalOf(p.id);
      expect(a.state).toBe("approved");
      expect(await eventsOf(p.id, "approval.approved")).toHaveLength(1);
      expect(await eventsOf(p.id, "pr.merged")).toHaveLength(1);
      expect(
        await store.db
          .selectFrom("tasks")
          .select("id")
          .where("incident_id", "=", p.id)
          .where("kind", "=", "approval.merge")
          .execute(),
      ).toHaveLength(1);
      const winner = a.decided_by === "@alice (tg:4242)" ? first : second;
      const loser = winner === first ? second : first;
      expect(answerTo(winner)?.body.text).toMatch(/^Approved by /);
      expect(answerTo(loser)?.body.text).toContain(`already decided by ${a.decided_by} via telegram`);
      const [refused] = await refusals(p.approval.id);
      expect(refused!.actor).toBe(`telegram:${loser.callback_query.from.id}`);
    });

    it("refuses forged, unknown and stale buttons and audits each", async () => {
      const p = await proposed();
      const forged = [
        `v2:a:${p.approval.id}`,
        `v1:x:${p.approval.id}`,
        `v1:a:${p.approval.id}:extra`,
        "v1:a:../../etc/passwd",
        `v1:a:apr_${"A".repeat(60)}`,
        "approve everything",
      ];
      for (const data of forged) {
        const u = press(p, ALICE, data);
        expect((await post(u)).statusCode).toBe(200);
        expect(answerTo(u)?.body.text).toBe("Refused: this button is not valid (forged, or from an older message).");
      }
      expect(await refusals(null)).toEqual(
        expect.arrayContaining(
          forged.map((d) =>
            expect.objectContaining({
              actor: "telegram:4242",
              data: expect.stringContaining(JSON.stringify(d.slice(0, 128))),
            }),
          ),
        ),
      );

      const unknown = press(p, ALICE, "v1:a:apr_01JUNKNOWNAPPROVAL000000000");
      await post(unknown);
      expect(answerTo(unknown)?.body.text).toBe("Refused: approval apr_01JUNKNOWNAPPROVAL000000000 does not exist");
      expect(await refusals("apr_01JUNKNOWNAPPROVAL000000000")).toHaveLength(1);

      // Stale: the approval expired before the press.
      clock.now = Number(p.approval.expires_at) + 1000;
      const stale = press(p, ALICE, `v1:a:${p.approval.id}`);
      await post(stale);
      expect(answerTo(stale)?.body.text).toMatch(new RegExp(`^Refused: approval ${p.approval.id} expired at `));
      expect(await approvalOf(p.id)).toMatchObject({ state: "pending", decided_by: null });
      expect(onMain(p.path)).toBe(false);
    });

    it("answers 401 and reads nothing when the webhook secret is missing or wrong", async () => {
      const p = await proposed();
      const u = press(p, ALICE, `v1:a:${p.approval.id}`);
      const calls = tg.calls.length;
      for (const secret of [null, "", "wrong-secret-value-0000", `${SECRET}x`, SECRET.slice(0, -1)]) {
        const res = await post(u, secret);
        expect([secret, res.statusCode]).toEqual([secret, 401]);
        expect(res.json().error.code).toBe("telegram.bad_secret");
      }
      expect(tg.calls.length).toBe(calls);
      expect((await approvalOf(p.id)).state).toBe("pending");
      expect(
        await store.db
          .selectFrom("telegram_updates")
          .select("update_id")
          .where("update_id", "=", u.update_id)
          .execute(),
      ).toHaveLength(0);
      expect(
        await store.db
          .selectFrom("events")
          .select("id")
          .where("actor", "=", "telegram:4242")
          .where("incident_id", "=", p.id)
          .execute(),
      ).toHaveLength(0);
    });

    it("handles an update Telegram sends again only once", async () => {
      const p = await proposed();
      const u = press(p, MALLORY, `v1:r:${p.approval.id}`);
      expect((await post(u)).json().outcome).toBe("handled");
      expect((await post(u)).json().outcome).toBe("duplicate");
      expect(await refusals(p.approval.id)).toHaveLength(1);
      expect(
        tg.calls.filter((c) => c.method === "answerCallbackQuery" && c.body.callback_query_id === u.callback_query.id),
      ).toHaveLength(1);
    });

    it("answers a Details press with the plan and the pull request, escaped", async () => {
      const p = await proposed();
      const before = tg.calls.length;
      const u = press(p, BOB, `v1:d:${p.approval.id}`);
      await post(u);
      const [sent] = sentSince(before);
      expect(sent!.body.chat_id).toBe(Number(CHAT));
      const shown = tg.message(CHAT, (sent!.result as { message_id: number }).message_id)!.text;
      expect(shown).toContain(`Incident ${p.id} — proposed`);
      expect(shown).toContain(`cart lags <`);
      expect(shown).toContain("Plan: replicas-mismatch-scale (medium risk), by rules, confidence 80%");
      expect(shown).toContain("replicas lag the desired count");
      expect(shown).toContain(`Pull request #${p.number}`);
      expect(shown).toContain(`Approval ${p.approval.id} (medium risk): pending, expires `);
      expect(answerTo(u)?.body.text).toBe("Details sent below.");
      expect((await approvalOf(p.id)).state).toBe("pending");
    });

    it("asks for a reason on Reject and records the approver's reply as the rejection", async () => {
      const p = await proposed();
      const before = tg.calls.length;
      const u = press(p, ALICE, `v1:r:${p.approval.id}`);
      await post(u);
      const [prompt] = sentSince(before);
      expect(prompt!.body.reply_markup).toMatchObject({ force_reply: true, selective: true });
      expect(prompt!.body.text).toContain("@alice, reply to this message with the reason to reject");
      const promptId = (prompt!.result as { message_id: number }).message_id;
      expect(answerTo(u)?.body.text).toBe("Reply to my message with the reason to reject.");
      expect((await approvalOf(p.id)).state).toBe("pending");

      // Someone else's reply does not decide.
      await post(tg.textMessage({ from: BOB, chat: CHAT, text: "fine by me", replyTo: promptId }));
      expect((await approvalOf(p.id)).state).toBe("pending");

      await post(
        tg.textMessage({ from: ALICE, chat: CHAT, text: "wrong fix: the <limit> is the problem", replyTo: promptId }),
      );
      expect(await approvalOf(p.id)).toMatchObject({
        state: "rejected",
        decided_by: "@alice (tg:4242)",
        channel: "telegram",
        reason: "wrong fix: the <limit> is the problem",
      });
      const inc = (await getIncident(store.db, p.id))!;
      expect(inc.state).toBe("rejected");
      const [rejected] = await eventsOf(p.id, "approval.rejected");
      expect(JSON.parse(rejected!.data)).toMatchObject({ telegram: { userId: 4242, username: "alice" } });
      expect((await host.getPullRequest(p.number))!.state).toBe("closed");
      expect(
        await store.db
          .selectFrom("telegram_prompts")
          .select("message_id")
          .where("approval_id", "=", p.approval.id)
          .execute(),
      ).toHaveLength(0);
      const confirm = tg.messages(CHAT).at(-1)!;
      expect(confirm.text).toBe(`Rejected ${p.approval.id} by @alice (tg:4242): wrong fix: the <limit> is the problem`);
    });

    it("rebuilds on Rebuild after a merge conflict: the old pull request closed, the fix queued again", async () => {
      const p = await proposed();
      // Someone else writes the same file on main: the pull request no longer merges.
      const work = join(dir, `conflict-${p.id}`);
      gitSync(dir, "clone", "--quiet", bare, work);
      mkdirSync(join(work, "apps"), { recursive: true });
      writeFileSync(join(work, p.path), "replicas: 9 # by hand\n");
      gitSync(work, "add", ".");
      gitSync(work, "commit", "--quiet", "-m", "by hand");
      gitSync(work, "push", "--quiet", "origin", "HEAD:main");
      await post(press(p, ALICE, `v1:a:${p.approval.id}`));
      expect(await approvalOf(p.id)).toMatchObject({ state: "pending", merged_at: null });
      expect((await eventsOf(p.id, "approval.merge_failed")).map((e) => JSON.parse(e.data).code)).toEqual([
        "gitops.merge_conflict",
      ]);

      const stranger = press(p, MALLORY, `v1:b:${p.approval.id}`);
      await post(stranger);
      expect(answerTo(stranger)?.body.text).toBe(
        "Refused: @mallory (tg:6666) is not an approver (TELEGRAM_APPROVER_IDS)",
      );
      expect((await getIncident(store.db, p.id))!.state).toBe("proposed");

      const u = press(p, BOB, `v1:b:${p.approval.id}`);
      await post(u);
      const fix = await store.db
        .selectFrom("tasks")
        .selectAll()
        .where("incident_id", "=", p.id)
        .where("kind", "=", "skill")
        .where("id", "!=", p.taskId)
        .executeTakeFirstOrThrow();
      expect(answerTo(u)?.body.text).toBe(
        `Rebuilding (fix task ${fix.id}): the fix runs again on the current base; a new pull request and approval follow.`,
      );
      expect(
        await store.db.selectFrom("approvals").selectAll().where("id", "=", p.approval.id).executeTakeFirstOrThrow(),
      ).toMatchObject({ state: "cancelled", decided_by: "@bob (tg:4343)", channel: "telegram" });
      expect((await getIncident(store.db, p.id))!.state).toBe("fixing");
      expect((await host.getPullRequest(p.number))!.state).toBe("closed");
    });

    describe("commands", () => {
      /** Sends a command as `from` in `chat`; returns the bot's replies to it (as users see them). */
      async function command(text: string, from: typeof ALICE = ALICE, chat = CHAT): Promise<string[]> {
        const before = tg.calls.length;
        const u = tg.textMessage({ from, chat, text });
        expect((await post(u)).statusCode).toBe(200);
        return sentSince(before).map(
          (c) => tg.message(String(c.body.chat_id), (c.result as { message_id: number }).message_id)!.text,
        );
      }

      it("/help answers anyone, anywhere, with their user id and the chat id", async () => {
        const [text] = await command("/help", MALLORY, OTHER_CHAT);
        expect(text).toContain("/approve <id>");
        expect(text).toContain(
          `Your Telegram user id: 6666 (not in TELEGRAM_APPROVER_IDS). This chat's id: ${OTHER_CHAT} (not a configured chat).`,
        );
        expect((await command("/start", ALICE))[0]).toContain("Your Telegram user id: 4242 (an approver).");
      });

      it("stays quiet in chats it was not configured for, and refuses non-approvers (auditing decisions)", async () => {
        const p = await proposed();
        expect(await command("/status", ALICE, OTHER_CHAT)).toEqual([]);
        expect(await command(`/approve ${p.approval.id}`, ALICE, OTHER_CHAT)).toEqual([]);
        expect(await command("/status", MALLORY)).toEqual([
          "Refused: you are not an approver. Your Telegram user id is 6666; an admin can add it to TELEGRAM_APPROVER_IDS.",
        ]);
        await command(`/approve ${p.approval.id}`, MALLORY);
        expect((await approvalOf(p.id)).state).toBe("pending");
        expect((await refusals(p.approval.id)).map((e) => [e.actor, e.reason])).toEqual([
          ["telegram:6666", "@mallory (tg:6666) is not an approver (TELEGRAM_APPROVER_IDS)"],
        ]);
      });

      it("/status reports health, the pause switch, open incidents and pending approvals", async () => {
        const p = await proposed();
        const [text] = await command("/status");
        expect(text).toMatch(
          /^Pitcrew \S+, embedded\ndatabase: ok · queue: ok\nautomation running\nopen incidents: \d+ \(.*\d+ proposed.*\)\npending approvals: \d+$/,
        );
        const pending = Number(/pending approvals: (\d+)/.exec(text!)![1]);
        await command(`/reject ${p.approval.id}`);
        expect(Number(/pending approvals: (\d+)/.exec((await command("/status@pitcrew_test_bot"))[0]!)![1])).toBe(
          pending - 1,
        );
        expect(await command("/status@some_other_bot")).toEqual([]);
      });

      it("/incidents lists the open ones and /incident shows one with its plan, approval and latest steps", async () => {
        const p = await proposed();
        const [list] = await command("/incidents");
        expect(list).toContain(`${p.id} proposed · warning · cart lags <`);
        const [one] = await command(`/incident ${p.id}`);
        expect(one).toContain(`Incident ${p.id} — proposed`);
        expect(one).toContain("Plan: replicas-mismatch-scale (medium risk)");
        expect(one).toContain(`Approval ${p.approval.id} (medium risk): pending`);
        expect(one).toContain("incident.proposed: pull request #");
        expect(await command("/incident inc_NOPE")).toEqual(["No incident inc_NOPE."]);
      });

      it("/approve <incident> merges its pending approval as the person who asked", async () => {
        const p = await proposed();
        expect(await command(`/approve ${p.id}`, BOB)).toEqual([
          `Approved by @bob (tg:4343): merging pull request #${p.number}.`,
        ]);
        expect(await approvalOf(p.id)).toMatchObject({
          state: "approved",
          decided_by: "@bob (tg:4343)",
          channel: "telegram",
        });
        expect(onMain(p.path)).toBe(true);
        const [again] = await command(`/approve ${p.approval.id}`, ALICE);
        expect(again).toMatch(
          /^Refused: approval \S+ is already approved: already decided by @bob \(tg:4343\) via telegram at /,
        );
        expect(await command("/approve nonsense")).toEqual(["Usage: /approve <approval or incident id>"]);
      });

      it("/reject <approval> [reason] rejects with the reason and closes the pull request", async () => {
        const p = await proposed();
        expect(await command(`/reject ${p.approval.id} not during the freeze`)).toEqual([
          `Rejected ${p.approval.id} by @alice (tg:4242): not during the freeze`,
        ]);
        expect(await approvalOf(p.id)).toMatchObject({
          state: "rejected",
          decided_by: "@alice (tg:4242)",
          reason: "not during the freeze",
        });
        expect((await host.getPullRequest(p.number))!.state).toBe("closed");
      });

      it("/pause and /resume flip the pause switch, recorded as the person", async () => {
        expect(await command("/pause deploy freeze")).toEqual([
          "Automation paused: incidents are recorded but not analysed or fixed until /resume.",
        ]);
        const paused = await store.db
          .selectFrom("events")
          .selectAll()
          .where("type", "=", "system.paused")
          .orderBy("seq", "desc")
          .executeTakeFirstOrThrow();
        expect(paused).toMatchObject({ actor: "telegram:4242", channel: "telegram", reason: "deploy freeze" });
        expect((await command("/status"))[0]).toContain("automation PAUSED by telegram:4242: deploy freeze");
        expect((await command("/resume", BOB))[0]).toMatch(
          /^Automation resumed; analysis queued again for \d+ waiting incident\(s\)\.$/,
        );
        expect((await command("/status"))[0]).toContain("automation running");
        const resumed = await store.db
          .selectFrom("events")
          .selectAll()
          .where("type", "=", "system.resumed")
          .orderBy("seq", "desc")
          .executeTakeFirstOrThrow();
        expect(resumed.actor).toBe("telegram:4343");
      });
    });
  });
}
