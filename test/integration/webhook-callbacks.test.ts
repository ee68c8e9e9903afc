import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildHttpApp } from "../../src/http/app.ts";
import { createMetrics } from "../../src/shared/metrics.ts";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import type { TaskQueue } from "../../src/bus/port.ts";
import { appendEvent } from "../../src/events/repo.ts";
import { newIncidentRow } from "../../src/incidents/repo.ts";
import { applyTransition } from "../../src/incidents/service.ts";
import { newId } from "../../src/shared/ids.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { newDeliveryId, requestDelivery } from "../../src/notify/requests.ts";
import { loadIncidentView } from "../../src/notify/views.ts";
import { renderIncidentCard } from "../../src/notify/incident-card.ts";
import { hashToken, WEBHOOK } from "../../src/webhooks/repo.ts";
import { buildTarget, TargetSpec } from "../../src/webhooks/targets.ts";
import { createClaims, type Claims } from "../../src/webhooks/claims.ts";
import { fixHarness, scaleSkill, uid, type FixHarness } from "../helpers/fixes.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";

// External agents' callbacks over real HTTP (a listening app, fetch): claims and leases, the two
// ways to authenticate (a delivery's bearer token, a Standard Webhooks signature made with the
// target's secret — signed here with the standardwebhooks package, not our signer), replays and
// stale timestamps refused on every replica, results recorded once per idempotency key, and an
// agent's pull request taken through the approval gate and merged on a real bare repository.
// Both stores.

const factories = await storeFactories();
const secret = () => `whsec_${randomBytes(24).toString("base64")}`;
const LEASE_MS = 600_000;

type Reply = { status: number; body: any };

