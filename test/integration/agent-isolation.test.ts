import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { createJetStreamQueue } from "../../src/bus/jetstream.ts";
import type { TaskEvent } from "../../src/bus/jobs.ts";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { loadConfig } from "../../src/config/load.ts";
import { createMcpServer } from "../../src/mcp/server.ts";
import type { McpDeps } from "../../src/mcp/tool.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { loadOrCreateToken } from "../../src/shared/secrets.ts";
import { missingAgentClis } from "../../src/skills/agent-clis.ts";
import { Skill } from "../../src/skills/schema.ts";
import { makeBareRepo } from "../helpers/git.ts";
import { spawnPitcrew } from "../helpers/process.ts";
import { deleteStreams } from "../helpers/queues.ts";
import { hasNats, NATS_URL } from "../helpers/services.ts";
import { storeFactories } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

// A real `pitcrew runner` process (root, as the tests run here) holding secrets, and a coding agent
// that tries to read them. The agent is a shell script standing in for a coding CLI.

const natsUp = await hasNats();
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

const root = mkdtempSync(join(tmpdir(), "pitcrew-isolation-"));
// Agents running as nobody must reach their script through this folder (mkdtemp makes it 0700).
chmodSync(root, 0o755);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SPY = `#!/bin/sh
# $1: the runner's pid and the secret file to try, separated by a space.
set -- $1
echo "ids uid=$(id -u) gid=$(id -g) groups=$(id -G)"
if tr '\\0' '\\n' < /proc/$PPID/environ; then echo "parent environ: READ"; else echo "parent environ: denied"; fi
if tr '\\0' '\\n' < /proc/$1/environ; then echo "runner environ: READ"; else echo "runner environ: denied"; fi
if cat "$2"; then echo "secret file: READ"; else echo "secret file: denied"; fi
if ls "$(dirname "$2")"; then echo "secrets folder: LISTED"; else echo "secrets folder: denied"; fi
echo "written by the agent" > agent-was-here.txt && echo "clone: writable"
`;

function runnerEnv(prefix: string, dir: string, more: Record<string, string>): Record<string, string> {
  return {
    NATS_URL,
    NATS_PREFIX: prefix,
    RUNNER_ID: `iso-${prefix}`,
    RUNNER_POOL: "iso",
    HEARTBEAT_INTERVAL: "500ms",
    DATA_DIR: join(dir, "data"),
    LOG_LEVEL: "warn",
    ...more,
  };
}

describe.skipIf(!natsUp || !isRoot)("coding agents under AGENT_UID", () => {
  it("run as that user, cannot read the runner's environment or secret files, and can work in their clone", async () => {
    const dir = mkdtempSync(join(root, "run-"));
    chmodSync(dir, 0o755);
    const spy = join(dir, "spy.sh");
    writeFileSync(spy, SPY);
    chmodSync(spy, 0o755);
    const bare = makeBareRepo(dir, [{ message: "init", files: { "values.yaml": "replicaCount: 2\n" } }]);
    // A secret file the runner holds: <DATA_DIR>/secrets (0700) / mcp.token (0600), owned by root.
    const dataDir = join(dir, "data");
    mkdirSync(dataDir);
    const held = loadOrCreateToken(dataDir, "mcp");
    const envSecret = `runner-only-${randomBytes(12).toString("hex")}`;

    const prefix = `iso${randomBytes(4).toString("hex")}`;
    const settings = {
      subjectPrefix: prefix,
      tasksStream: `${prefix.toUpperCase()}_TASKS`,
      eventsStream: `${prefix.toUpperCase()}_EVENTS`,
    };
    const queue = createJetStreamQueue({ servers: [NATS_URL], name: "isolation-test", settings, log: silentLogger });
    const events: TaskEvent[] = [];
    const sub = queue.consumeEvents({ concurrency: 4 }, async (d) => {
      events.push(d.data as TaskEvent);
      await d.ack();
    });
    const p = spawnPitcrew(
      ["runner"],
      runnerEnv(prefix, dir, {
        GITOPS_REPO: bare,
        AGENT_COMMANDS: JSON.stringify({ spy: [spy, "{{prompt}}"] }),
        AGENT_DEFAULT: "spy",
        AGENT_UID: String(NOBODY),
        AGENT_GID: String(NOBODY),
        GITHUB_APP_PRIVATE_KEY_STANDIN: envSecret,
      }),
    );
    try {
      await queue.ready();
      const taskId = `tsk_iso_${prefix}`;
      const payload = { prompt: `${p.child.pid} ${held.path}`, agent: "spy", repoUrl: bare };
      await queue.publishTask("iso", taskId, {
        v: 1,
        taskId,
        kind: "prompt",
        pool: "iso",
        incidentId: null,
        payload,
        createdAt: Date.now(),
      });
      const done = await waitFor(
        () => events.find((e) => e.taskId === taskId && (e.type === "task.succeeded" || e.type === "task.failed")),
        60_000,
        100,
      );
      const lines = events
        .filter((e) => e.taskId === taskId && e.type === "task.log")
        .map((e) => (e as { line: string }).line);

      expect(done, JSON.stringify(done)).toMatchObject({ type: "task.succeeded" });
      expect(lines).toContain(`ids uid=${NOBODY} gid=${NOBODY} groups=${NOBODY}`);
      expect(lines).toContain("parent environ: denied");
      expect(lines).toContain("runner environ: denied");
      expect(lines).toContain("secret file: denied");
      expect(lines).toContain("secrets folder: denied");
      expect(lines).toContain("clone: writable");
      expect((done as { result: { changedFiles: string[] } }).result.changedFiles).toEqual(["agent-was-here.txt"]);
      // Nowhere in what the task reported: not in log lines, not in the result.
      const everything = JSON.stringify(events);
      expect(everything).not.toContain(envSecret);
      expect(everything).not.toContain(held.token);
      expect(p.stdout() + p.stderr()).not.toContain("AGENT_UID is unset");
    } finally {
      p.child.kill("SIGTERM");
      await p.exited;
      await sub.stop();
      await queue.close();
      await deleteStreams(settings);
    }
  });
});

