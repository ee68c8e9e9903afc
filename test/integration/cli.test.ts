import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { createJetStreamQueue } from "../../src/bus/jetstream.ts";
import type { TaskEvent } from "../../src/bus/jobs.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { hasMysql, hasNats, NATS_URL } from "../helpers/services.ts";
import { privateMysqlUrl } from "../helpers/store.ts";
import { freePort, spawnPitcrew } from "../helpers/process.ts";
import { waitFor } from "../helpers/wait.ts";
import { deleteStreams } from "../helpers/queues.ts";
import { alertmanagerSnippet } from "../../src/main/banner.ts";

const natsUp = await hasNats();
const mysqlUp = await hasMysql();
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "pitcrew-cli-"));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function get(port: number, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

const removeStreams = (prefix: string) =>
  deleteStreams({ tasksStream: `${prefix.toUpperCase()}_TASKS`, eventsStream: `${prefix.toUpperCase()}_EVENTS` });

describe("pitcrew serve (embedded defaults)", () => {
  it("serves /healthz, creates the SQLite file, and exits 0 on SIGINT", async () => {
    const dir = tempDir();
    const port = await freePort();
    const p = spawnPitcrew(["serve"], { PORT: String(port), DATA_DIR: join(dir, "data") });
    try {
      // The bound: healthy within 10 s of starting.
      await waitFor(async () => (await get(port, "/healthz")).status === 200, 10_000, 100);
      expect(existsSync(join(dir, "data", "pitcrew.db"))).toBe(true);
      expect((await get(port, "/readyz")).body).toEqual({ status: "ready", checks: { store: "ok", queue: "ok" } });
      expect(p.stdout()).toContain(`/healthz`);
      p.child.kill("SIGINT");
      expect(await p.exited).toEqual({ code: 0, signal: null });
    } finally {
      p.child.kill("SIGKILL");
    }
  });

  it("exits 1 with one line naming the variable when a setting is bad", async () => {
    const p = spawnPitcrew(["serve"], { PORT: "eighty", DATA_DIR: join(tempDir(), "d") });
    expect((await p.exited).code).toBe(1);
    const lines = p.stderr().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^pitcrew: invalid configuration: PORT: .*"eighty"/);
    expect(p.stderr()).not.toMatch(/\n\s+at /);
  });

  it("does not echo a secret-bearing setting back when it is bad", async () => {
    const p = spawnPitcrew(["serve"], {
      DATABASE_URL: "postgres://admin:hunter2@db/x",
      DATA_DIR: join(tempDir(), "d"),
    });
    expect((await p.exited).code).toBe(1);
    expect(p.stderr()).toMatch(/DATABASE_URL/);
    expect(p.stderr()).not.toContain("hunter2");
  });

  it("migrate applies the schema once and then reports it up to date", async () => {
    const dir = tempDir();
    const first = spawnPitcrew(["migrate"], { DATA_DIR: dir });
    expect((await first.exited).code).toBe(0);
    expect(first.stdout()).toContain("applied: 0001_init");
    const second = spawnPitcrew(["migrate"], { DATA_DIR: dir });
    expect((await second.exited).code).toBe(0);
    expect(second.stdout()).toContain("database is up to date");
  });

  it("runner refuses to start without NATS_URL", async () => {
    const p = spawnPitcrew(["runner"], {});
    expect((await p.exited).code).toBe(1);
    expect(p.stderr()).toMatch(/NATS_URL: required/);
  });
});

// amtool (Debian's prometheus-alertmanager) checks an alertmanager.yml the way AlertManager loads it.
const AMTOOL = process.env.AMTOOL_BIN ?? "/usr/bin/amtool";
const amtoolFound = existsSync(AMTOOL);
if (!amtoolFound)
  process.stderr.write(`\n!!!!!!!! SKIPPING the alertmanager.yml checks: ${AMTOOL} is missing !!!!!!!!\n\n`);

