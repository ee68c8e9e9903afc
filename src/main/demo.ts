import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { git } from "../gitops/git.ts";
import { APP_ROOT } from "../shared/app-root.ts";

// `pitcrew demo`: the whole loop on this machine, in a temporary folder, with no network. A GitOps
// repository gets a bad rollout; a real `pitcrew serve` (embedded) receives a KubePodCrashLooping
// payload on its AlertManager webhook; the demo prints the timeline as it happens (through MCP, as
// any client would) — plan, runner, pull request and its diff, approval, merge — then resolves the
// alert and shows the incident resolved with the fix named. With TELEGRAM_BOT_TOKEN and
// TELEGRAM_CHAT_ID set, the approval waits for a real button press instead of the policy.

// The installation (bin/, skills/), from the sources or from dist/.
const ROOT = APP_ROOT;
const NS = "payments";
const IMAGE = "registry.example.com/checkout";

export type DemoOptions = {
  env: Record<string, string | undefined>;
  out: (line: string) => void;
  /** How long to wait for each step (longer when a person must press a button). */
  stepTimeoutMs?: number;
  keep?: boolean;
};

const manifest = (tag: string) => `# The checkout service of the payments team.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  namespace: ${NS}
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: checkout
          image: ${IMAGE}:${tag}
`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A bare repository whose history is a good release and then the bad one. */
async function gitopsRepo(dir: string): Promise<string> {
  const bare = join(dir, "gitops.git");
  const work = join(dir, "work");
  await git(dir, ["init", "--quiet", "--bare", "--initial-branch", "main", bare]);
  await git(dir, ["init", "--quiet", "--initial-branch", "main", work]);
  const env = {
    GIT_AUTHOR_NAME: "CI",
    GIT_AUTHOR_EMAIL: "ci@example.com",
    GIT_COMMITTER_NAME: "CI",
    GIT_COMMITTER_EMAIL: "ci@example.com",
  };
  await mkdir(join(work, "apps", NS), { recursive: true });
  for (const tag of ["v1.4.1", "v1.4.2"]) {
    await writeFile(join(work, "apps", NS, "checkout.yaml"), manifest(tag));
    await git(work, ["add", "--all"]);
    await git(work, ["commit", "--quiet", "-m", `deploy checkout ${tag}`], { env });
  }
  await git(work, ["push", "--quiet", bare, "HEAD:refs/heads/main"]);
  return bare;
}

function alertPayload(status: "firing" | "resolved", startsAt: string, fingerprint: string): unknown {
  const labels = {
    alertname: "KubePodCrashLooping",
    container: "checkout",
    endpoint: "http",
    job: "kube-state-metrics",
    namespace: NS,
    pod: "checkout-7d9f8b6c5-x2x9k",
    reason: "CrashLoopBackOff",
    service: "kube-state-metrics",
    severity: "warning",
  };
  const annotations = {
    summary: "Pod is crash looping.",
    description: `Pod ${NS}/checkout-7d9f8b6c5-x2x9k (checkout) is in waiting state (reason: "CrashLoopBackOff").`,
  };
  return {
    version: "4",
    groupKey: '{}:{alertname="KubePodCrashLooping"}',
    truncatedAlerts: 0,
    status,
    receiver: "pitcrew",
    groupLabels: { alertname: "KubePodCrashLooping" },
    commonLabels: labels,
    commonAnnotations: annotations,
    externalURL: "http://alertmanager.example:9093",
    alerts: [
      {
        status,
        labels,
        annotations,
        startsAt,
        endsAt: status === "resolved" ? new Date().toISOString() : "0001-01-01T00:00:00Z",
        generatorURL: "http://prometheus.example:9090/graph?g0.expr=kube_pod_container_status_waiting_reason",
        fingerprint,
      },
    ],
  };
}

type Event = {
  seq: number;
  type: string;
  actor: string;
  channel: string;
  reason: string | null;
  data: Record<string, unknown>;
  occurred_at: string;
};

