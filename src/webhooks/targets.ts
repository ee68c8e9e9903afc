import { z } from "zod";
import type { Logger } from "../shared/logger.ts";
import { errorMessage } from "../shared/errors.ts";
import { formatProblem, loadYamlFolder, type FileProblem } from "../shared/yaml-folder.ts";
import type { Executor } from "../store/sql.ts";
import { parseSecrets } from "./sign.ts";

// Where webhooks go. A target is a YAML file in WEBHOOKS_DIR (GitOps style, one target per file)
// or registered at run time through MCP (register_webhook; stored in `webhook_targets`). Its
// secret is never written down: `secret_env` names the env var that holds it — one `whsec_`
// secret, or two separated by a space (newest first) while the secret is rotated.

/** The events a target can subscribe to (`*`: all of them). */
export const WEBHOOK_EVENTS = [
  "incident.created",
  "incident.escalated",
  "incident.fix_failed",
  "incident.resolved",
  "approval.requested",
  "task.failed",
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** Headers a target may not set: the signature's, and what HTTP itself decides. */
const RESERVED_HEADERS =
  /^(webhook-.*|host|content-type|content-length|transfer-encoding|connection|keep-alive|upgrade|te|trailer|expect)$/i;

export const TargetSpec = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "lower-case letters, digits, '.', '_' and '-', at most 64"),
    url: z
      .string()
      .max(2048)
      .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), "an absolute http:// or https:// URL")
      .refine(
        (u) => !URL.canParse(u) || (!new URL(u).username && !new URL(u).password),
        "no credentials in the URL; use headers or the signature",
      ),
    secret_env: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]{0,127}$/, "the name of an env var (A-Z, 0-9, _)")
      .optional(),
    events: z.array(z.enum([...WEBHOOK_EVENTS, "*"])).min(1),
    namespaces: z.array(z.string().min(1).max(253)).min(1).optional(),
    headers: z
      .record(
        z
          .string()
          .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/, "a header name")
          .refine((h) => !RESERVED_HEADERS.test(h), "reserved header"),
        z
          .string()
          .max(1024)
          .regex(/^[^\r\n\0]*$/, "no line breaks"),
      )
      .optional(),
    signing: z.enum(["standard", "jws"]).default("standard"),
  })
  .strict()
  .refine((t) => t.signing === "jws" || t.secret_env !== undefined, {
    message: "secret_env is required unless signing is jws",
    path: ["secret_env"],
  });
export type TargetSpec = z.infer<typeof TargetSpec>;

export type WebhookTarget = {
  name: string;
  url: string;
  events: string[];
  namespaces?: string[];
  headers?: Record<string, string>;
  signing: "standard" | "jws";
  source: "file" | "mcp";
  secretEnv?: string;
  /** Where a file target came from. */
  file?: string;
  /** Active whsec_ secrets, newest first; [] when the env var is unset (or the target has none). Throws webhook.bad_secret for a malformed one. */
  secrets(): string[];
};

export type TargetProblem = FileProblem;

/** Does `target` want `event` about an incident in `namespace`? */
export function subscribes(
  t: Pick<WebhookTarget, "events" | "namespaces">,
  event: string,
  namespace: string | null,
): boolean {
  if (!t.events.includes(event) && !t.events.includes("*")) return false;
  if (!t.namespaces) return true;
  return namespace !== null && t.namespaces.includes(namespace);
}

export function buildTarget(
  spec: TargetSpec,
  source: "file" | "mcp",
  env: (name: string) => string | undefined,
  file?: string,
): WebhookTarget {
  return {
    name: spec.name,
    url: spec.url,
    events: spec.events,
    ...(spec.namespaces && { namespaces: spec.namespaces }),
    ...(spec.headers && { headers: spec.headers }),
    signing: spec.signing,
    source,
    ...(spec.secret_env && { secretEnv: spec.secret_env }),
    ...(file && { file }),
    secrets: () => (spec.secret_env ? parseSecrets(env(spec.secret_env)) : []),
  };
}