for (const f of factories) {
  describe.skipIf(!f.available)(`agent callbacks on ${f.name}`, () => {
    let store: TestStore;
    let h: FixHarness;
    let queue: TaskQueue;
    let claims: Claims;
    const apps: FastifyInstance[] = [];
    let base: string;
    let replica: string;
    const SECRET = secret();
    const target = `agents-${uid()}`;
    const alice = { subject: "alice", actor: "mcp:alice", channel: "mcp" };

    async function listen(): Promise<string> {
      const spec = TargetSpec.parse({
        name: target,
        url: "https://agents.example.com/hook",
        secret_env: "AGENTS_SECRET",
        events: ["incident.escalated"],
      });
      const registry = {
        get: (n: string) =>
          n === target ? buildTarget(spec, "file", (k) => (k === "AGENTS_SECRET" ? SECRET : undefined)) : undefined,
      };
      const app = await buildHttpApp({
        log: silentLogger,
        store,
        queue,
        metrics: createMetrics(),
        bodyLimit: 1_048_576,
        callbacks: { store, now: () => h.clock.now, claims, targets: registry, leaseTtlMs: LEASE_MS },
      });
      await app.listen({ port: 0, host: "127.0.0.1" });
      apps.push(app);
      return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    }

    beforeAll(async () => {
      store = await f.make();
      h = await fixHarness(store, [scaleSkill()]);
      queue = createMemoryQueue({ log: silentLogger });
      claims = createClaims({
        store,
        log: silentLogger,
        now: () => h.clock.now,
        leaseTtlMs: LEASE_MS,
        gitHost: h.host,
      });
      base = await listen();
      // A second control-plane replica on the same database.
      replica = await listen();
    });
    afterAll(async () => {
      for (const app of apps) await app.close();
      await queue?.close();
      await h?.close();
      await store?.close();
    });

    /** An incident Pitcrew could not fix: escalated (or closed by a failed fix). */
    async function incident(end: "escalated" | "failed" = "escalated"): Promise<{ id: string; fingerprint: string }> {
      const t = h.clock.now;
      const fp = uid();
      const row = newIncidentRow(
        {
          id: newId("inc", t),
          fingerprint: fp,
          dedupe_key: null,
          open_key: `f:${fp}`,
          title: `${fp} is down`,
          source: "alertmanager",
          severity: "critical",
          namespace: "shop",
          service: fp,
          alertname: "AppDown",
          labels: { app: fp },
          annotations: {},
        },
        t,
      );
      await store.db.transaction().execute(async (trx) => {
        await trx.insertInto("incidents").values(row).execute();
        await appendEvent(
          trx,
          store.dialect,
          {
            type: "incident.detected",
            incidentId: row.id,
            actor: "alertmanager",
            channel: "alertmanager",
            reason: "AppDown fired",
            data: {},
            occurredAt: t,
          },
          t,
        );
        const by = { actor: "pitcrew:analysis", channel: "engine" };
        if (end === "escalated")
          await applyTransition(trx, store.dialect, row, "escalate", { ...by, reason: "no skill matches AppDown" }, t);
        else {
          const analyzing = await applyTransition(trx, store.dialect, row, "analysis.started", by, t);
          await applyTransition(
            trx,
            store.dialect,
            analyzing,
            "fix.failed",
            { ...by, reason: "the patch did not apply" },
            t,
          );
        }
      });
      return { id: row.id, fingerprint: fp };
    }

    /** A delivery to the target about the incident, with its bearer token (as the outbound side stores it: hashed). */
    async function delivery(incidentId: string): Promise<{ id: string; token: string }> {
      const token = randomBytes(32).toString("base64url");
      const id = newDeliveryId(h.clock.now);
      await requestDelivery(
        store.db,
        store.dialect,
        {
          id,
          channel: WEBHOOK,
          kind: "incident.escalated",
          ref: newId("evt", h.clock.now),
          target,
          incidentId,
          tokenHash: hashToken(token),
        },
        h.clock.now,
      );
      return { id, token };
    }

    async function post(
      url: string,
      path: string,
      body: unknown,
      headers: Record<string, string> = {},
    ): Promise<Reply> {
      const raw = typeof body === "string" ? body : JSON.stringify(body);
      const r = await fetch(url + path, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: raw,
      });
      return { status: r.status, body: await r.json() };
    }
    const claimsPath = (id: string) => `/api/v1/incidents/${id}/claims`;
    const resultsPath = (id: string) => `/api/v1/incidents/${id}/results`;
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
    /** Standard Webhooks headers for `body`, signed by the reference package. */
    function signed(body: string, o: { secret?: string; id?: string; at?: number } = {}): Record<string, string> {
      const id = o.id ?? `msg_${uid()}`;
      const at = new Date(o.at ?? h.clock.now);
      return {
        "webhook-id": id,
        "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
        "webhook-signature": new Webhook(o.secret ?? SECRET).sign(id, at, body),
      };
    }
    async function claimWith(
      incidentId: string,
      agent: string,
    ): Promise<{ lease: string; token: string; delivery: string }> {
      const d = await delivery(incidentId);
      const r = await post(base, claimsPath(incidentId), { agent_id: agent, delivery_id: d.id }, bearer(d.token));
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      return { lease: r.body.lease_id, token: d.token, delivery: d.id };
    }

    const claimRows = (id: string) =>
      store.db.selectFrom("external_claims").selectAll().where("incident_id", "=", id).orderBy("id").execute();
    const resultRows = (id: string) =>
      store.db
        .withTables<{ agent_results: { incident_id: string; status: string; idempotency_key: string } }>()
        .selectFrom("agent_results")
        .selectAll()
        .where("incident_id", "=", id)
        .execute();
    /** What a refused callback must not change. */
    async function snapshot(id: string) {
      return {
        claims: await claimRows(id),
        results: await resultRows(id),
        events: (await h.events(id)).map((e) => e.id),
        approvals: await h.approvalsOf(id),
        incident: await h.incident(id),
      };
    }

    it("claims an escalated incident with the delivery's bearer token, renews the holder's lease and refuses another agent with 409 while it runs", async () => {
      const inc = await incident();
      const d = await delivery(inc.id);
      const r = await post(base, claimsPath(inc.id), { agent_id: "fixer-1", delivery_id: d.id }, bearer(d.token));
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      const expires = new Date(h.clock.now + LEASE_MS).toISOString();
      expect(r.body).toMatchObject({
        lease_id: expect.stringMatching(/^clm_/),
        incident_id: inc.id,
        agent_id: "fixer-1",
        target,
        expires_at: expires,
        lease_ttl_seconds: 600,
      });
      expect(await claimRows(inc.id)).toEqual([
        expect.objectContaining({
          id: r.body.lease_id,
          agent: "fixer-1",
          target,
          delivery_id: d.id,
          state: "active",
          active_key: inc.id,
          lease_until: h.clock.now + LEASE_MS,
        }),
      ]);
      const [claimed] = await h.eventsOf(inc.id, "agent.claimed");
      expect(claimed).toMatchObject({
        actor: `agent:${target}/fixer-1`,
        channel: "webhook",
        reason: `claimed by agent fixer-1 (target ${target}) until ${expires}`,
      });
      expect(JSON.parse(claimed!.data)).toMatchObject({ leaseId: r.body.lease_id, deliveryId: d.id, via: "bearer" });
      // Announced on the incident's Telegram card.
      expect(renderIncidentCard((await loadIncidentView(store.db, inc.id))!)).toContain(
        `claimed by agent fixer-1 (target ${target}) until ${expires}`,
      );

      const other = await delivery(inc.id);
      const taken = await post(
        base,
        claimsPath(inc.id),
        { agent_id: "fixer-2", delivery_id: other.id },
        bearer(other.token),
      );
      expect(taken.status).toBe(409);
      expect(taken.body.error).toMatchObject({
        code: "claim.held",
        message: `incident ${inc.id} is claimed by agent fixer-1 (target ${target}) until ${expires}`,
      });

      h.clock.now += 60_000;
      const renewed = await post(
        replica,
        claimsPath(inc.id),
        { agent_id: "fixer-1", delivery_id: d.id },
        bearer(d.token),
      );
      expect(renewed.status, JSON.stringify(renewed.body)).toBe(200);
      expect(renewed.body).toMatchObject({
        lease_id: r.body.lease_id,
        expires_at: new Date(h.clock.now + LEASE_MS).toISOString(),
      });
      expect((await claimRows(inc.id)).map((c) => [c.state, Number(c.lease_until)])).toEqual([
        ["active", h.clock.now + LEASE_MS],
      ]);
      expect(await h.eventsOf(inc.id, "agent.lease_renewed")).toHaveLength(1);
    });

    it("gives one lease to two agents claiming at once, on two replicas; the other is told who holds it", async () => {
      const inc = await incident();
      const [d1, d2] = [await delivery(inc.id), await delivery(inc.id)];
      const answers = await Promise.all([
        post(base, claimsPath(inc.id), { agent_id: "racer-1", delivery_id: d1.id }, bearer(d1.token)),
        post(replica, claimsPath(inc.id), { agent_id: "racer-2", delivery_id: d2.id }, bearer(d2.token)),
      ]);
      expect(answers.map((a) => a.status).sort(), JSON.stringify(answers)).toEqual([201, 409]);
      const winner = answers.find((a) => a.status === 201)!.body.agent_id;
      expect(answers.find((a) => a.status === 409)!.body.error).toMatchObject({
        code: "claim.held",
        message: expect.stringContaining(`agent ${winner} `),
      });
      expect((await claimRows(inc.id)).map((c) => [c.agent, c.state])).toEqual([[winner, "active"]]);
      expect(await h.eventsOf(inc.id, "agent.claimed")).toHaveLength(1);
    });

    it("accepts a claim signed with the target's secret; refuses another secret, a tampered body, a timestamp six minutes old and a replayed webhook-id on any replica", async () => {
      const inc = await incident();
      const d = await delivery(inc.id);
      const body = JSON.stringify({ agent_id: "signer", delivery_id: d.id, target });
      const before = await snapshot(inc.id);

      const wrong = await post(base, claimsPath(inc.id), body, signed(body, { secret: secret() }));
      expect([wrong.status, wrong.body.error.code]).toEqual([401, "callback.bad_signature"]);
      const tampered = await post(base, claimsPath(inc.id), body.replace("signer", "forger"), signed(body));
      expect([tampered.status, tampered.body.error.code]).toEqual([401, "callback.bad_signature"]);
      const old = await post(base, claimsPath(inc.id), body, signed(body, { at: h.clock.now - 360_000 }));
      expect([old.status, old.body.error.code]).toEqual([401, "callback.stale_timestamp"]);
      const none = await post(base, claimsPath(inc.id), body);
      expect([none.status, none.body.error.code]).toEqual([401, "callback.unauthenticated"]);
      expect(await snapshot(inc.id)).toEqual(before);

      const headers = signed(body);
      const ok = await post(base, claimsPath(inc.id), body, headers);
      expect(ok.status, JSON.stringify(ok.body)).toBe(201);
      expect(ok.body).toMatchObject({ agent_id: "signer", target });
      // The same request again, to the other replica: the id is remembered in the database.
      const replayed = await post(replica, claimsPath(inc.id), body, headers);
      expect([replayed.status, replayed.body.error.code]).toEqual([409, "callback.replayed"]);
      expect((await claimRows(inc.id)).map((c) => c.agent)).toEqual(["signer"]);
      expect(await h.eventsOf(inc.id, "agent.claimed")).toHaveLength(1);
      expect(await h.eventsOf(inc.id, "agent.lease_renewed")).toHaveLength(0);
      expect(JSON.parse((await h.eventsOf(inc.id, "agent.claimed"))[0]!.data)).toMatchObject({ via: "signature" });
    });

    it("refuses a bearer token that is not the delivery's, and a delivery's token used for another incident", async () => {
      const inc = await incident();
      const elsewhere = await incident();
      const d = await delivery(inc.id);
      const before = [await snapshot(inc.id), await snapshot(elsewhere.id)];
      const wrong = await post(
        base,
        claimsPath(inc.id),
        { agent_id: "a", delivery_id: d.id },
        bearer(randomBytes(32).toString("base64url")),
      );
      expect([wrong.status, wrong.body.error.code]).toEqual([401, "callback.bad_credentials"]);
      const moved = await post(base, claimsPath(elsewhere.id), { agent_id: "a", delivery_id: d.id }, bearer(d.token));
      expect([moved.status, moved.body.error.code]).toEqual([403, "callback.wrong_incident"]);
      expect([await snapshot(inc.id), await snapshot(elsewhere.id)]).toEqual(before);
    });

    it("refuses a result on an expired lease; the expiry is on the timeline and another agent may claim", async () => {
      const inc = await incident();
      const a = await claimWith(inc.id, "slow-agent");
      h.clock.now += LEASE_MS + 1000;
      const late = await post(
        base,
        resultsPath(inc.id),
        { lease_id: a.lease, idempotency_key: "k1", status: "needs_human", summary: "too late" },
        bearer(a.token),
      );
      expect([late.status, late.body.error.code]).toEqual([409, "claim.expired"]);
      expect(await h.eventsOf(inc.id, "agent.result")).toEqual([]);
      expect(await resultRows(inc.id)).toEqual([]);

      expect(await claims.expireLeases()).toBeGreaterThanOrEqual(1);
      const [expired] = await h.eventsOf(inc.id, "agent.lease_expired");
      expect(expired).toMatchObject({
        actor: "pitcrew:webhooks",
        reason: expect.stringContaining(`the lease of agent slow-agent (target ${target}) expired at`),
      });
      expect((await claimRows(inc.id))[0]).toMatchObject({ state: "expired", active_key: null });
      expect(renderIncidentCard((await loadIncidentView(store.db, inc.id))!)).toContain(
        "the lease of agent slow-agent",
      );

      const b = await claimWith(inc.id, "fast-agent");
      expect(b.lease).not.toBe(a.lease);
    });

    it("answers a repeated result with the first answer and records it once; the same key for another result is refused", async () => {
      const inc = await incident();
      const a = await claimWith(inc.id, "worker");
      h.clock.now += 30_000;
      const accepted = await post(
        base,
        resultsPath(inc.id),
        { lease_id: a.lease, idempotency_key: "accept-1", status: "accepted", summary: "looking at it" },
        bearer(a.token),
      );
      expect(accepted.status, JSON.stringify(accepted.body)).toBe(200);
      expect(accepted.body).toMatchObject({
        status: "accepted",
        incident_state: "escalated",
        lease: { state: "active", expires_at: new Date(h.clock.now + LEASE_MS).toISOString() },
        approval_id: null,
      });

      const result = {
        lease_id: a.lease,
        idempotency_key: "final-1",
        status: "needs_human",
        summary: "the database is out of disk; a person must add a <b>volume</b>",
        details: { disk: "98%" },
      };
      const first = await post(base, resultsPath(inc.id), result, bearer(a.token));
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      expect(first.body).toMatchObject({
        lease_id: a.lease,
        incident_id: inc.id,
        status: "needs_human",
        incident_state: "escalated",
        lease: { state: "done" },
      });
      h.clock.now += 5000;
      const again = await post(replica, resultsPath(inc.id), result, bearer(a.token));
      expect(again).toEqual(first);

      const events = await h.eventsOf(inc.id, "agent.result");
      expect(events.map((e) => JSON.parse(e.data).status)).toEqual(["accepted", "needs_human"]);
      expect(events[1]).toMatchObject({
        actor: `agent:${target}/worker`,
        channel: "webhook",
        reason: `agent worker (target ${target}) reported needs_human: the database is out of disk; a person must add a <b>volume</b>`,
      });
      expect((await resultRows(inc.id)).map((r) => r.idempotency_key).sort()).toEqual(["accept-1", "final-1"]);
      expect((await claimRows(inc.id))[0]).toMatchObject({
        state: "done",
        active_key: null,
        result_status: "needs_human",
      });
      // The agent's words are shown as text on the card, never as markup.
      expect(renderIncidentCard((await loadIncidentView(store.db, inc.id))!)).toContain(
        "reported needs_human: the database is out of disk; a person must add a &lt;b&gt;volume&lt;/b&gt;",
      );

      const reused = await post(base, resultsPath(inc.id), { ...result, summary: "something else" }, bearer(a.token));
      expect([reused.status, reused.body.error.code]).toEqual([400, "result.idempotency_key_reused"]);
      const more = await post(base, resultsPath(inc.id), { ...result, idempotency_key: "final-2" }, bearer(a.token));
      expect([more.status, more.body.error.code]).toEqual([409, "claim.finished"]);
      expect(await h.eventsOf(inc.id, "agent.result")).toHaveLength(2);
    });

    it("refuses bad input with 400 and changes nothing", async () => {
      const inc = await incident();
      const a = await claimWith(inc.id, "careful");
      const d = await delivery(inc.id);
      const before = await snapshot(inc.id);
      const cases: Array<[string, unknown, string, string?]> = [
        [claimsPath(inc.id), "{not json", "request.invalid_json"],
        [claimsPath(inc.id), { delivery_id: d.id }, "callback.invalid_body", "agent_id"],
        [claimsPath(inc.id), { agent_id: "has spaces", delivery_id: d.id }, "callback.invalid_body", "agent_id"],
        [
          resultsPath(inc.id),
          { lease_id: a.lease, idempotency_key: "x", status: "done" },
          "callback.invalid_body",
          "status",
        ],
        [
          resultsPath(inc.id),
          { lease_id: a.lease, idempotency_key: "x", status: "pr_created" },
          "callback.invalid_body",
          "pr",
        ],
        [
          resultsPath(inc.id),
          { lease_id: a.lease, idempotency_key: "x", status: "pr_created", pr: { number: -1 } },
          "callback.invalid_body",
          "pr.number",
        ],
        [
          resultsPath(inc.id),
          { lease_id: a.lease, idempotency_key: "x", status: "pr_created", pr: { number: 1, head_sha: "abc123" } },
          "callback.invalid_body",
          "pr.head_sha",
        ],
        [resultsPath(inc.id), { lease_id: a.lease, status: "failed" }, "callback.invalid_body", "idempotency_key"],
      ];
      for (const [path, body, code, where] of cases) {
        const r = await post(base, path, body, bearer(path.endsWith("claims") ? d.token : a.token));
        expect([r.status, r.body.error.code], JSON.stringify(body)).toEqual([400, code]);
        if (where) expect(r.body.error.message.startsWith(`${where}:`), r.body.error.message).toBe(true);
      }
      expect(await snapshot(inc.id)).toEqual(before);
    });

    /** The agent's change: a branch pushed to the GitOps repository and a pull request opened for it. */
    async function agentPull(incidentId: string, content: string) {
      const branch = `agent/${incidentId.toLowerCase()}`;
      const file = `apps/${incidentId.toLowerCase()}.yaml`;
      const sha = h.push(branch, { [file]: content });
      const pr = await h.host.createPullRequest({
        branch,
        base: "main",
        title: `Fix ${incidentId}`,
        body: "written by an external agent",
      });
      return { branch, file, sha, pr };
    }

    it("pr_created: the agent's pull request waits for a person's approval bound to its head and diff; approved, Pitcrew merges it and verifies", async () => {
      const inc = await incident();
      const a = await claimWith(inc.id, "coder");
      const p = await agentPull(inc.id, "replicas: 4\n");
      const result = {
        lease_id: a.lease,
        idempotency_key: "pr-1",
        status: "pr_created",
        summary: "raise replicas to 4",
        pr: { number: p.pr.number, url: p.pr.url, branch: p.branch, head_sha: p.sha },
      };
      const r = await post(base, resultsPath(inc.id), result, bearer(a.token));
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body).toMatchObject({
        status: "pr_created",
        incident_state: "proposed",
        approval_id: expect.stringMatching(/^apr_/),
        lease: { state: "done" },
      });

      const [approval] = await h.approvalsOf(inc.id);
      expect(approval).toMatchObject({
        id: r.body.approval_id,
        state: "pending",
        task_id: null,
        pr_number: p.pr.number,
        pr_branch: p.branch,
        head_sha: p.sha,
        risk: "unknown",
      });
      expect(JSON.parse(approval!.diff_summary!)).toEqual({
        files: [{ path: p.file, added: 1, removed: 0 }],
        added: 1,
        removed: 0,
      });
      expect(approval!.diff_excerpt).toContain("+replicas: 4");
      const [proposed] = await h.eventsOf(inc.id, "incident.proposed");
      expect(proposed).toMatchObject({ actor: `agent:${target}/coder`, channel: "webhook" });
      expect(JSON.parse(proposed!.data)).toMatchObject({
        from: "escalated",
        event: "agent.proposed",
        pr: { number: p.pr.number, sha: p.sha },
      });
      expect(await h.eventsOf(inc.id, "approval.requested")).toHaveLength(1);
      // The repeat gets the same answer and asks for nothing more.
      expect(await post(replica, resultsPath(inc.id), result, bearer(a.token))).toEqual(r);
      expect(await h.approvalsOf(inc.id)).toHaveLength(1);

      const decided = await h.approvals.approve({ approvalId: approval!.id }, alice, "the agent's change looks right");
      expect(decided.merged).toMatchObject({ number: p.pr.number });
      expect(h.show("main", p.file)).toBe("replicas: 4\n");
      expect(h.git("log", "-1", "--format=%B", decided.merged!.sha)).toContain(
        `Approved-by: alice\nApproved-via: mcp\nPitcrew-Incident: ${inc.id}`,
      );
      expect((await h.incident(inc.id)).state).toBe("verifying");
      expect(await h.states(inc.id)).toEqual(["detected", "escalated", "proposed", "approved", "verifying"]);
      expect(await h.eventsOf(inc.id, "pr.merged")).toHaveLength(1);
    });

    it("pr_created is refused, attaching nothing, when the pull request is not at the reported head or does not exist", async () => {
      const inc = await incident();
      const a = await claimWith(inc.id, "hasty");
      const p = await agentPull(inc.id, "replicas: 5\n");
      const before = await snapshot(inc.id);
      const stale = await post(
        base,
        resultsPath(inc.id),
        {
          lease_id: a.lease,
          idempotency_key: "s",
          status: "pr_created",
          pr: { number: p.pr.number, head_sha: "0".repeat(40) },
        },
        bearer(a.token),
      );
      expect([stale.status, stale.body.error.code]).toEqual([409, "result.head_mismatch"]);
      const missing = await post(
        base,
        resultsPath(inc.id),
        { lease_id: a.lease, idempotency_key: "m", status: "pr_created", pr: { number: 999_999 } },
        bearer(a.token),
      );
      expect([missing.status, missing.body.error.code]).toEqual([400, "result.pull_not_found"]);
      expect(await snapshot(inc.id)).toEqual(before);
    });

    it("an incident closed by a failed fix takes the agent's pull request and is open again under its alert's key", async () => {
      const inc = await incident("failed");
      expect((await h.incident(inc.id)).open_key).toBeNull();
      const a = await claimWith(inc.id, "rescuer");
      const p = await agentPull(inc.id, "replicas: 6\n");
      const r = await post(
        base,
        resultsPath(inc.id),
        {
          lease_id: a.lease,
          idempotency_key: "pr",
          status: "pr_created",
          pr: { number: p.pr.number, head_sha: p.sha },
        },
        bearer(a.token),
      );
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(await h.incident(inc.id)).toMatchObject({ state: "proposed", open_key: `f:${inc.fingerprint}` });
      expect((await h.approvalsOf(inc.id))[0]).toMatchObject({ state: "pending", head_sha: p.sha });
    });
  });
}