/** Runs the demo; resolves with the incident id once it is resolved, rejects when a step stalls. */
export async function runDemo(opts: DemoOptions): Promise<{ incidentId: string; ms: number }> {
  const started = Date.now();
  const say = (line = "") => opts.out(line);
  const at = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
  const step = (n: number, text: string) => say(`${at()}  ${n}. ${text}`);
  const telegram = !!(opts.env.TELEGRAM_BOT_TOKEN && opts.env.TELEGRAM_CHAT_ID);
  const stepTimeoutMs = opts.stepTimeoutMs ?? (telegram ? 600_000 : 30_000);
  const dir = await mkdtemp(join(tmpdir(), "pitcrew-demo-"));
  let child: ChildProcess | undefined;
  let client: Client | undefined;
  try {
    say(`Pitcrew demo — everything runs on this machine, in ${dir}`);
    say();
    const bare = await gitopsRepo(dir);
    step(1, `GitOps repository ${bare}: checkout ${IMAGE}:v1.4.1, then the bad rollout v1.4.2`);

    const port = await freePort();
    const token = randomBytes(24).toString("base64url");
    const env: Record<string, string> = {
      PATH: opts.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
      HOME: opts.env.HOME ?? dir,
      PORT: String(port),
      HOST: "127.0.0.1",
      DATA_DIR: join(dir, "data"),
      GITOPS_REPO: bare,
      SKILLS_DIR: join(ROOT, "skills"),
      ALERTMANAGER_TOKEN: token,
      LOG_LEVEL: "warn",
      // The control plane runs the same code as the demo: the sources when the demo runs from them.
      ...(import.meta.url.endsWith(".ts") && { PITCREW_FROM_SOURCE: "1" }),
      // Without a person to ask, the policy approves the medium-risk rollback (and says so).
      AUTO_APPROVE_MAX_RISK: telegram ? (opts.env.AUTO_APPROVE_MAX_RISK ?? "read") : "medium",
    };
    for (const k of [
      "TELEGRAM_BOT_TOKEN",
      "TELEGRAM_CHAT_ID",
      "TELEGRAM_APPROVER_IDS",
      "TELEGRAM_API_ROOT",
      "TELEGRAM_ROUTES",
    ])
      if (opts.env[k]) env[k] = opts.env[k]!;
    let stderr = "";
    child = spawn(process.execPath, [join(ROOT, "bin", "pitcrew.mjs"), "serve"], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    child.stderr!.on("data", (b) => (stderr = (stderr + b).slice(-4000)));
    const exited = new Promise<never>((_, reject) =>
      child!.once("exit", (code) =>
        reject(new Error(`pitcrew serve exited (${code}): ${stderr.trim().split("\n").slice(-3).join(" ")}`)),
      ),
    );
    exited.catch(() => {});
    const url = `http://127.0.0.1:${port}`;
    await Promise.race([
      until(
        async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok === true,
        stepTimeoutMs,
        "the control plane to be ready",
      ),
      exited,
    ]);
    step(2, `Control plane up at ${url} — embedded: SQLite, in-process queue and runners`);

    const mcpToken = (await readFile(join(dir, "data", "secrets", "mcp.token"), "utf8")).trim();
    // The newest protocol when the server speaks it (it does), the 2025 handshake otherwise.
    client = new Client({ name: "pitcrew-demo", version: "1" }, { versionNegotiation: { mode: "auto" } });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${mcpToken}` } },
      }),
    );
    const call = async <T>(name: string, args: Record<string, unknown>): Promise<T> => {
      const r = (await client!.callTool({ name, arguments: args })) as {
        isError?: boolean;
        structuredContent?: unknown;
        content?: Array<{ text?: string }>;
      };
      if (r.isError) throw new Error(`${name}: ${r.content?.[0]?.text ?? "failed"}`);
      return r.structuredContent as T;
    };

    const startsAt = new Date().toISOString();
    const fingerprint = randomBytes(8).toString("hex");
    const post = async (status: "firing" | "resolved") => {
      const res = await fetch(`${url}/webhooks/alertmanager`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify(alertPayload(status, startsAt, fingerprint)),
      });
      if (!res.ok) throw new Error(`the webhook answered ${res.status}: ${await res.text()}`);
      return (await res.json()) as { incidents: string[] };
    };
    const incidentId = (await post("firing")).incidents[0]!;
    step(3, `AlertManager → KubePodCrashLooping ${NS}/checkout → incident ${incidentId}`);

    // The timeline, as it happens.
    let cursor: string | undefined;
    const seen: Event[] = [];
    const poll = async () => {
      const r = await call<{ events: Event[] }>("list_events", {
        incident_id: incidentId,
        limit: 500,
        ...(cursor ? { cursor } : {}),
      });
      for (const e of r.events) {
        cursor = String(e.seq);
        seen.push(e);
        const line = narrate(e);
        if (line) say(`${at()}     ${line}`);
      }
    };
    const waitFor = (type: string, what: string) =>
      Promise.race([
        until(
          async () => {
            await poll();
            const bad = seen.find((e) => e.type === "incident.escalated" || e.type === "incident.failed");
            if (bad)
              throw new DemoStalled(`the incident went ${bad.type.slice("incident.".length)}: ${bad.reason ?? ""}`);
            return seen.some((e) => e.type === type);
          },
          stepTimeoutMs,
          what,
        ),
        exited,
      ]);

    await waitFor("incident.planned", "a plan");
    step(4, "Planned (see why above); the fix goes to a runner");
    await waitFor("task.pr_opened", "the pull request");
    const pr = seen.find((e) => e.type === "task.pr_opened")!.data as { number?: number; branch?: string };
    step(5, `Pull request #${pr.number} on ${pr.branch}`);
    if (telegram) step(6, "Waiting for an approver to press Approve on the approval message in Telegram…");
    await waitFor("approval.approved", telegram ? "an approver to press Approve in Telegram" : "the approval");
    const approval = seen.find((e) => e.type === "approval.approved")!;
    const approver = typeof approval.data.decidedBy === "string" ? approval.data.decidedBy : approval.actor;
    step(
      6,
      approval.channel === "policy"
        ? `Approved by policy — the demo sets AUTO_APPROVE_MAX_RISK=medium: ${approval.reason}`
        : `Approved by ${approver} via ${approval.channel}`,
    );
    await waitFor("pr.merged", "the merge");
    const merged = seen.find((e) => e.type === "pr.merged")!.data as { sha?: string };
    const diff = await git(bare, ["diff", `${merged.sha}^1`, merged.sha!, "--"]);
    step(7, `Merged as ${merged.sha?.slice(0, 7)}; the change on main:`);
    for (const l of diff.trimEnd().split("\n")) say(`          ${l}`);
    const trailers = (await git(bare, ["log", "-1", "--format=%(trailers:only,unfold)", merged.sha!])).trim();
    for (const l of trailers.split("\n").filter(Boolean)) say(`          ${l}`);

    await post("resolved");
    step(8, "AlertManager → the alert resolved");
    await waitFor("incident.resolved", "the incident to resolve");
    const resolved = seen.find((e) => e.type === "incident.resolved")!;
    step(9, `Incident ${incidentId} resolved: ${resolved.reason}`);

    say();
    say("Timeline:");
    for (const e of seen)
      say(
        `  ${e.occurred_at.slice(11, 23)}  ${e.type.padEnd(22)} ${e.actor.padEnd(28)} ${(e.reason ?? describe(e)).slice(0, 110)}`,
      );
    say();
    const ms = Date.now() - started;
    say(`Done in ${(ms / 1000).toFixed(1)} s.${opts.keep ? ` Files kept in ${dir}.` : ""}`);
    return { incidentId, ms };
  } finally {
    await client?.close().catch(() => {});
    if (child && child.exitCode === null) {
      const gone = new Promise((r) => child!.once("exit", r));
      child.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([gone, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
      clearTimeout(timer);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    if (!opts.keep) await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/** One line per event worth telling; progress and bookkeeping stay in the timeline. */
function narrate(e: Event): string | undefined {
  const d = e.data ?? {};
  switch (e.type) {
    case "incident.planned":
      return `plan: ${String(d.skill)} (${String(d.planner)} planner, confidence ${String(d.confidence)}, ${String(d.risk)} risk): ${e.reason ?? ""}`;
    case "task.started":
      return `runner ${e.actor.replace(/^runner:/, "")} started the fix`;
    case "task.progress":
      return `runner: ${String(d.message ?? "")}`;
    case "approval.requested":
      return `approval requested: ${e.reason ?? ""}`;
    case "incident.escalated":
    case "incident.failed":
      return `${e.type}: ${e.reason ?? ""}`;
    default:
      return undefined;
  }
}

/** What an event without a reason says: a progress message, a task's kind, a pull request. */
function describe(e: Event): string {
  const d = e.data ?? {};
  if (typeof d.message === "string") return d.message;
  if (typeof d.url === "string") return `#${String(d.number)} ${d.url}`;
  if (typeof d.kind === "string") return `${d.kind} task`;
  return "";
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A transient error (the server busy) is retried; the incident going wrong ends the demo.
    if (await check().catch((err) => (err instanceof DemoStalled ? Promise.reject(err) : false))) return;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${Math.round(timeoutMs / 1000)} s`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

class DemoStalled extends Error {}