export function loadTargetFiles(
  dir: string,
  env: (name: string) => string | undefined,
): { targets: WebhookTarget[]; problems: TargetProblem[] } {
  const loaded = loadYamlFolder(dir, TargetSpec, { what: "webhook target", nameOf: (t) => t.name });
  // A missing folder is the default setup (no file targets), not a problem.
  const problems =
    loaded.unreadableFolder && /not found/.test(loaded.problems[0]?.message ?? "") ? [] : loaded.problems;
  return { targets: loaded.items.map((i) => buildTarget(i.item, "file", env, i.file)), problems };
}

/** MCP-registered targets, from the database. A row that no longer parses is skipped (and logged by the caller). */
export async function loadTargetRows(
  db: Executor,
  env: (name: string) => string | undefined,
): Promise<{ targets: WebhookTarget[]; bad: string[] }> {
  const rows = await db
    .selectFrom("webhook_targets")
    .select(["name", "spec"])
    .where("source", "=", "mcp")
    .where("spec", "is not", null)
    .orderBy("name")
    .execute();
  const targets: WebhookTarget[] = [];
  const bad: string[] = [];
  for (const r of rows) {
    try {
      targets.push(buildTarget(TargetSpec.parse(JSON.parse(r.spec!)), "mcp", env));
    } catch {
      bad.push(r.name);
    }
  }
  return { targets, bad };
}

export type RegistryDeps = {
  db: Executor;
  dir: string;
  env: (name: string) => string | undefined;
  log: Logger;
  now: () => number;
};

/** How often refresh() also reads the folder again (files change by GitOps, without a signal). */
const FILES_TTL_MS = 30_000;
export type ReloadResult = { targets: WebhookTarget[]; problems: TargetProblem[] };

/**
 * Every target this replica knows: the files (read on reload) and the MCP-registered ones (read
 * from the database on reload and on refresh). A file target shadows an MCP target of the same
 * name (register_webhook refuses such a name; this covers a file added later).
 */
export function createWebhookRegistry(deps: RegistryDeps) {
  let files: WebhookTarget[] = [];
  let registered: WebhookTarget[] = [];
  let problems: TargetProblem[] = [];
  let filesReadAt = Number.NEGATIVE_INFINITY;

  const all = (): WebhookTarget[] => [...files, ...registered.filter((r) => !files.some((f) => f.name === r.name))];

  function readFiles(): void {
    const loaded = loadTargetFiles(deps.dir, deps.env);
    // Reported when they change, not on every read.
    const before = problems.map(formatProblem).join("\n");
    files = loaded.targets;
    problems = loaded.problems;
    filesReadAt = deps.now();
    if (problems.map(formatProblem).join("\n") !== before)
      for (const p of problems) deps.log.warn({ problem: formatProblem(p) }, "webhook target file skipped");
  }

  async function refresh(opts: { files?: boolean } = {}): Promise<void> {
    if (opts.files || deps.now() - filesReadAt >= FILES_TTL_MS) readFiles();
    const { targets, bad } = await loadTargetRows(deps.db, deps.env);
    if (bad.length)
      deps.log.warn({ targets: bad }, "webhook targets in the database that no longer parse were skipped");
    registered = targets;
  }

  return {
    list: all,
    get: (name: string): WebhookTarget | undefined => all().find((t) => t.name === name),
    /** The problems of the last file reload, as file:line: message. */
    problems: () => problems.map(formatProblem),
    /** Reads the folder and the database again. */
    async reload(): Promise<ReloadResult> {
      readFiles();
      try {
        await refresh();
      } catch (err) {
        deps.log.warn({ err: { message: errorMessage(err) } }, "webhook targets registered through MCP not read");
      }
      return { targets: all(), problems };
    },
    /** Reads the MCP-registered targets again, and the folder when it was last read 30 s ago (the sender calls it before each fan-out). */
    refresh,
  };
}

export type WebhookRegistry = ReturnType<typeof createWebhookRegistry>;