/** Runs `amtool check-config` on the YAML; returns its output, throws with it when the file is refused. */
function checkAlertmanagerYml(yaml: string): string {
  const file = join(tempDir(), "alertmanager.yml");
  writeFileSync(file, yaml);
  try {
    return execFileSync(AMTOOL, ["check-config", file], { encoding: "utf8", stdio: "pipe" });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`amtool refused:\n${yaml}\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}

describe("pitcrew serve: the start banner and LOG_FORMAT=pretty", () => {
  it("shows the setup a newcomer checks, pretty log lines, and an alertmanager.yml that AlertManager accepts", async () => {
    const dir = tempDir();
    const port = await freePort();
    const skillsDir = join(dir, "skills");
    mkdirSync(skillsDir);
    copyFileSync("skills/restart-not-ready.yaml", join(skillsDir, "restart-not-ready.yaml"));
    writeFileSync(join(skillsDir, "broken.yaml"), "name: broken\nmatch: [not, a, map]\n");
    const p = spawnPitcrew(["serve"], {
      PORT: String(port),
      DATA_DIR: join(dir, "data"),
      SKILLS_DIR: skillsDir,
      LOG_LEVEL: "info",
      LOG_FORMAT: "pretty",
      DRY_RUN: "true",
      AUTO_APPROVE_MAX_RISK: "low",
      GITOPS_BASE_BRANCH: "production",
      ALERTMANAGER_TOKEN: "banner-test-token-0123456789",
      // One agent whose program is on PATH, the default one (claude) not installed here.
      AGENT_COMMANDS: JSON.stringify({ "shell-agent": ["sh", "-c", "{{prompt}}"] }),
    });
    try {
      await waitFor(() => p.stdout().includes("credentials_file:"), 30_000, 100);
      const out = p.stdout();
      const row = (name: string) => new RegExp(`^  ${name.padEnd(22)} (.*)$`, "m").exec(out)?.[1];
      expect(row("Mode")).toBe("embedded");
      expect(row("Store")).toBe(`SQLite ${join(dir, "data", "pitcrew.db")}`);
      expect(row("Queue")).toBe("in-process");
      expect(row("GitOps")).toBe(`local ${join(dir, "data", "gitops.git")}, base branch production`);
      expect(row("DRY_RUN")).toMatch(/^on: /);
      expect(row("AUTO_APPROVE_MAX_RISK")).toMatch(/^low: fixes up to low risk are approved by policy/);
      expect(row("Approvals")).toBe("mcp, console (tokens: the generated admin token)");
      const sh = execFileSync("sh", ["-c", "command -v sh"], { encoding: "utf8" }).trim();
      expect(row("Agent CLIs")).toContain(`shell-agent: ${sh}`);
      expect(row("Agent CLIs")).toMatch(/claude-code \(AGENT_DEFAULT\): claude not found/);
      expect(row("Skills")).toBe("1 loaded: restart-not-ready");
      expect(out).toMatch(/^ {25}not loaded: .*broken\.yaml:\d+: .+$/m);
      expect(out).not.toContain("banner-test-token-0123456789");

      // LOG_FORMAT=pretty: readable lines, no JSON.
      expect(out).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(pitcrew-serve\): migrations applied$/m);
      expect(out).not.toMatch(/^\{"level"/m);

      // The receiver snippet, as printed, is a whole alertmanager.yml with a route to Pitcrew.
      const lines = out.split("\n");
      const from = lines.indexOf("  route:");
      const snippet = lines.slice(from, lines.indexOf("", from)).join("\n");
      expect(snippet).toContain("    receiver: pitcrew\n");
      expect(snippet).toContain(`        - url: http://localhost:${port}/webhooks/alertmanager\n`);
      if (amtoolFound) expect(checkAlertmanagerYml(snippet)).toMatch(/SUCCESS/);
      p.child.kill("SIGTERM");
      expect(await p.exited).toEqual({ code: 0, signal: null });
    } finally {
      p.child.kill("SIGKILL");
    }
  });

  it.skipIf(!amtoolFound)("every form of the banner's alertmanager.yml is one AlertManager accepts", () => {
    const url = "https://pitcrew.example.internal";
    const forms = {
      created: alertmanagerSnippet(
        url,
        50_000,
        { mode: "token", token: "t0ken-shown-once", user: "am" },
        {
          from: "file",
          path: "/data/secrets/alertmanager.token",
          created: true,
        },
      ),
      file: alertmanagerSnippet(
        url,
        50_000,
        { mode: "token", token: "t", user: "am" },
        {
          from: "file",
          path: "/data/secrets/alertmanager.token",
          created: false,
        },
      ),
      env: alertmanagerSnippet(url, 0, { mode: "token", token: "t", user: "am" }, { from: "env" }),
      none: alertmanagerSnippet(url, 50_000, { mode: "none" }),
    };
    for (const [name, lines] of Object.entries(forms)) {
      expect(lines.join("\n"), name).toContain("route:\n    receiver: pitcrew\n");
      expect(checkAlertmanagerYml(lines.join("\n")), name).toMatch(/SUCCESS/);
    }
  });

  it.skipIf(!amtoolFound)("the README's alertmanager.yml is one AlertManager accepts", () => {
    const readme = readFileSync("README.md", "utf8");
    const section = readme.slice(readme.indexOf("## Pointing AlertManager at Pitcrew"));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
    expect(yaml).toMatch(/^route:\n/);
    expect(checkAlertmanagerYml(yaml)).toMatch(/SUCCESS/);
  });
});

