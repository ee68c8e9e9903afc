import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTcpServer, type AddressInfo } from "node:net";
import { delay, http, HttpResponse } from "msw";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runDrift, runDriftReport } from "../../src/skills/builtins/drift.ts";
import { runProbe } from "../../src/skills/builtins/probe.ts";
import { callRemoteSkill, type HttpAction } from "../../src/skills/remote.ts";
import { verify } from "../../src/webhooks/sign.ts";
import { rejection } from "../helpers/assert.ts";
import { strictMockServer } from "../helpers/msw.ts";
import { runInline } from "../../src/skills/inline.ts";
import { Skill } from "../../src/skills/schema.ts";

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

async function startHttp(handler: Handler): Promise<{ url: string; server: Server; close: () => Promise<void> }> {
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handler(req, Buffer.concat(chunks).toString("utf8"), res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe("probe (HTTP) against a real local server", () => {
  let srv: Awaited<ReturnType<typeof startHttp>>;
  const seen: string[] = [];
  beforeAll(async () => {
    srv = await startHttp((req, _body, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (req.url === "/healthz")
        return res.writeHead(200, { "content-type": "text/plain" }).end("status: healthy\nbuild: 42\n");
      if (req.url === "/broken") return res.writeHead(500).end("boom");
      if (req.url === "/moved") return res.writeHead(302, { location: "/broken" }).end();
      if (req.url === "/big") {
        // 70 KiB of filler, then the word the regex looks for: beyond the 64 KiB read cap.
        return res.writeHead(200).end(`${"x".repeat(70 * 1024)}needle`);
      }
      if (req.url === "/hang") return; // never answers
      res.writeHead(404).end();
    });
  });
  afterAll(() => srv.close());

  it("passes on 200 and reports the status and latency", async () => {
    const r = await runProbe({ url: `${srv.url}/healthz` });
    expect(r.ok).toBe(true);
    expect(r.details.status).toBe(200);
    expect(r.details.latencyMs).toBeGreaterThanOrEqual(0);
    expect(r.summary).toContain("→ 200");
  });

  it("fails on 500 without throwing, and names the expected statuses", async () => {
    const r = await runProbe({ url: `${srv.url}/broken` });
    expect(r).toMatchObject({ ok: false, details: { status: 500 } });
    expect(r.summary).toContain("expected 200-399");
  });

  it("honours an explicit expect_status, single or list", async () => {
    expect((await runProbe({ url: `${srv.url}/broken`, expect_status: 500 })).ok).toBe(true);
    expect((await runProbe({ url: `${srv.url}/healthz`, expect_status: [201, 204] })).ok).toBe(false);
    expect((await runProbe({ url: `${srv.url}/healthz`, expect_status: [200, 204] })).ok).toBe(true);
  });

  it("does not follow redirects: a 302 is the answer", async () => {
    const r = await runProbe({ url: `${srv.url}/moved` });
    expect(r).toMatchObject({ ok: true, details: { status: 302 } });
    expect(r.details.error).toBeUndefined();
  });

  it("checks the body against body_regex: match passes, mismatch fails", async () => {
    const hit = await runProbe({ url: `${srv.url}/healthz`, body_regex: "^status: healthy$|build: \\d+" });
    expect(hit).toMatchObject({ ok: true, details: { status: 200, matched: true } });
    const miss = await runProbe({ url: `${srv.url}/healthz`, body_regex: "status: degraded" });
    expect(miss).toMatchObject({ ok: false, details: { status: 200, matched: false } });
    expect(miss.summary).toContain("does not match");
  });

  it("reads at most 64 KiB of the body", async () => {
    expect((await runProbe({ url: `${srv.url}/big`, body_regex: "x{1000}" })).details.matched).toBe(true);
    expect((await runProbe({ url: `${srv.url}/big`, body_regex: "needle" })).details.matched).toBe(false);
  });

  it("times out against a server that never answers", async () => {
    // The server never answers: that the probe returns at all is its timeout.
    const r = await runProbe({ url: `${srv.url}/hang`, timeout: "300ms" });
    expect(r.ok).toBe(false);
    expect(r.details.error).toBe("no answer within 300 ms");
    expect(r.details.status).toBeUndefined();
  });

  it("sends HEAD when asked", async () => {
    seen.length = 0;
    const r = await runProbe({ url: `${srv.url}/healthz`, method: "HEAD" });
    expect(r).toMatchObject({ ok: true, details: { status: 200 } });
    expect(seen).toEqual(["HEAD /healthz"]);
  });

  it("reports a refused connection as a failed probe", async () => {
    const closed = await startHttp(() => {});
    await closed.close();
    const r = await runProbe({ url: `${closed.url}/healthz`, timeout: "2s" });
    expect(r).toMatchObject({ ok: false, details: { error: "ECONNREFUSED" } });
  });

  it("throws invalid for unusable params: non-http URL, both or neither target, bad timeout, HEAD with a regex", async () => {
    for (const params of [
      { url: "file:///etc/passwd" },
      { url: "ftp://127.0.0.1/x" },
      { url: "http://user:pw@127.0.0.1/x" },
      { url: `${srv.url}/healthz`, tcp: "127.0.0.1:80" },
      {},
      { url: `${srv.url}/healthz`, timeout: "soon" },
      { url: `${srv.url}/healthz`, timeout: "10m" },
      { url: `${srv.url}/healthz`, method: "POST" },
      { url: `${srv.url}/healthz`, method: "HEAD", body_regex: "x" },
      { url: `${srv.url}/healthz`, body_regex: "(" },
      { tcp: "no-port" },
      { tcp: "127.0.0.1:70000" },
    ]) {
      const err = await rejection(runProbe(params));
      expect(err).toMatchObject({ kind: "invalid", code: "probe.invalid_params" });
    }
  });
});

describe("probe (TCP) against a real listener", () => {
  it("passes when the port accepts a connection", async () => {
    const server = createTcpServer((s) => s.end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const r = await runProbe({ tcp: `127.0.0.1:${port}`, timeout: "2s" });
      expect(r.ok).toBe(true);
      expect(r.summary).toContain(`127.0.0.1:${port}`);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("fails when nothing listens on the port", async () => {
    const server = createTcpServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const r = await runProbe({ tcp: `127.0.0.1:${port}`, timeout: "2s" });
    expect(r).toMatchObject({ ok: false, details: { error: "ECONNREFUSED" } });
  });

  it("accepts a bracketed IPv6 address", async () => {
    const r = await runProbe({ tcp: "[::1]:1", timeout: "1s" });
    expect(r.ok).toBe(false); // nothing listens on port 1; the point is that the address parses
  });
});

describe("http remote skill against a real server that verifies the signature", () => {
  const SECRET = `whsec_${Buffer.from("remote skill test key, 32 bytes!").toString("base64")}`;
  const secrets = (name: string) => (name === "REMOTE_SKILL_SECRET" ? SECRET : undefined);
  const received: { path: string; id: string; body: unknown }[] = [];
  let srv: Awaited<ReturnType<typeof startHttp>>;
  const request = {
    incident: { id: "inc_remote_1", alertname: "TargetDown" },
    skill: "remote-fixer",
    params: { service: "api" },
  };
  const action = (path: string, over: Partial<HttpAction> = {}): HttpAction => ({
    url: `${srv.url}${path}`,
    secret_env: "REMOTE_SKILL_SECRET",
    timeout: "2s",
    ...over,
  });

  beforeAll(async () => {
    srv = await startHttp((req, body, res) => {
      const check = verify(req.headers, body, SECRET);
      if (!check.ok)
        return res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ reason: check.reason }));
      received.push({ path: req.url!, id: check.id, body: JSON.parse(body) });
      const json = (v: unknown) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(v));
      if (req.url === "/plan")
        return json({
          type: "plan",
          skill: "restart-deployment",
          params: { deployment: "api" },
          rationale: "pods are wedged",
        });
      if (req.url === "/result")
        return json({ type: "result", ok: true, summary: "cleared the cache", details: { keys: 12 } });
      if (req.url === "/garbage") return json({ type: "plan", skill: "Not A Name" });
      if (req.url === "/not-json") return res.writeHead(200).end("<html>hello</html>");
      if (req.url === "/huge")
        return json({ type: "result", ok: true, summary: "x", details: { pad: "y".repeat(1024 * 1024) } });
      if (req.url === "/500") return res.writeHead(500).end("down");
      if (req.url === "/422") return res.writeHead(422).end("no");
      if (req.url === "/hang") return;
      res.writeHead(404).end();
    });
  });
  afterAll(() => srv.close());

  it("sends the signed request and returns a plan", async () => {
    const answer = await callRemoteSkill(action("/plan"), request, { secrets, newId: () => "msg_test_plan" });
    expect(answer).toEqual({
      type: "plan",
      skill: "restart-deployment",
      params: { deployment: "api" },
      rationale: "pods are wedged",
    });
    expect(received.at(-1)).toEqual({ path: "/plan", id: "msg_test_plan", body: request });
  });

  it("returns a result", async () => {
    const answer = await callRemoteSkill(action("/result"), request, { secrets });
    expect(answer).toEqual({ type: "result", ok: true, summary: "cleared the cache", details: { keys: 12 } });
    expect(received.at(-1)?.id).toMatch(/^msg_[0-9a-f]{32}$/);
  });

  it("is rejected by the receiver when signed with another secret, or signed too long ago", async () => {
    const wrong = await rejection(callRemoteSkill(action("/plan"), request, { secrets: () => "whsec_b3RoZXIga2V5" }));
    expect(wrong).toMatchObject({ kind: "invalid", code: "remote.rejected", retryable: false });
    expect(wrong.message).toContain("401");
    const stale = await rejection(
      callRemoteSkill(action("/plan"), request, { secrets, now: () => new Date(Date.now() - 10 * 60_000) }),
    );
    expect(stale.message).toContain("401");
  });

  it("refuses to call when the secret the skill names is not set", async () => {
    const before = received.length;
    const err = await rejection(
      callRemoteSkill(action("/plan", { secret_env: "MISSING_SECRET" }), request, { secrets }),
    );
    expect(err).toMatchObject({ kind: "invalid", code: "remote.secret_missing" });
    expect(received.length).toBe(before);
  });

  it("treats an answer that is neither a plan nor a result as invalid", async () => {
    for (const path of ["/garbage", "/not-json", "/huge"]) {
      const err = await rejection(callRemoteSkill(action(path), request, { secrets }));
      expect(err).toMatchObject({ kind: "invalid", code: "remote.bad_answer" });
      // The 1 MiB cap stops reading; it does not wait for JSON.parse to choke on a cut body.
      if (path === "/huge") expect(err.message).toContain(`more than ${1024 * 1024} bytes`);
    }
  });

  it("maps 5xx to unavailable (retryable) and 4xx to invalid, with the status", async () => {
    const five = await rejection(callRemoteSkill(action("/500"), request, { secrets }));
    expect(five).toMatchObject({ kind: "unavailable", code: "remote.unavailable", retryable: true });
    expect(five.message).toContain("500");
    const four = await rejection(callRemoteSkill(action("/422"), request, { secrets }));
    expect(four).toMatchObject({ kind: "invalid", code: "remote.rejected", retryable: false });
    expect(four.message).toContain("422");
  });

  it("refuses a URL that is not http(s) before sending anything", async () => {
    const err = await rejection(callRemoteSkill({ url: "file:///etc/passwd", timeout: "1s" }, request, { secrets }));
    expect(err).toMatchObject({ kind: "invalid", code: "remote.bad_url" });
  });

  it("times out with the skill's timeout", async () => {
    const err = await rejection(callRemoteSkill(action("/hang", { timeout: "300ms" }), request, { secrets }));
    expect(err).toMatchObject({ kind: "unavailable", code: "remote.timeout" });
  });
});

describe("drift against the Argo CD API (msw)", () => {
  const BASE = "https://argocd.example.test";
  const TOKEN = "argocd-token-that-must-not-leak";
  const opts = { baseUrl: BASE, token: TOKEN, timeoutMs: 1000 };
  const mock = strictMockServer();
  const syncCalls: { name: string; auth: string | null; body: unknown }[] = [];
  const getCalls: { name: string; auth: string | null; project: string | null }[] = [];

  const application = (name: string, sync: string, extra: { resources?: unknown[]; targetRevision?: string } = {}) => ({
    metadata: { name, namespace: "argocd", uid: "5a1c", resourceVersion: "1234" },
    spec: {
      project: "payments",
      source: {
        repoURL: "https://git.example.test/platform/gitops.git",
        path: "apps/checkout/overlays/prod",
        targetRevision: extra.targetRevision ?? "main",
      },
      destination: { server: "https://kubernetes.default.svc", namespace: "checkout" },
      syncPolicy: {},
    },
    status: {
      sync: {
        status: sync,
        revision: "8f3c1e2a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e",
        comparedTo: { source: {}, destination: {} },
      },
      health: { status: sync === "Synced" ? "Healthy" : "Degraded" },
      resources: extra.resources ?? [],
      summary: {},
    },
  });

  const apps: Record<string, unknown> = {
    "checkout-synced": application("checkout-synced", "Synced"),
    "checkout-drifted": application("checkout-drifted", "OutOfSync", {
      resources: [
        {
          version: "v1",
          kind: "Service",
          namespace: "checkout",
          name: "checkout",
          status: "Synced",
          health: { status: "Healthy" },
        },
        {
          group: "apps",
          version: "v1",
          kind: "Deployment",
          namespace: "checkout",
          name: "checkout",
          status: "OutOfSync",
          health: { status: "Degraded" },
        },
        { version: "v1", kind: "ConfigMap", namespace: "checkout", name: "checkout-flags", status: "OutOfSync" },
      ],
    }),
    "checkout-head": application("checkout-head", "OutOfSync", { targetRevision: "" }),
    "checkout-unknown": application("checkout-unknown", "Unknown"),
  };

  beforeAll(() => {
    // Only this block talks to the fake Argo CD; the real local servers above stay unintercepted.
    mock.listen();
  });
  afterEach(() => mock.resetHandlers());
  afterAll(() => mock.close());

  const argo = () =>
    mock.use(
      http.get(`${BASE}/api/v1/applications/:name`, ({ request, params }) => {
        const name = params.name as string;
        const auth = request.headers.get("authorization");
        getCalls.push({ name, auth, project: new URL(request.url).searchParams.get("project") });
        if (auth !== `Bearer ${TOKEN}`)
          return HttpResponse.json(
            { error: "invalid session", code: 16, message: "invalid session: token signature is invalid" },
            { status: 401 },
          );
        const app = apps[name];
        if (!app)
          return HttpResponse.json(
            {
              error: `applications.argoproj.io "${name}" not found`,
              code: 5,
              message: `applications.argoproj.io "${name}" not found`,
            },
            { status: 404 },
          );
        return HttpResponse.json(app);
      }),
      http.post(`${BASE}/api/v1/applications/:name/sync`, async ({ request, params }) => {
        const name = params.name as string;
        syncCalls.push({ name, auth: request.headers.get("authorization"), body: await request.json() });
        return HttpResponse.json({ ...(apps[name] as object), operation: { sync: { revision: "main" } } });
      }),
    );

  it("reports already_synced for a Synced application and sends no sync", async () => {
    argo();
    syncCalls.length = 0;
    const r = await runDrift({ application: "checkout-synced", mode: "sync" }, opts);
    expect(r.outcome).toBe("already_synced");
    expect(r.details).toMatchObject({ syncStatus: "Synced", health: "Healthy", project: "payments", outOfSync: [] });
    expect(syncCalls).toEqual([]);
    expect(getCalls.at(-1)).toEqual({ name: "checkout-synced", auth: `Bearer ${TOKEN}`, project: null });
  });

  it("syncs an OutOfSync application to its target revision, with the bearer token and no pruning", async () => {
    argo();
    syncCalls.length = 0;
    const r = await runDrift({ application: "checkout-drifted", mode: "sync" }, opts);
    expect(r.outcome).toBe("synced");
    expect(syncCalls).toEqual([
      { name: "checkout-drifted", auth: `Bearer ${TOKEN}`, body: { revision: "main", prune: false, dryRun: false } },
    ]);
    expect(r.details.syncRevision).toBe("main");
    expect(r.details.outOfSync.map((x) => `${x.kind}/${x.name}`)).toEqual([
      "Deployment/checkout",
      "ConfigMap/checkout-flags",
    ]);
    expect(r.summary).toContain("2 resource(s) OutOfSync");
  });

  it("syncs to HEAD when the application has no target revision", async () => {
    argo();
    syncCalls.length = 0;
    await runDrift({ application: "checkout-head" }, opts);
    expect(syncCalls.map((c) => c.body)).toEqual([{ revision: "HEAD", prune: false, dryRun: false }]);
  });

  it("in pr mode returns what drifted and sends no sync", async () => {
    argo();
    syncCalls.length = 0;
    const r = await runDrift({ application: "checkout-drifted", mode: "pr", project: "payments" }, opts);
    expect(r.outcome).toBe("pr_needed");
    expect(r.details).toMatchObject({
      repoURL: "https://git.example.test/platform/gitops.git",
      path: "apps/checkout/overlays/prod",
      targetRevision: "main",
      revision: "8f3c1e2a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e",
      outOfSync: [
        {
          group: "apps",
          kind: "Deployment",
          name: "checkout",
          namespace: "checkout",
          status: "OutOfSync",
          health: "Degraded",
        },
        { kind: "ConfigMap", name: "checkout-flags", namespace: "checkout", status: "OutOfSync" },
      ],
    });
    expect(syncCalls).toEqual([]);
    expect(getCalls.at(-1)?.project).toBe("payments");
  });

  it("refuses an application of another project", async () => {
    argo();
    const err = await rejection(runDrift({ application: "checkout-drifted", project: "other" }, opts));
    expect(err).toMatchObject({ kind: "forbidden", code: "argocd.wrong_project" });
  });

  it("does not sync when Argo CD cannot tell the sync status", async () => {
    argo();
    syncCalls.length = 0;
    const err = await rejection(runDrift({ application: "checkout-unknown" }, opts));
    expect(err).toMatchObject({ kind: "unavailable", code: "argocd.sync_status_unknown", retryable: true });
    expect(syncCalls).toEqual([]);
  });

  it("maps 401 to forbidden argocd.unauthorized without leaking the token", async () => {
    argo();
    const err = await rejection(runDrift({ application: "checkout-drifted" }, { ...opts, token: "wrong-token-xyz" }));
    expect(err).toMatchObject({ kind: "forbidden", code: "argocd.unauthorized", retryable: false });
    const everything = JSON.stringify({
      message: err.message,
      details: err.details,
      cause: String(err.cause),
      stack: err.stack,
    });
    expect(everything).not.toContain("wrong-token-xyz");
  });

  it("maps 403 to forbidden argocd.unauthorized", async () => {
    mock.use(
      http.get(`${BASE}/api/v1/applications/:name`, () =>
        HttpResponse.json({ error: "permission denied", code: 7, message: "permission denied" }, { status: 403 }),
      ),
    );
    const err = await rejection(runDrift({ application: "checkout-drifted" }, opts));
    expect(err).toMatchObject({ kind: "forbidden", code: "argocd.unauthorized" });
  });

  it("maps 404 to not_found argocd.app_not_found", async () => {
    argo();
    const err = await rejection(runDrift({ application: "no-such-app" }, opts));
    expect(err).toMatchObject({ kind: "not_found", code: "argocd.app_not_found", retryable: false });
  });

  it("maps 503 to unavailable and retryable, on the read or on the sync", async () => {
    mock.use(
      http.get(`${BASE}/api/v1/applications/:name`, () => new HttpResponse("upstream connect error", { status: 503 })),
    );
    const read = await rejection(runDrift({ application: "checkout-drifted" }, opts));
    expect(read).toMatchObject({ kind: "unavailable", code: "argocd.unavailable", retryable: true });
    expect(read.message).toContain("503");

    mock.resetHandlers();
    argo();
    mock.use(http.post(`${BASE}/api/v1/applications/:name/sync`, () => new HttpResponse(null, { status: 503 })));
    const sync = await rejection(runDrift({ application: "checkout-drifted" }, opts));
    expect(sync).toMatchObject({ kind: "unavailable", code: "argocd.unavailable" });
    expect(sync.message).toContain("POST");
  });

  it("maps a sync refused because another operation runs to a retryable conflict", async () => {
    argo();
    mock.use(
      http.post(`${BASE}/api/v1/applications/:name/sync`, () =>
        HttpResponse.json(
          {
            error: "another operation is already in progress",
            code: 9,
            message: "another operation is already in progress",
          },
          { status: 400 },
        ),
      ),
    );
    const err = await rejection(runDrift({ application: "checkout-drifted" }, opts));
    expect(err).toMatchObject({ kind: "conflict", code: "argocd.operation_in_progress", retryable: true });
  });

  it("maps a timeout to unavailable", async () => {
    mock.use(
      http.get(`${BASE}/api/v1/applications/:name`, async () => {
        await delay("infinite");
        return HttpResponse.json({});
      }),
    );
    const err = await rejection(runDrift({ application: "checkout-drifted" }, { ...opts, timeoutMs: 200 }));
    expect(err).toMatchObject({ kind: "unavailable", code: "argocd.timeout", retryable: true });
  });

  it("sends the token only to the configured Argo CD server", async () => {
    argo();
    const before = getCalls.length;
    const err = await rejection(
      runDrift({ application: "checkout-drifted", server: "https://evil.example.test" }, opts),
    );
    expect(err).toMatchObject({ kind: "forbidden", code: "argocd.server_not_allowed" });
    expect(getCalls.length).toBe(before);
    // The configured server named explicitly is fine.
    expect((await runDrift({ application: "checkout-synced", server: `${BASE}/` }, opts)).outcome).toBe(
      "already_synced",
    );
  });

  it("reports, read-only, every application that drifted from git (mode report) and runs inline as a check", async () => {
    const seen: Array<{ auth: string | null; project: string | null }> = [];
    mock.use(
      http.get(`${BASE}/api/v1/applications`, ({ request }) => {
        seen.push({
          auth: request.headers.get("authorization"),
          project: new URL(request.url).searchParams.get("project"),
        });
        return HttpResponse.json({ metadata: { resourceVersion: "9" }, items: Object.values(apps) });
      }),
      http.post(`${BASE}/api/v1/applications/:name/sync`, () =>
        HttpResponse.json({ message: "a report must not sync" }, { status: 500 }),
      ),
    );
    const r = await runDriftReport({ mode: "report", project: "payments" }, opts);
    expect(r.total).toBe(4);
    expect(r.drifted.map((d) => `${d.application}:${d.syncStatus}:${d.outOfSync}`)).toEqual([
      "checkout-drifted:OutOfSync:2",
      "checkout-head:OutOfSync:0",
      "checkout-unknown:Unknown:0",
    ]);
    expect(r.summary).toBe(
      "3 of 4 application(s) drifted from git: checkout-drifted (OutOfSync, 2 resource(s)), checkout-head (OutOfSync), checkout-unknown (Unknown)",
    );
    expect(seen).toEqual([{ auth: `Bearer ${TOKEN}`, project: "payments" }]);
    const skill = Skill.parse({
      name: "drift-report",
      description: "d",
      match: {},
      risk: "read",
      approval: "none",
      action: { builtin: "drift", with: { mode: "report" } },
    });
    const outcome = await runInline(skill, { mode: "report" }, {}, { argocd: opts, secrets: () => undefined });
    expect(outcome).toMatchObject({ kind: "escalate", summary: r.summary, details: { total: 4 } });
    await expect(runDriftReport({ mode: "report", application: "x" }, opts)).rejects.toMatchObject({
      code: "drift.invalid_params",
    });
  });

  it("rejects an application name that is not a Kubernetes name", async () => {
    for (const application of ["../secrets", "Checkout", "", "a/b"]) {
      const err = await rejection(runDrift({ application }, opts));
      expect(err).toMatchObject({ kind: "invalid", code: "drift.invalid_params" });
    }
  });
});