describe.skipIf(!natsUp || !isRoot)("runner start-up checks", () => {
  it("warns once when it runs as root without AGENT_UID, and once per agent CLI a skill needs that is not installed", async () => {
    const dir = mkdtempSync(join(root, "warn-"));
    const skillsDir = join(dir, "skills");
    mkdirSync(skillsDir);
    const skill = (name: string, command?: string) =>
      [
        `name: ${name}`,
        "description: needs an agent",
        "match: { alertname: [X] }",
        "risk: high",
        "action:",
        "  agent:",
        "    prompt: fix it",
        ...(command ? [`    command: ${command}`] : []),
        "",
      ].join("\n");
    writeFileSync(join(skillsDir, "ghost-a.yaml"), skill("ghost-a", "ghost"));
    writeFileSync(join(skillsDir, "ghost-b.yaml"), skill("ghost-b", "ghost"));
    writeFileSync(join(skillsDir, "present.yaml"), skill("present", "shell"));
    const prefix = `isw${randomBytes(4).toString("hex")}`;
    const p = spawnPitcrew(
      ["runner"],
      runnerEnv(prefix, dir, {
        SKILLS_DIR: skillsDir,
        AGENT_COMMANDS: JSON.stringify({
          ghost: ["ghost-cli-not-installed", "{{prompt}}"],
          shell: ["sh", "-c", "true"],
        }),
      }),
    );
    try {
      await waitFor(() => p.stdout().includes("pulling pool"), 30_000, 100);
      const out = p.stdout() + p.stderr();
      expect(out.match(/AGENT_UID is unset: coding agents run as root/g)).toHaveLength(1);
      const missing = out.split("\n").filter((l) => l.includes("agent CLI not installed"));
      expect(missing).toHaveLength(1);
      expect(missing[0]).toContain("ghost-cli-not-installed");
      expect(missing[0]).toContain('"skills":["ghost-a","ghost-b"]');
    } finally {
      p.child.kill("SIGTERM");
      await p.exited;
      await deleteStreams({
        tasksStream: `${prefix.toUpperCase()}_TASKS`,
        eventsStream: `${prefix.toUpperCase()}_EVENTS`,
      });
    }
  });

  it("refuses to start with AGENT_UID when it is not root", async () => {
    const home = mkdtempSync(join(root, "home-"));
    chmodSync(home, 0o777);
    const child = spawn(process.execPath, ["bin/pitcrew.mjs", "runner"], {
      uid: NOBODY,
      gid: NOBODY,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: home,
        PITCREW_FROM_SOURCE: "1",
        ...runnerEnv("unused", home, { AGENT_UID: "1000", AGENT_GID: "1000" }),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    child.stderr!.on("data", (b) => (err += b));
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    expect(code).toBe(1);
    expect(err).toMatch(/^pitcrew: invalid configuration: AGENT_UID: the runner runs as uid 65534, not root/m);
  });
});

describe("system_status and agent CLIs", () => {
  it("lists the agent CLIs loaded skills need that are not installed", async () => {
    const store = await (await storeFactories()).find((f) => f.name === "sqlite")!.make();
    const queue = createMemoryQueue({ log: silentLogger });
    const agentSkill = (name: string, command?: string) =>
      Skill.parse({
        name,
        description: "d",
        match: { alertname: ["X"] },
        risk: "high",
        action: { agent: { prompt: "p", ...(command ? { command } : {}) }, with: {} },
      });
    const skills = [
      agentSkill("ghost-fix", "ghost"),
      agentSkill("default-fix"),
      agentSkill("unknown-fix", "nobody-configured-this"),
    ];
    const config = loadConfig({
      DATA_DIR: join(root, "status"),
      AGENT_COMMANDS: JSON.stringify({ ghost: ["ghost-cli-not-installed"], present: ["sh"] }),
      AGENT_DEFAULT: "present",
    });
    // What serve gives the tools in embedded mode: the in-process runners' view of their PATH.
    const deps = {
      config,
      log: silentLogger,
      store,
      queue,
      now: Date.now,
      skills: () => skills,
      missingAgentClis: () => missingAgentClis(skills, config.agents, process.env.PATH ?? ""),
    } as unknown as McpDeps;
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await createMcpServer(deps, { subject: "reader", scopes: new Set(["read"]), via: "token" }).connect(serverSide);
    const client = new Client({ name: "isolation-test", version: "1.0.0" });
    await client.connect(clientSide);
    try {
      const r = (await client.callTool({ name: "system_status", arguments: {} })) as CallToolResult;
      expect(r.isError).toBeFalsy();
      expect((r.structuredContent as { missing_agent_clis: unknown }).missing_agent_clis).toEqual([
        {
          agent: "ghost",
          program: "ghost-cli-not-installed",
          skills: ["ghost-fix"],
          hint: expect.stringContaining("AGENT_COMMANDS"),
        },
        {
          agent: "nobody-configured-this",
          program: null,
          skills: ["unknown-fix"],
          hint: expect.stringContaining("AGENT_COMMANDS has no"),
        },
      ]);
      expect(r.content.map((c) => (c.type === "text" ? c.text : "")).join("")).toContain(
        "agent CLI not installed: ghost-cli-not-installed (ghost-fix)",
      );
    } finally {
      await client.close();
      await queue.close();
      await store.close();
    }
  });
});