describe.skipIf(!natsUp || !mysqlUp)("pitcrew serve (distributed)", () => {
  it("serves with /readyz 200 on MySQL and NATS, having created both streams", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    const port = await freePort();
    // Its own database: the server's outbox relay would otherwise publish other tests' rows.
    const db = await privateMysqlUrl();
    const p = spawnPitcrew(["serve"], {
      PORT: String(port),
      DATABASE_URL: db.url,
      NATS_URL,
      NATS_PREFIX: prefix,
      DATA_DIR: tempDir(),
    });
    try {
      await waitFor(async () => (await get(port, "/readyz")).status === 200, 30_000, 200);
      const nc = await connect({ servers: [NATS_URL] });
      const jsm = await jetstreamManager(nc);
      const tasks = await jsm.streams.info(`${prefix.toUpperCase()}_TASKS`);
      const events = await jsm.streams.info(`${prefix.toUpperCase()}_EVENTS`);
      await nc.close();
      expect(tasks.config.retention).toBe("workqueue");
      expect(tasks.config.subjects).toEqual([`${prefix}.tasks.>`]);
      expect(events.config.retention).toBe("limits");
      expect(events.config.max_age).toBe(7 * 86_400_000 * 1_000_000);
      p.child.kill("SIGTERM");
      expect(await p.exited).toEqual({ code: 0, signal: null });
    } finally {
      p.child.kill("SIGKILL");
      await removeStreams(prefix);
      await db.drop();
    }
  });
});

describe.skipIf(!natsUp)("pitcrew runner (process)", () => {
  it("pulls a task from JetStream, reports it succeeded, heartbeats, and exits 0 on SIGTERM", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    const settings = {
      subjectPrefix: prefix,
      tasksStream: `${prefix.toUpperCase()}_TASKS`,
      eventsStream: `${prefix.toUpperCase()}_EVENTS`,
    };
    const queue = createJetStreamQueue({ servers: [NATS_URL], name: "cli-test", settings, log: silentLogger });
    const events: any[] = [];
    const sub = queue.consumeEvents({ concurrency: 4 }, async (d) => {
      events.push(d.data);
      await d.ack();
    });
    const p = spawnPitcrew(["runner"], {
      NATS_URL,
      NATS_PREFIX: prefix,
      RUNNER_ID: "cli-runner",
      RUNNER_POOL: "jobs",
      HEARTBEAT_INTERVAL: "500ms",
      DATA_DIR: tempDir(),
    });
    try {
      await queue.ready();
      await queue.publishTask("jobs", "tsk_cli1", {
        v: 1,
        taskId: "tsk_cli1",
        kind: "noop",
        pool: "jobs",
        incidentId: null,
        payload: { result: { done: true } },
        createdAt: Date.now(),
      });
      const done = await waitFor(
        () => events.find((e: TaskEvent) => e.type === "task.succeeded" && e.taskId === "tsk_cli1"),
        20_000,
        100,
      );
      expect(done.runnerId).toBe("cli-runner");
      expect(done.result).toEqual({ done: true });
      await waitFor(
        () => events.find((e) => e.type === "runner.heartbeat" && e.runnerId === "cli-runner" && e.pool === "jobs"),
        5000,
      );
      p.child.kill("SIGTERM");
      expect(await p.exited).toEqual({ code: 0, signal: null });
    } finally {
      p.child.kill("SIGKILL");
      await sub.stop();
      await queue.close();
      await removeStreams(prefix);
    }
  });
});
