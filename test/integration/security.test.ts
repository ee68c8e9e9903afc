import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { buildExecutors } from "../../runner/executors/index.ts";
import type { ExecContext } from "../../runner/executors/types.ts";
import type { TaskMessage } from "../../src/bus/jobs.ts";
import { createMemoryQueue } from "../../src/bus/memory.ts";
import { loadConfig, type Config } from "../../src/config/load.ts";
import { gitResult } from "../../src/gitops/git.ts";
import { ASKPASS_PATH, createGitHubHost } from "../../src/gitops/github.ts";
import type { GitHost } from "../../src/gitops/port.ts";
import { createMcpServer } from "../../src/mcp/server.ts";
import type { McpDeps } from "../../src/mcp/tool.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createTaskService } from "../../src/tasks/service.ts";
import { rejection } from "../helpers/assert.ts";
import { makeBareRepo } from "../helpers/git.ts";
import { freePort, spawnPitcrew } from "../helpers/process.ts";
import { storeFactories, type TestStore } from "../helpers/store.ts";
import { waitFor } from "../helpers/wait.ts";

// The GitOps credential goes to the GitOps repository and nowhere else. Real git clones against
// real local HTTP and HTTPS servers that answer 401 with a Basic challenge and record every
// Authorization header they receive, as a server run by someone who wants the token would.

