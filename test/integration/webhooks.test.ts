import { createHash, randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { createRemoteJWKSet, flattenedVerify } from "jose";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { createMcpServer } from "../../src/mcp/server.ts";
import type { McpDeps, Scope } from "../../src/mcp/tool.ts";
import { buildHttpApp } from "../../src/http/app.ts";
import { createMetrics } from "../../src/shared/metrics.ts";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { createNotices } from "../../src/notify/service.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { FANOUT, getWebhookDelivery, WEBHOOK } from "../../src/webhooks/repo.ts";
import { createWebhooks, listTargets, redeliver, rotateSigningKey } from "../../src/webhooks/service.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { scheduleRunHook } from "../../src/schedules/run-outcome.ts";
import { openIncident } from "../helpers/incidents.ts";
import { moveIncident, startReceiver, targetDir, type Receiver } from "../helpers/webhook-receiver.ts";

// Signed webhooks end to end: events on the timeline become deliveries, sent by the deliverer to a
// real receiver on loopback that checks them with independent verifiers (the standardwebhooks
// package, and jose with the JWKS the HTTP app publishes); failures on purpose for retries, dead,
// redeliver, 410, a restart and two replicas. Real time, with a short retry schedule.

const factories = await storeFactories();
const uid = () => randomBytes(4).toString("hex");
const secret = () => `whsec_${randomBytes(24).toString("base64")}`;
const DELAYS = [100, 200, 300, 400, 500];

for (const f of factories) {
  describe.skipIf(!f.available)(`signed webhooks on ${f.name}`, () => {
    let store: TestStore;
    let rx: Receiver;
    let app: FastifyInstance;
    let publicUrl = "";
    const running: Array<{ stop(): Promise<void> }> = [];
    const dirs: Array<{ remove(): void }> = [];

    beforeAll(async () => {
      // A private database: a deliverer serves every row of its database.
      store = await f.make({ own: true });
      rx = await startReceiver();
      // The control plane's HTTP app, for /.well-known/jwks.json.
      app = await buildHttpApp({
        log: silentLogger,
        store,
        queue: createMemoryQueue({ log: silentLogger }),
        metrics: createMetrics(),
        bodyLimit: 1 << 20,
        jwks: { store, now: Date.now },
      });
      await app.listen({ port: 0, host: "127.0.0.1" });
      publicUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    });
    afterEach(async () => {
      for (const r of running.splice(0)) await r.stop();
      for (const d of dirs.splice(0)) d.remove();
      rx.answer(() => ({ status: 204 }));
      rx.received.length = 0;
      // Each test starts with nothing pending, no disabled target and the lease free.
      await store.db.deleteFrom("deliveries").execute();
      await store.db.deleteFrom("webhook_targets").execute();
      await store.db.deleteFrom("settings").where("key", "=", "notify.deliverer").execute();
    });
    afterAll(async () => {
      await app?.close();
      await rx?.stop();
      await store?.close();
    });

    /** A control plane's webhook side: its targets, and its deliverer (started unless asked not to). */
    function controlPlane(
      files: Record<string, string>,
      env: Record<string, string>,
      opts: {
        start?: boolean;
        owner?: string;
        leaseMs?: number;
        timeoutMs?: number;
        dir?: string;
        /** How far this replica's clock is ahead of the others'. */
        aheadMs?: number;
      } = {},
    ) {
      const now = () => Date.now() + (opts.aheadMs ?? 0);
      const dir =
        opts.dir ??
        (() => {
          const d = targetDir(files);
          dirs.push(d);
          return d.dir;
        })();
      const config = {
        publicUrl,
        webhooks: { dir, allowPrivate: true, timeoutMs: opts.timeoutMs ?? 2000, leaseTtlMs: 1_800_000 },
      };
      const webhooks = createWebhooks(
        config,
        { store, log: silentLogger, now, env: (n) => env[n] },
        { retryDelaysMs: DELAYS },
      );
      const deliverer = createNotices(
        { telegram: undefined, notify: { minSeverity: "warning" } },
        {
          store,
          log: silentLogger,
          now,
          owner: opts.owner ?? `cp-${uid()}`,
          settings: { pollMs: 50, leaseMs: opts.leaseMs ?? 5000 },
        },
        { [WEBHOOK]: webhooks.sender },
      );
      if (opts.start !== false) {
        deliverer.start();
        running.push(deliverer);
      }
      return { webhooks, deliverer, dir };
    }

    const target = (name: string, path: string, extra = "") =>
      `name: ${name}\nurl: ${rx.url(path)}\nsecret_env: ${name.toUpperCase().replace(/-/g, "_")}_SECRET\n${extra}`;
    // The deliveries to one target (not the fan-out rows, whose target lists where they fanned out to).
    const deliveriesTo = (name: string) =>
      store.db
        .selectFrom("deliveries")
        .selectAll()
        .where("channel", "=", WEBHOOK)
        .where("kind", "!=", FANOUT)
        .where("target", "=", name)
        .orderBy("id")
        .execute();
    const bodyOf = (r: { body: string }) => JSON.parse(r.body) as Record<string, any>;

    it("sends subscribed events to each target, verified by the standardwebhooks package, with the incident, plan, diagnosis, timeline link and a delivery block", async () => {
      const s = secret();
      const path = `/sre-${uid()}`;
      controlPlane(
        {
          "sre.yaml": target(
            "sre",
            path,
            "events: [incident.escalated]\nnamespaces: [shop]\nheaders:\n  X-Team: sre\n",
          ),
          "other-ns.yaml": target(
            "other-ns",
            `${path}-other`,
            "events: [incident.escalated]\nnamespaces: [payments]\n",
          ),
          "created.yaml": target("created", `${path}-created`, "events: [incident.created]\n"),
        },
        { SRE_SECRET: s, OTHER_NS_SECRET: s, CREATED_SECRET: s },
      );
      const id = await openIncident(store, { namespace: "shop" });
      await store.db
        .updateTable("incidents")
        .set({
          plan: JSON.stringify({
            skill: "rollback",
            rationale: "a bad image rolled out",
            confidence: 0.8,
            planner: "rules",
          }),
        })
        .where("id", "=", id)
        .execute();
      await moveIncident(store, id, "escalate", "no skill could fix it");

      await waitFor(() => rx.at(path).length === 1 && rx.at(`${path}-created`).length === 1, 10_000);
      const [req] = rx.at(path);
      // The reference verifier accepts it, and the body is the incident's escalation.
      const body = new Webhook(s).verify(req!.body, req!.headers as Record<string, string>) as Record<string, any>;
      expect(body.type).toBe("incident.escalated");
      expect(body.event).toMatchObject({ type: "incident.escalated", reason: "no skill could fix it" });
      expect(body.incident).toMatchObject({
        id,
        state: "escalated",
        namespace: "shop",
        url: `${publicUrl}/incidents/${id}`,
      });
      expect(body.plan).toMatchObject({ skill: "rollback", rationale: "a bad image rolled out" });
      expect(body.diagnosis.summary).toBe("no skill could fix it");
      expect(body.diagnosis.timeline.map((t: { type: string }) => t.type)).toEqual([
        "incident.detected",
        "incident.escalated",
      ]);
      expect(req!.headers["x-team"]).toBe("sre");
      expect(req!.headers["content-type"]).toBe("application/json");

      // The delivery block: the callbacks, the lease, and a token whose hash is all that is stored.
      const d = body.delivery;
      expect(d).toMatchObject({
        id: req!.headers["webhook-id"],
        target: "sre",
        claim_url: `${publicUrl}/api/v1/incidents/${id}/claims`,
        result_url: `${publicUrl}/api/v1/incidents/${id}/results`,
        lease_ttl_seconds: 1800,
      });
      expect(d.token).toMatch(/^pcd_[\w-]{43}$/);
      // The sender records the answer after the receiver has it: wait for that, not for the receiver.
      await expect.poll(async () => (await getWebhookDelivery(store.db, d.id))?.state).toBe("sent");
      const stored = await getWebhookDelivery(store.db, d.id);
      expect(stored).toMatchObject({
        id: d.id,
        target: "sre",
        incidentId: id,
        eventType: "incident.escalated",
        state: "sent",
        tokenHash: createHash("sha256").update(d.token).digest("hex"),
      });
      const row = await store.db.selectFrom("deliveries").selectAll().where("id", "=", d.id).executeTakeFirstOrThrow();
      expect(row.payload).not.toContain(d.token);
      expect(row.last_status).toBe(204);

      // incident.created went to its subscriber; the other namespace's target got nothing.
      expect(bodyOf(rx.at(`${path}-created`)[0]!).type).toBe("incident.created");
      expect(rx.at(`${path}-other`)).toHaveLength(0);
      expect(await deliveriesTo("other-ns")).toHaveLength(0);
    });

    it("closes the fan-out rows of events no target subscribes to in one update per pass, without claiming an attempt, and fans out the others", async () => {
      const path = `/few-${uid()}`;
      const { deliverer } = controlPlane(
        { "few.yaml": target("few", path, "events: [incident.escalated]\n") },
        { FEW_SECRET: secret() },
        { start: false },
      );
      // A storm's incidents: each asks for an incident.created fan-out, which nobody wants here. The
      // old way claimed an attempt of each (attempts 1) before finding no subscriber.
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push(await openIncident(store));
      await moveIncident(store, ids[0]!, "escalate", "no skill could fix it");
      const r = await deliverer.runOnce();
      expect(r.skipped).toBe(5);
      const fanOuts = await store.db
        .selectFrom("deliveries")
        .selectAll()
        .where("channel", "=", WEBHOOK)
        .where("kind", "=", FANOUT)
        .execute();
      const created = fanOuts.filter((d) => JSON.parse(d.payload!).event === "incident.created");
      expect(created).toHaveLength(5);
      for (const d of created)
        expect(d).toMatchObject({
          state: "skipped",
          attempts: 0,
          pending_key: null,
          last_error: "no target subscribes to incident.created",
        });
      // The escalation went the usual way: fanned out to its subscriber, and sent.
      const escalated = fanOuts.filter((d) => JSON.parse(d.payload!).event === "incident.escalated");
      expect(escalated.map((d) => d.state)).not.toContain("skipped");
      await deliverer.runOnce();
      await waitFor(() => rx.at(path).length === 1, 10_000);
      expect(bodyOf(rx.at(path)[0]!).incident.id).toBe(ids[0]);
    });

    it("signs with both secrets while one is rotated, so a receiver holding either verifies", async () => {
      const [next, prev] = [secret(), secret()];
      const path = `/rot-${uid()}`;
      controlPlane({ "rot.yaml": target("rot", path, "events: ['*']\n") }, { ROT_SECRET: `${next} ${prev}` });
      await openIncident(store);
      await waitFor(() => rx.at(path).length === 1, 10_000);
      const [req] = rx.at(path);
      expect(String(req!.headers["webhook-signature"]).split(" ")).toHaveLength(2);
      for (const s of [next, prev])
        expect(new Webhook(s).verify(req!.body, req!.headers as Record<string, string>)).toMatchObject({
          type: "incident.created",
        });
      expect(() => new Webhook(secret()).verify(req!.body, req!.headers as Record<string, string>)).toThrow(
        /No matching signature/,
      );
    });

    it("signs JWS targets with an Ed25519 key that jose verifies from the published JWKS, across a key rotation", async () => {
      const path = `/jws-${uid()}`;
      controlPlane(
        {
          "jws.yaml": `name: jws\nurl: ${rx.url(path)}\nevents: [incident.created, incident.escalated]\nsigning: jws\n`,
        },
        {},
      );
      const jwks = createRemoteJWKSet(new URL(`${publicUrl}/.well-known/jwks.json`), { cooldownDuration: 0 });
      const check = async (req: { body: string; headers: Record<string, unknown> }) => {
        const [protectedHeader, empty, signature] = String(req.headers["webhook-jws"]).split(".");
        expect(empty).toBe("");
        const v = await flattenedVerify(
          { protected: protectedHeader!, payload: req.body, signature: signature! },
          jwks,
        );
        expect(v.protectedHeader).toMatchObject({
          alg: "EdDSA",
          "webhook-id": req.headers["webhook-id"],
          "webhook-timestamp": Number(req.headers["webhook-timestamp"]),
        });
        return v.protectedHeader!.kid!;
      };
      const id = await openIncident(store);
      await waitFor(() => rx.at(path).length === 1, 10_000);
      const first = rx.at(path)[0]!;
      expect(first.headers["webhook-signature"]).toBeUndefined();
      const kid1 = await check(first);
      // A changed body does not verify.
      await expect(
        check({ ...first, body: first.body.replace("incident.created", "incident.resolved") }),
      ).rejects.toThrow(/signature verification failed/);

      const rotated = await rotateSigningKey({ store, now: Date.now });
      expect(rotated.retired).toBe(kid1);
      // A fresh control plane reads the new key (a running one does within a minute).
      for (const r of running.splice(0)) await r.stop();
      controlPlane(
        {
          "jws.yaml": `name: jws\nurl: ${rx.url(path)}\nevents: [incident.created, incident.escalated]\nsigning: jws\n`,
        },
        {},
      );
      await moveIncident(store, id, "escalate", "over to the agents");
      await waitFor(() => rx.at(path).length === 2, 10_000);
      expect(await check(rx.at(path)[1]!)).toBe(rotated.kid);
      // The retired public key is still published: the first delivery still verifies.
      const published = (await (await fetch(`${publicUrl}/.well-known/jwks.json`)).json()) as {
        keys: Array<{ kid: string; d?: string }>;
      };
      expect(published.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([kid1, rotated.kid]));
      expect(published.keys.every((k) => k.d === undefined)).toBe(true);
      expect(await check(first)).toBe(kid1);
    });

    it("retries 503, 429 and 408 on the schedule with the same body and webhook-id, then delivers", async () => {
      const path = `/retry-${uid()}`;
      rx.answer((_r, n) => ({ status: [503, 429, 408][n - 1] ?? 200 }));
      controlPlane({ "retry.yaml": target("retry", path, "events: [incident.created]\n") }, { RETRY_SECRET: secret() });
      await openIncident(store);
      await waitFor(async () => (await deliveriesTo("retry"))[0]?.state === "sent", 10_000);
      const reqs = rx.at(path);
      expect(reqs.map((r) => r.headers["webhook-id"])).toEqual(Array(4).fill(reqs[0]!.headers["webhook-id"]));
      expect(new Set(reqs.map((r) => r.body)).size).toBe(1);
      // Waits of the schedule between attempts: 100, 200, 300 ms.
      for (let i = 1; i < reqs.length; i++)
        expect(reqs[i]!.at - reqs[i - 1]!.at).toBeGreaterThanOrEqual(DELAYS[i - 1]! - 20);
      expect(await deliveriesTo("retry")).toMatchObject([{ state: "sent", attempts: 4, last_status: 200 }]);
    });

    it("gives a delivery up after the last attempt with a webhook.dead event, and redeliver sends the same body again", async () => {
      const path = `/dead-${uid()}`;
      rx.answer(() => ({ status: 500, body: "boom" }));
      controlPlane({ "dead.yaml": target("dead", path, "events: [incident.created]\n") }, { DEAD_SECRET: secret() });
      const id = await openIncident(store);
      await waitFor(async () => (await deliveriesTo("dead"))[0]?.state === "dead", 10_000);
      expect(rx.at(path)).toHaveLength(DELAYS.length + 1);
      const [row] = await deliveriesTo("dead");
      expect(row).toMatchObject({ attempts: 6, last_status: 500 });
      expect(row!.last_error).toBe("gave up after 6 attempts: HTTP 500: boom");
      const dead = await store.db
        .selectFrom("events")
        .selectAll()
        .where("incident_id", "=", id)
        .where("type", "=", "webhook.dead")
        .execute();
      expect(dead).toHaveLength(1);
      expect(JSON.parse(dead[0]!.data)).toMatchObject({
        deliveryId: row!.id,
        target: "dead",
        status: 500,
        attempts: 6,
      });

      rx.answer(() => ({ status: 200 }));
      expect(await redeliver({ store, now: Date.now }, row!.id)).toEqual({
        previousState: "dead",
        enabledTarget: false,
      });
      await waitFor(async () => (await deliveriesTo("dead"))[0]?.state === "sent", 10_000);
      const reqs = rx.at(path);
      expect(reqs).toHaveLength(DELAYS.length + 2);
      expect(reqs.at(-1)!.body).toBe(reqs[0]!.body);
      expect(reqs.at(-1)!.headers["webhook-id"]).toBe(row!.id);
      expect(await deliveriesTo("dead")).toMatchObject([{ state: "sent", attempts: 1 }]);
    });

    it("does not retry a 4xx other than 408 and 429", async () => {
      const path = `/bad-${uid()}`;
      rx.answer(() => ({ status: 422, body: "unknown event" }));
      controlPlane({ "bad.yaml": target("bad", path, "events: [incident.created]\n") }, { BAD_SECRET: secret() });
      await openIncident(store);
      await waitFor(async () => (await deliveriesTo("bad"))[0]?.state === "dead", 10_000);
      expect(await deliveriesTo("bad")).toMatchObject([
        { attempts: 1, last_status: 422, last_error: "HTTP 422: unknown event" },
      ]);
      expect(rx.at(path)).toHaveLength(1);
    });

    it("disables a target that answers 410 Gone: later events skip it until redeliver enables it", async () => {
      const path = `/gone-${uid()}`;
      rx.answer(() => ({ status: 410 }));
      const cp = controlPlane(
        { "gone.yaml": target("gone", path, "events: [incident.created, incident.escalated]\n") },
        { GONE_SECRET: secret() },
      );
      const id = await openIncident(store);
      await waitFor(async () => (await deliveriesTo("gone"))[0]?.state === "dead", 10_000);
      const [first] = await deliveriesTo("gone");
      expect(first).toMatchObject({ attempts: 1, last_status: 410 });
      const listed = await listTargets({ store, now: Date.now, dir: cp.dir, env: () => secret() });
      expect(listed.targets.find((t) => t.target.name === "gone")?.disabled?.reason).toMatch(/410 Gone/);

      // The escalation is fanned out, but not to the disabled target.
      await moveIncident(store, id, "escalate", "nobody fixed it");
      await waitFor(
        async () =>
          (
            await store.db
              .selectFrom("deliveries")
              .select("state")
              .where("kind", "=", "webhook.fanout")
              .where("incident_id", "=", id)
              .where("state", "=", "pending")
              .execute()
          ).length === 0,
        10_000,
      );
      expect(await deliveriesTo("gone")).toHaveLength(1);
      expect(rx.at(path)).toHaveLength(1);

      rx.answer(() => ({ status: 200 }));
      expect(await redeliver({ store, now: Date.now }, first!.id)).toEqual({
        previousState: "dead",
        enabledTarget: true,
      });
      await waitFor(async () => (await deliveriesTo("gone"))[0]?.state === "sent", 10_000);
      await moveIncident(store, id, "analysis.started", "look again");
      await moveIncident(store, id, "escalate", "still broken");
      await waitFor(
        async () => (await deliveriesTo("gone")).length === 2 && (await deliveriesTo("gone"))[1]!.state === "sent",
        10_000,
      );
      expect(rx.at(path).map((r) => bodyOf(r).type)).toEqual([
        "incident.created",
        "incident.created",
        "incident.escalated",
      ]);
    });

    it("resumes pending deliveries after a restart, with the same webhook-id and body", async () => {
      const path = `/restart-${uid()}`;
      const env = { RESTART_SECRET: secret() };
      const files = { "restart.yaml": target("restart", path, "events: [incident.created]\n") };
      await rx.stop();
      const before = controlPlane(files, env);
      try {
        await openIncident(store);
        await waitFor(async () => Number((await deliveriesTo("restart"))[0]?.attempts ?? 0) >= 1, 10_000);
      } finally {
        await before.deliverer.stop();
        running.splice(running.indexOf(before.deliverer), 1);
        await rx.start();
      }
      const [pending] = await deliveriesTo("restart");
      expect(pending).toMatchObject({ state: "pending" });
      expect(pending!.last_error).toMatch(/ECONNREFUSED/);
      // A new process: new registry, new deliverer, same database.
      controlPlane(files, env, { dir: before.dir });
      await waitFor(async () => (await deliveriesTo("restart"))[0]?.state === "sent", 10_000);
      const reqs = rx.at(path);
      expect(reqs).toHaveLength(1);
      expect(reqs[0]!.headers["webhook-id"]).toBe(pending!.id);
      expect(
        new Webhook(env.RESTART_SECRET).verify(reqs[0]!.body, reqs[0]!.headers as Record<string, string>),
      ).toMatchObject({ delivery: { id: pending!.id } });
    });

    it("sends a scheduled run that failed as task.failed, with the schedule and its task and no delivery block", async () => {
      const s = secret();
      const path = `/sched-${uid()}`;
      controlPlane(
        {
          "ops.yaml": target("ops", path, "events: [task.failed]\n"),
          "ns.yaml": target("ns", `${path}-ns`, "events: [task.failed]\nnamespaces: [shop]\n"),
        },
        { OPS_SECRET: s, NS_SECRET: s },
      );
      const tasks = createTaskService({
        store,
        log: silentLogger,
        now: Date.now,
        onTerminal: scheduleRunHook(store.dialect),
      });
      const { task } = await tasks.create({
        kind: "agent",
        payload: { prompt: "audit" },
        createdBy: "schedule:weekly-audit",
        channel: "schedule",
      });
      await tasks.fail(task.id, "the agent exited 2", "runner:r1", "runner");
      await waitFor(() => rx.at(path).length === 1, 10_000);
      const body = new Webhook(s).verify(
        rx.at(path)[0]!.body,
        rx.at(path)[0]!.headers as Record<string, string>,
      ) as Record<string, any>;
      expect(body).toMatchObject({
        type: "task.failed",
        incident: null,
        schedule: { name: "weekly-audit" },
        task: { id: task.id, state: "failed", created_by: "schedule:weekly-audit" },
      });
      expect(body.event).toMatchObject({ type: "schedule.run_failed", reason: "the agent exited 2" });
      expect(body.delivery).toBeUndefined();
      // A namespace filter matches incidents only; the runner's own task.failed (no incident) asks for nothing.
      expect(rx.at(`${path}-ns`)).toHaveLength(0);
      expect(await deliveriesTo("ops")).toHaveLength(1);
    });

    it("is managed through MCP: register, list, deliveries, redeliver, delete, rotate the JWS key; file targets stay", async () => {
      const path = `/mcp-${uid()}`;
      const env: Record<string, string> = { FILED_SECRET: secret(), AGENTS_SECRET: secret() };
      const cp = controlPlane({ "filed.yaml": target("filed", `${path}-filed`, "events: [incident.resolved]\n") }, env);
      const deps = {
        config: { webhooks: { dir: cp.dir } },
        log: silentLogger,
        store,
        now: Date.now,
        inline: { secrets: (n: string) => env[n] },
      } as unknown as McpDeps;
      const client = async (scopes: Scope[]) => {
        const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
        await createMcpServer(deps, { subject: "alice", scopes: new Set(scopes), via: "token" }).connect(serverSide);
        const c = new Client({ name: "webhooks-test", version: "1" });
        await c.connect(clientSide);
        return async (name: string, args: Record<string, unknown>) => {
          const r = (await c.callTool({ name, arguments: args })) as CallToolResult;
          if (r.isError) throw new Error(String((r.content[0] as { text?: string }).text));
          return r.structuredContent as any;
        };
      };
      const admin = await client(["admin"]);
      const reader = await client(["read"]);

      const made = await admin("register_webhook", {
        name: "agents",
        url: rx.url(path),
        secret_env: "AGENTS_SECRET",
        events: ["incident.created"],
      });
      expect(made).toMatchObject({ replaced: false, target: { name: "agents", source: "mcp" } });
      await expect(
        reader("register_webhook", { name: "x", url: rx.url(path), secret_env: "AGENTS_SECRET", events: ["*"] }),
      ).rejects.toThrow(/admin/);
      await expect(
        admin("register_webhook", { name: "filed", url: rx.url(path), secret_env: "AGENTS_SECRET", events: ["*"] }),
      ).rejects.toThrow(/file/);
      await expect(
        admin("register_webhook", { name: "bad", url: "ftp://x", secret_env: "AGENTS_SECRET", events: ["*"] }),
      ).rejects.toThrow(/url/);
      const listed = await reader("list_webhooks", {});
      expect(listed.targets.map((t: { name: string }) => t.name)).toEqual(["filed", "agents"]);

      // A registered target is used by the running control plane at its next fan-out.
      rx.answer(() => ({ status: 500 }));
      const id = await openIncident(store);
      await waitFor(async () => (await deliveriesTo("agents"))[0]?.state === "dead", 10_000);
      const page = await reader("list_deliveries", { target: "agents", state: "dead" });
      expect(page.deliveries).toEqual([
        expect.objectContaining({ target: "agents", incident_id: id, state: "dead", attempts: 6, last_status: 500 }),
      ]);
      rx.answer(() => ({ status: 200 }));
      await expect(reader("redeliver_webhook", { delivery_id: page.deliveries[0].id })).rejects.toThrow(/write/);
      const again = await admin("redeliver_webhook", { delivery_id: page.deliveries[0].id });
      expect(again).toMatchObject({ previous_state: "dead", enabled_target: false });
      await waitFor(async () => (await deliveriesTo("agents"))[0]?.state === "sent", 10_000);
      await expect(admin("redeliver_webhook", { delivery_id: "dlv_nope" })).rejects.toThrow(
        /not_found|no webhook delivery/,
      );

      await expect(admin("delete_webhook", { name: "filed" })).rejects.toThrow(/file/);
      await admin("delete_webhook", { name: "agents" });
      expect((await reader("list_webhooks", {})).targets.map((t: { name: string }) => t.name)).toEqual(["filed"]);
      await expect(admin("delete_webhook", { name: "agents" })).rejects.toThrow(/no target named agents/);

      const before = (await (await fetch(`${publicUrl}/.well-known/jwks.json`)).json()) as {
        keys: Array<{ kid: string }>;
      };
      const rotated = await admin("rotate_webhook_key", {});
      const after = (await (await fetch(`${publicUrl}/.well-known/jwks.json`)).json()) as {
        keys: Array<{ kid: string }>;
      };
      expect(after.keys.map((k) => k.kid)).toEqual(
        expect.arrayContaining([...before.keys.map((k) => k.kid), rotated.kid]),
      );
    });

    it("two replicas on one database make each attempt once", async () => {
      const path = `/pair-${uid()}`;
      const env = { PAIR_SECRET: secret() };
      const files = { "pair.yaml": target("pair", path, "events: [incident.created]\n") };
      // Every first attempt fails: each delivery must arrive exactly twice, whoever sends it.
      const seen = new Set<string>();
      rx.answer((r) => {
        const id = String(r.headers["webhook-id"]);
        if (seen.has(id)) return { status: 200 };
        seen.add(id);
        return { status: 503 };
      });
      const a = controlPlane(files, env, { owner: "cp-a", leaseMs: 600 });
      controlPlane(files, env, { owner: "cp-b", leaseMs: 600, dir: a.dir });
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) ids.push(await openIncident(store));
      // Half-way, the holder stops: the other takes over.
      await waitFor(() => rx.at(path).length >= 10, 10_000);
      const holder = (
        await store.db
          .selectFrom("settings")
          .select("updated_by")
          .where("key", "=", "notify.deliverer")
          .executeTakeFirstOrThrow()
      ).updated_by;
      expect(["cp-a", "cp-b"]).toContain(holder);
      const stopping = running.find((_, i) => (holder === "cp-a" ? i === 0 : i === 1))!;
      await stopping.stop();
      await waitFor(async () => (await deliveriesTo("pair")).filter((d) => d.state === "sent").length === 20, 15_000);
      const counts = new Map<string, number>();
      for (const r of rx.at(path))
        counts.set(String(r.headers["webhook-id"]), (counts.get(String(r.headers["webhook-id"])) ?? 0) + 1);
      expect(counts.size).toBe(20);
      expect([...counts.values()].every((n) => n === 2)).toBe(true);
      expect((await deliveriesTo("pair")).every((d) => d.attempts === 2)).toBe(true);
    });

    it("an attempt in flight is not made again by a replica that takes the lease over meanwhile", async () => {
      const path = `/slow-${uid()}`;
      const env = { SLOW_SECRET: secret() };
      const files = { "slow.yaml": target("slow", path, "events: [incident.created]\n") };
      // The receiver takes 1.5 s to answer; the lease lasts 300 ms and is not renewed during a send.
      rx.answer(() => ({ status: 200, delayMs: 1500 }));
      const a = controlPlane(files, env, { owner: "cp-slow-a", leaseMs: 300, start: false });
      // b's clock is 400 ms ahead: to b, a's lease has expired as soon as a has taken it.
      const b = controlPlane(files, env, { owner: "cp-slow-b", leaseMs: 300, start: false, dir: a.dir, aheadMs: 400 });
      await openIncident(store);
      await a.deliverer.runOnce(); // the fan-out
      const sending = a.deliverer.runOnce(); // the attempt, in flight for 1.5 s
      await waitFor(() => rx.at(path).length === 1, 5000);
      const other = await b.deliverer.runOnce();
      expect(other.leader).toBe(true);
      await sending;
      expect(rx.at(path)).toHaveLength(1);
      expect(await deliveriesTo("slow")).toMatchObject([{ state: "sent", attempts: 1 }]);
    });
  });
}
