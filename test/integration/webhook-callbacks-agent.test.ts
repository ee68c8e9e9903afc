import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore, type Store } from "../../src/store/db.ts";
import { fixtureText, newTag } from "../helpers/alerts.ts";
import { makeBareRepo } from "../helpers/git.ts";
import { freePort, spawnPitcrew, type Spawned } from "../helpers/process.ts";
import { waitFor } from "../helpers/wait.ts";

// The example agent (examples/agent/agent.mjs) against a real Pitcrew: `pitcrew serve` in its own
// process (embedded: SQLite, in-process queue) with two webhook targets in WEBHOOKS_DIR — the
// example agent, and a receiver here that keeps what it got. An alert no skill matches is
// escalated; the delivery reaches the agent, which verifies it, claims the incident and reports.
// The README's verification snippets (Node, Python) are then run on a real delivery as received.

const TOKEN = "agent-test-token-0123456789";
const secret = () => `whsec_${randomBytes(32).toString("base64")}`;
const AGENT_SECRET = secret();
const CAPTURE_SECRET = secret();
const ROOT = join(import.meta.dirname, "..", "..");

type Received = { headers: IncomingHttpHeaders; body: Buffer };

describe("the example agent against a real Pitcrew", () => {
  let dir: string;
  let pitcrew: Spawned;
  let port: number;
  let agent: ChildProcess;
  let agentOut = "";
  let capture: Server;
  const received: Received[] = [];
  let store: Store;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "pitcrew-agent-"));
    capture = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received.push({ headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => capture.listen(0, "127.0.0.1", r));

    agent = spawn(process.execPath, [join(ROOT, "examples", "agent", "agent.mjs")], {
      env: { PATH: process.env.PATH ?? "", WEBHOOK_SECRET: AGENT_SECRET, PORT: "0", AGENT_ID: "example-agent" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    agent.stdout!.on("data", (b) => (agentOut += b));
    agent.stderr!.on("data", (b) => (agentOut += b));
    const agentUrl = await waitFor(() => /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(agentOut)?.[1], 10_000);

    const hooks = join(dir, "webhooks");
    mkdirSync(hooks);
    writeFileSync(
      join(hooks, "example-agent.yaml"),
      `name: example-agent\nurl: ${agentUrl}/\nsecret_env: AGENT_SECRET\nevents: [incident.escalated]\n`,
    );
    writeFileSync(
      join(hooks, "capture.yaml"),
      `name: capture\nurl: http://127.0.0.1:${(capture.address() as AddressInfo).port}/hook\nsecret_env: CAPTURE_SECRET\nevents: ["*"]\n`,
    );
    const skills = join(dir, "skills");
    mkdirSync(skills);
    port = await freePort();
    pitcrew = spawnPitcrew(["serve"], {
      PORT: String(port),
      HOST: "127.0.0.1",
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      DATA_DIR: join(dir, "data"),
      ALERTMANAGER_TOKEN: TOKEN,
      GITOPS_PROVIDER: "local",
      GITOPS_REPO: makeBareRepo(dir, [{ message: "init", files: { "README.md": "gitops\n" } }]),
      SKILLS_DIR: skills,
      WEBHOOKS_DIR: hooks,
      WEBHOOK_ALLOW_PRIVATE: "true",
      AGENT_SECRET,
      CAPTURE_SECRET,
    });
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, 60_000, 200).catch((err) => {
      throw new Error(`pitcrew did not start: ${err}\n${pitcrew.stderr()}\n${pitcrew.stdout()}`);
    });
    store = openStore({ dialect: "sqlite", file: join(dir, "data", "pitcrew.db") });
  }, 90_000);

  afterAll(async () => {
    agent?.kill("SIGTERM");
    pitcrew?.child.kill("SIGTERM");
    await Promise.race([pitcrew?.exited, new Promise((r) => setTimeout(r, 15_000))]);
    await store?.close();
    await new Promise((r) => capture?.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const events = (incidentId: string) =>
    store.db.selectFrom("events").selectAll().where("incident_id", "=", incidentId).orderBy("seq").execute();

  let incidentId: string;

  it("verifies the escalation's delivery, claims the incident, accepts and reports needs_human on its timeline", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/webhooks/alertmanager`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: fixtureText("good", "crashloop-firing.json", newTag()),
    });
    expect(res.status).toBe(200);
    incidentId = ((await res.json()) as { incidents: string[] }).incidents[0]!;

    const reported = await waitFor(
      async () =>
        (await events(incidentId)).find(
          (e) => e.type === "agent.result" && JSON.parse(e.data).status === "needs_human",
        ),
      30_000,
      100,
    ).catch(async (err) => {
      const sent = await store.db
        .selectFrom("deliveries")
        .select(["kind", "target", "state", "attempts", "last_error"])
        .where("channel", "=", "webhook")
        .execute();
      throw new Error(
        `${err}\nwebhook deliveries: ${JSON.stringify(sent)}\ntimeline: ${(await events(incidentId)).map((e) => e.type).join(" ")}\nagent:\n${agentOut}\npitcrew:\n${pitcrew.stderr()}`,
      );
    });
    const all = await events(incidentId);
    const types = all.map((e) => e.type);
    expect(types.indexOf("incident.escalated"), types.join(" ")).toBeGreaterThan(-1);
    expect(types.indexOf("agent.claimed")).toBeGreaterThan(types.indexOf("incident.escalated"));
    const claimed = all.find((e) => e.type === "agent.claimed")!;
    expect(claimed).toMatchObject({ actor: "agent:example-agent/example-agent", channel: "webhook" });
    expect(JSON.parse(claimed.data)).toMatchObject({ target: "example-agent", agent: "example-agent", via: "bearer" });
    const results = all
      .filter((e) => e.type === "agent.result")
      .map((e) => JSON.parse(e.data) as { status: string; summary: string });
    expect(results.map((r) => r.status)).toEqual(["accepted", "needs_human"]);
    const incident = (await store.db
      .selectFrom("incidents")
      .selectAll()
      .where("id", "=", incidentId)
      .executeTakeFirst())!;
    expect(reported.reason).toContain(`reported needs_human: example-agent looked at "${incident.title}"`);
    expect(reported.reason).toContain("no skill matches this incident");
    const claims = await store.db
      .selectFrom("external_claims")
      .selectAll()
      .where("incident_id", "=", incidentId)
      .execute();
    expect(claims).toEqual([
      expect.objectContaining({
        agent: "example-agent",
        state: "done",
        result_status: "needs_human",
        active_key: null,
      }),
    ]);
    expect(incident.state).toBe("escalated");
  }, 60_000);

  /** The README's snippet in `lang` under "Verifying a delivery". */
  function snippet(lang: string): string {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Verifying a delivery"));
    const m = new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``).exec(section);
    if (!m) throw new Error(`no ${lang} snippet under "Verifying a delivery"`);
    return m[1]!;
  }

  async function aDelivery(): Promise<Received> {
    return waitFor(
      () => received.find((r) => JSON.parse(r.body.toString("utf8")).incident?.id === incidentId),
      30_000,
      100,
    );
  }

  const cases = (d: Received) => {
    const tampered = Buffer.from(d.body.toString("utf8").replace(incidentId, "inc_SOMEONE_ELSE"));
    return [
      { name: "as received", secret: CAPTURE_SECRET, body: d.body, ok: true },
      { name: "another secret", secret: secret(), body: d.body, ok: false },
      { name: "an altered body", secret: CAPTURE_SECRET, body: tampered, ok: false },
    ];
  };

  it("the README's Node snippet verifies a real delivery and refuses an altered one or another secret", async () => {
    const d = await aDelivery();
    const file = join(dir, "verify.mjs");
    writeFileSync(
      file,
      `${snippet("js")}\nimport { readFileSync as readInput } from "node:fs";\nconst input = JSON.parse(readInput(0, "utf8"));\nconsole.log(JSON.stringify(verifyWebhook(input.secret, input.headers, Buffer.from(input.body, "base64"))));\n`,
    );
    for (const c of cases(d)) {
      const out = execFileSync(process.execPath, [file], {
        input: JSON.stringify({ secret: c.secret, headers: d.headers, body: c.body.toString("base64") }),
        encoding: "utf8",
      });
      expect(out.trim(), c.name).toBe(String(c.ok));
    }
  });

  const python = spawnSync("python3", ["--version"]).status === 0;

  it.skipIf(!python)(
    "the README's Python snippet verifies a real delivery and refuses an altered one or another secret",
    async () => {
      const d = await aDelivery();
      const file = join(dir, "verify.py");
      writeFileSync(
        file,
        `${snippet("python")}\nimport json as _json, sys as _sys\n_input = _json.load(_sys.stdin)\nprint(_json.dumps(verify_webhook(_input["secret"], _input["headers"], base64.b64decode(_input["body"]))))\n`,
      );
      for (const c of cases(d)) {
        const out = execFileSync("python3", [file], {
          input: JSON.stringify({ secret: c.secret, headers: d.headers, body: c.body.toString("base64") }),
          encoding: "utf8",
        });
        expect(out.trim(), c.name).toBe(String(c.ok));
      }
    },
  );
});