const root = mkdtempSync(join(tmpdir(), "pitcrew-security-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const TOKEN = "ghs_0123456789abcdefghijklmnopqrstuvwxyzAB";
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const STOLEN = basic("x-access-token", TOKEN);

type Seen = { path: string; authorization: string | null };

/** A server that wants credentials for everything and keeps whatever it is sent. */
function trap() {
  const seen: Seen[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    seen.push({ path: (req.url ?? "").split("?")[0]!, authorization: req.headers.authorization ?? null });
    res
      .writeHead(401, { "WWW-Authenticate": 'Basic realm="git"', "Content-Type": "text/plain" })
      .end("credentials, please\n");
  };
  return { seen, handler };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return (server.address() as { port: number }).port;
}

function selfSignedCert(dir: string): { key: string; cert: string; certFile: string } {
  const keyFile = join(dir, "key.pem");
  const certFile = join(dir, "cert.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "pipe" },
  );
  return { key: readFileSync(keyFile, "utf8"), cert: readFileSync(certFile, "utf8"), certFile };
}

function context(): ExecContext {
  return { signal: new AbortController().signal, attempt: 1, progress: async () => {}, log: async () => {} };
}

let seq = 0;
const promptTask = (repoUrl: string): TaskMessage => ({
  v: 1,
  taskId: `tsk_sec_${++seq}`,
  kind: "prompt",
  pool: "default",
  incidentId: null,
  payload: { prompt: "look around", agent: "true", repoUrl },
  createdAt: Date.now(),
});

describe("git credentials", () => {
  const https = trap();
  const http = trap();
  let httpsServer: Server;
  let httpServer: Server;
  let httpsPort = 0;
  let httpPort = 0;
  let caFile = "";
  let host: GitHost;
  let gitopsUrl = "";

  beforeAll(async () => {
    const tls = selfSignedCert(root);
    caFile = tls.certFile;
    httpsServer = createHttpsServer({ key: tls.key, cert: tls.cert }, https.handler) as unknown as Server;
    httpServer = createHttpServer(http.handler);
    httpsPort = await listen(httpsServer);
    httpPort = await listen(httpServer);
    // GitHub Enterprise at https://127.0.0.1:<port>: the GitOps repository is …/acme/gitops.git.
    const github = createGitHubHost({
      owner: "acme",
      repo: "gitops",
      token: TOKEN,
      baseUrl: `https://127.0.0.1:${httpsPort}/api/v3`,
    });
    gitopsUrl = github.cloneUrl();
    // The only addition: git must trust the test server's certificate.
    host = { ...github, auth: async () => ({ env: { ...(await github.auth()).env, GIT_SSL_CAINFO: caFile } }) };
  });
  afterAll(() => {
    httpsServer.close();
    httpServer.close();
  });

  const configFor = (allowed: string[]): Config =>
    loadConfig({
      DATA_DIR: join(root, "data"),
      GITOPS_PROVIDER: "github",
      GITOPS_REPO: "acme/gitops",
      GITHUB_TOKEN: TOKEN,
      GITHUB_API_URL: `https://127.0.0.1:${httpsPort}/api/v3`,
      ALLOWED_REPOS: allowed.join(","),
      AGENT_COMMANDS: JSON.stringify({ true: ["true"] }),
      AGENT_DEFAULT: "true",
    });
  const executorsFor = (allowed: string[]) =>
    buildExecutors(configFor(allowed), { host, env: { PATH: process.env.PATH } });
  const requestsTo = (s: { seen: Seen[] }, path: string) => s.seen.filter((r) => r.path.startsWith(path));

  it("offers the token to the GitOps repository's own https URL (the helper still works)", async () => {
    const executors = await executorsFor([]);
    const err = await rejection(executors.prompt!(promptTask(gitopsUrl), context()));
    // The trap refuses every answer, so the clone fails; what matters is what it was sent.
    expect(err.code).toBe("agent.clone_failed");
    expect(requestsTo(https, "/acme/gitops.git").map((r) => r.authorization)).toContain(STOLEN);
    expect(err.message).not.toContain(TOKEN);
  });

  it("never sends the token to another repository, even one on ALLOWED_REPOS on the same host or over plain http", async () => {
    const evil = [
      `https://127.0.0.1:${httpsPort}/evil/repo.git`,
      `https://127.0.0.1:${httpsPort}/acme/gitops-fork.git`,
      `http://127.0.0.1:${httpPort}/acme/gitops.git`,
    ];
    const executors = await executorsFor(evil);
    for (const url of evil) {
      const err = await rejection(executors.prompt!(promptTask(url), context()));
      expect(err.code, url).toBe("agent.clone_failed");
    }
    // The plain-http clone was tried (the repository is allowed), without credentials of any kind.
    // (The https ones stop earlier: only the GitOps clone's environment trusts the test CA.)
    expect(requestsTo(http, "/acme/gitops.git").length).toBeGreaterThanOrEqual(1);
    const asked = [
      ...requestsTo(https, "/evil/"),
      ...requestsTo(https, "/acme/gitops-fork.git"),
      ...requestsTo(http, "/"),
    ];
    expect(asked.map((r) => r.authorization)).toEqual(asked.map(() => null));
  });

  it("refuses a repository that is not on the allow-list before sending it a single request", async () => {
    const executors = await executorsFor([]);
    const before = https.seen.length + http.seen.length;
    for (const url of [
      `https://127.0.0.1:${httpsPort}/other/repo.git`,
      `http://127.0.0.1:${httpPort}/acme/gitops.git`,
    ]) {
      const err = await rejection(executors.prompt!(promptTask(url), context()));
      expect(err).toMatchObject({ code: "task.repo_not_allowed", kind: "forbidden", retryable: false });
    }
    expect(https.seen.length + http.seen.length).toBe(before);
  });

  it("has the askpass helper itself refuse any URL but the pinned one, whoever runs git with it", async () => {
    const { env } = await host.auth();
    const dir = mkdtempSync(join(root, "direct-"));
    const isolated = { GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1", HOME: dir };
    const targets = [`https://127.0.0.1:${httpsPort}/thief/repo.git`, `http://127.0.0.1:${httpPort}/acme/gitops.git`];
    for (const [i, url] of targets.entries()) {
      const r = await gitResult(dir, ["clone", "--quiet", "--", url, `c${i}`], { env: { ...isolated, ...env } });
      expect(r.exitCode, url).not.toBe(0);
      expect(r.stderr).not.toContain(TOKEN);
    }
    expect(
      [...requestsTo(https, "/thief/"), ...requestsTo(http, "/")].map((r) => r.authorization).filter((a) => a !== null),
    ).toEqual([]);
  });

  it("answers git's prompts only for the pinned https URL", () => {
    const ask = (prompt: string, pinned = "https://github.com/acme/gitops.git") => {
      try {
        return execFileSync("sh", [ASKPASS_PATH, prompt], {
          env: { PITCREW_GIT_URL: pinned, PITCREW_GIT_USERNAME: "x-access-token", PITCREW_GIT_PASSWORD: TOKEN },
          encoding: "utf8",
          stdio: "pipe",
        });
      } catch {
        return "refused";
      }
    };
    expect(ask("Username for 'https://github.com/acme/gitops.git': ")).toBe("x-access-token\n");
    expect(ask("Password for 'https://x-access-token@github.com/acme/gitops.git': ")).toBe(`${TOKEN}\n`);
    for (const prompt of [
      "Password for 'https://x-access-token@github.com': ", // no path: useHttpPath was turned off
      "Password for 'https://x-access-token@github.com/acme/other.git': ",
      "Password for 'https://x-access-token@github.com.evil.example/acme/gitops.git': ",
      "Password for 'https://x-access-token@evil.example/acme/gitops.git': ",
      "Password for 'https://x-access-token@github.com:8443/acme/gitops.git': ",
      "Password for 'http://x-access-token@github.com/acme/gitops.git': ",
      "Password for 'https://github.com@evil.example/acme/gitops.git': ",
      "Enter passphrase for key '/root/.ssh/id_ed25519': ",
    ]) {
      expect(ask(prompt), prompt).toBe("refused");
    }
    expect(ask("Password for 'https://x-access-token@github.com/acme/gitops.git': ", "")).toBe("refused");
  });
});

describe("submit_task allow-list", () => {
  let store: TestStore;
  let client: Client;
  let bare = "";
  const queue = createMemoryQueue({ log: silentLogger });

  beforeAll(async () => {
    store = await (await storeFactories()).find((f) => f.name === "sqlite")!.make();
    bare = makeBareRepo(mkdtempSync(join(root, "mcp-")), [{ message: "init", files: { "a.yaml": "a: 1\n" } }]);
    const config = loadConfig({
      DATA_DIR: join(root, "mcp-data"),
      GITOPS_REPO: bare,
      ALLOWED_REPOS: "https://git.example.com/team/tools.git, acme/docs",
    });
    const now = () => Date.now();
    const deps = {
      config,
      log: silentLogger,
      store,
      queue,
      tasks: createTaskService({ store, log: silentLogger, now }),
      now,
      skills: () => [],
      kick: () => {},
    } as unknown as McpDeps;
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await createMcpServer(deps, { subject: "writer", scopes: new Set(["read", "write"]), via: "token" }).connect(
      serverSide,
    );
    client = new Client({ name: "security-test", version: "1.0.0" });
    await client.connect(clientSide);
  });
  afterAll(async () => {
    await client.close();
    await queue.close();
    await store.close();
  });

  const submit = async (repo_url: string) => {
    const r = (await client.callTool({
      name: "submit_task",
      arguments: { kind: "prompt", prompt: "steal the token", repo_url },
    })) as CallToolResult;
    return { isError: !!r.isError, text: r.content.map((c) => (c.type === "text" ? c.text : "")).join("\n") };
  };
  const taskCount = async () =>
    Number(
      (
        await store.db
          .selectFrom("tasks")
          .select((e) => e.fn.countAll().as("n"))
          .executeTakeFirstOrThrow()
      ).n,
    );

  it("refuses a write-scoped caller's repository outside the allow-list, with a clear error and nothing queued", async () => {
    for (const url of [
      "http://attacker.example/x.git",
      "https://github.com/acme/gitops-evil.git",
      "https://git.example.com/team/tools-other.git",
      "/etc",
    ]) {
      const r = await submit(url);
      expect(r, url).toMatchObject({ isError: true, text: expect.stringContaining("is not allowed") });
      expect(r.text).toContain("ALLOWED_REPOS");
    }
    expect(await taskCount()).toBe(0);
  });

  it("queues tasks for the GitOps repository and the repositories ALLOWED_REPOS lists", async () => {
    for (const url of [
      bare,
      `file://${bare}`,
      "https://git.example.com/team/tools.git",
      "https://GIT.example.com/team/tools",
      "https://github.com/acme/docs.git",
    ]) {
      expect(await submit(url), url).toMatchObject({ isError: false });
    }
    expect(await taskCount()).toBe(5);
  });
});

describe("AlertManager token in the start-up banner", () => {
  /** Starts `pitcrew serve`, waits for its banner, stops it; returns everything it printed. */
  async function startOnce(env: Record<string, string>): Promise<string> {
    const p = spawnPitcrew(["serve"], { PORT: String(await freePort()), LOG_LEVEL: "info", ...env });
    try {
      // The receiver snippet ends with a note on where its credential is.
      await waitFor(() => /# the token is shown once|# credentials_file:/.test(p.stdout()), 30_000, 100);
      p.child.kill("SIGTERM");
      await p.exited;
      return p.stdout() + p.stderr();
    } finally {
      p.child.kill("SIGKILL");
    }
  }

  it("shows a generated token once, at creation, and never again", async () => {
    const dataDir = mkdtempSync(join(root, "banner-"));
    const first = await startOnce({ DATA_DIR: dataDir });
    const token = readFileSync(join(dataDir, "secrets", "alertmanager.token"), "utf8").trim();
    expect(first).toContain(`credentials: ${token}`);

    const second = await startOnce({ DATA_DIR: dataDir });
    expect(second).not.toContain(token);
    expect(second).toContain("credentials_file: /etc/alertmanager/secrets/pitcrew-token");
    expect(second).toContain(join(dataDir, "secrets", "alertmanager.token"));
  });

  it("never prints a configured ALERTMANAGER_TOKEN", async () => {
    const secret = "configured-am-token-2f7c9a41d3e8";
    const out = await startOnce({ DATA_DIR: mkdtempSync(join(root, "banner-")), ALERTMANAGER_TOKEN: secret });
    expect(out).toContain("credentials_file: /etc/alertmanager/secrets/pitcrew-token");
    expect(out).toContain("ALERTMANAGER_TOKEN");
    expect(out).not.toContain(secret);
  });
});
