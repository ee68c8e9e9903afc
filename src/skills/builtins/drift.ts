import { z } from "zod";
import { AppError, errorMessage, invalid, notFound, unavailable } from "../../shared/errors.ts";
import { readBodyCapped } from "../../shared/read-body.ts";

// `drift`: an Argo CD application that is OutOfSync is synced back to git (mode "sync"), or
// reported with its drifted resources so the runner can open a PR that codifies the live change
// (mode "pr"). Argo CD REST API v1, bearer token. The token is only ever put in the Authorization
// header: no message, detail or cause built here contains it.

const MAX_APP_BYTES = 16 * 1024 * 1024;
const K8S_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export const DriftParams = z
  .object({
    application: z.string().regex(K8S_NAME, "an Argo CD application name"),
    mode: z.enum(["sync", "pr"]).default("sync"),
    /** Argo CD base URL; must be the configured one or listed in `allowedServers` (the token goes there). */
    server: z.url({ protocol: /^https?$/ }).optional(),
    project: z.string().regex(K8S_NAME, "an Argo CD project name").optional(),
  })
  .strict();
export type DriftParams = z.input<typeof DriftParams>;

export type DriftOptions = {
  baseUrl: string;
  token: string;
  timeoutMs: number;
  fetch?: typeof fetch;
  /** Other Argo CD URLs that `server` may name; the same token is sent to them. */
  allowedServers?: string[];
};

export type DriftResource = {
  group?: string;
  kind: string;
  name: string;
  namespace?: string;
  status?: string;
  health?: string;
};

export type DriftResult = {
  outcome: "synced" | "already_synced" | "pr_needed";
  summary: string;
  details: {
    application: string;
    project?: string;
    syncStatus: string;
    health?: string;
    /** The revision Argo CD last compared against (a commit SHA). */
    revision?: string;
    repoURL?: string;
    path?: string;
    targetRevision?: string;
    /** The resources whose live state differs from git. */
    outOfSync: DriftResource[];
    /** Mode sync: the revision the sync was requested for (absent for a multi-source app). */
    syncRevision?: string;
  };
};

const Source = z
  .object({ repoURL: z.string().optional(), path: z.string().optional(), targetRevision: z.string().optional() })
  .loose();

// Only the fields read here; Argo CD sends much more, and older versions omit some.
const Application = z
  .object({
    metadata: z.object({ name: z.string(), namespace: z.string().optional() }).loose(),
    spec: z
      .object({ project: z.string().optional(), source: Source.optional(), sources: z.array(Source).optional() })
      .loose(),
    status: z
      .object({
        sync: z.object({ status: z.string().optional(), revision: z.string().optional() }).loose().optional(),
        health: z.object({ status: z.string().optional() }).loose().optional(),
        resources: z
          .array(
            z
              .object({
                group: z.string().optional(),
                kind: z.string(),
                name: z.string(),
                namespace: z.string().optional(),
                status: z.string().optional(),
                health: z.object({ status: z.string().optional() }).loose().optional(),
              })
              .loose(),
          )
          .optional(),
      })
      .loose()
      .optional(),
  })
  .loose();
type Application = z.infer<typeof Application>;

export function parseDriftParams(input: unknown): z.output<typeof DriftParams> {
  const parsed = DriftParams.safeParse(input);
  if (!parsed.success) {
    const message = parsed.error.issues
      .map((i) => `${i.path.length ? `${i.path.join(".")}: ` : ""}${i.message}`)
      .join("; ");
    throw invalid("drift.invalid_params", `drift: ${message}`);
  }
  return parsed.data;
}

const origin = (u: string) => new URL(u).origin;

function chooseServer(server: string | undefined, opts: DriftOptions): string {
  if (server === undefined) return opts.baseUrl;
  const allowed = [opts.baseUrl, ...(opts.allowedServers ?? [])];
  const hit = allowed.find((a) => origin(a) === origin(server));
  if (!hit)
    throw new AppError("forbidden", "argocd.server_not_allowed", `Argo CD server ${origin(server)} is not configured`);
  return hit;
}

/** GET/POST against Argo CD with the token, a timeout, no redirects and a bounded answer. */
function argoClient(base: string, opts: DriftOptions, project: string | undefined, application: string) {
  const f = opts.fetch ?? fetch;
  return async (method: "GET" | "POST", path: string, body?: unknown): Promise<unknown> => {
    const url = new URL(path, base.endsWith("/") ? base : `${base}/`);
    if (method === "GET" && project) url.searchParams.set("project", project);
    const what = `Argo CD ${method} /${path}`;
    let res: Response;
    try {
      res = await f(url, {
        method,
        headers: {
          authorization: `Bearer ${opts.token}`,
          accept: "application/json",
          ...(body !== undefined && { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        redirect: "manual",
        signal: AbortSignal.timeout(opts.timeoutMs),
      });
    } catch (err) {
      if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) {
        throw unavailable("argocd.timeout", `${what} did not answer within ${opts.timeoutMs} ms`);
      }
      const cause = err instanceof Error ? (err.cause as { code?: string } | undefined) : undefined;
      throw unavailable("argocd.unreachable", `${what} failed: ${cause?.code ?? errorMessage(err)}`);
    }
    const { text, truncated } = await readBodyCapped(res, MAX_APP_BYTES).catch((err: unknown) => {
      throw unavailable("argocd.unreachable", `${what}: reading the answer failed: ${errorMessage(err)}`);
    });
    if (res.ok) {
      if (truncated) throw unavailable("argocd.bad_answer", `${what}: answer larger than ${MAX_APP_BYTES} bytes`);
      try {
        return JSON.parse(text);
      } catch {
        throw unavailable("argocd.bad_answer", `${what}: answer is not JSON`);
      }
    }
    throw statusError(res.status, what, argoMessage(text), application);
  };
}

export async function runDrift(params: unknown, opts: DriftOptions): Promise<DriftResult> {
  const p = parseDriftParams(params);
  const base = chooseServer(p.server, opts);
  const appPath = `api/v1/applications/${encodeURIComponent(p.application)}`;
  const call = argoClient(base, opts, p.project, p.application);

  const app = Application.safeParse(await call("GET", appPath));
  if (!app.success)
    throw unavailable(
      "argocd.bad_answer",
      `Argo CD answered an application without the expected fields: ${app.error.issues[0]?.message}`,
    );
  const details = driftDetails(app.data);
  if (p.project && details.project && details.project !== p.project) {
    throw new AppError(
      "forbidden",
      "argocd.wrong_project",
      `application ${p.application} belongs to project ${details.project}, not ${p.project}`,
    );
  }
  const health = details.health ? `, health ${details.health}` : "";

  if (details.syncStatus === "Synced") {
    return { outcome: "already_synced", summary: `${p.application} is already Synced${health}`, details };
  }
  if (details.syncStatus !== "OutOfSync") {
    // Unknown: Argo CD could not compare (repo unreachable, bad manifests); syncing now would act blind.
    throw unavailable(
      "argocd.sync_status_unknown",
      `${p.application} has sync status ${details.syncStatus}; Argo CD cannot compare it with git yet`,
    );
  }
  const drifted = details.outOfSync.length
    ? `${details.outOfSync.length} resource(s) OutOfSync: ${details.outOfSync
        .slice(0, 5)
        .map((r) => `${r.kind}/${r.name}`)
        .join(", ")}${details.outOfSync.length > 5 ? ", …" : ""}`
    : "OutOfSync";

  if (p.mode === "pr") {
    return { outcome: "pr_needed", summary: `${p.application}: ${drifted}; a PR must codify the live change`, details };
  }

  // A multi-source application has no single revision: Argo CD then syncs each source to its own.
  const multiSource = !app.data.spec.source && (app.data.spec.sources?.length ?? 0) > 0;
  const syncRevision = multiSource ? undefined : details.targetRevision || "HEAD";
  const request = { ...(syncRevision !== undefined && { revision: syncRevision }), prune: false, dryRun: false };
  await call("POST", `${appPath}/sync`, request);
  return {
    outcome: "synced",
    summary: `${p.application}: ${drifted}; sync to ${syncRevision ?? "the target revisions"} started`,
    details: { ...details, ...(syncRevision !== undefined && { syncRevision }) },
  };
}

export const DriftReportParams = z
  .object({
    mode: z.literal("report"),
    server: z.url({ protocol: /^https?$/ }).optional(),
    project: z.string().regex(K8S_NAME, "an Argo CD project name").optional(),
  })
  .strict();

export type DriftReport = {
  summary: string;
  /** Applications that are not Synced (OutOfSync, or Unknown when Argo CD cannot compare). */
  drifted: Array<
    Pick<DriftResult["details"], "application" | "project" | "syncStatus" | "health"> & { outOfSync: number }
  >;
  total: number;
};

/** Read-only: every application (of `project`, when given) and which ones drifted from git. Changes nothing. */
export async function runDriftReport(params: unknown, opts: DriftOptions): Promise<DriftReport> {
  const parsed = DriftReportParams.safeParse(params);
  if (!parsed.success)
    throw invalid(
      "drift.invalid_params",
      `drift report: ${parsed.error.issues.map((i) => `${i.path.join(".") || "params"}: ${i.message}`).join("; ")}`,
    );
  const p = parsed.data;
  const call = argoClient(chooseServer(p.server, opts), opts, p.project, "(all)");
  const list = z
    .object({ items: z.array(Application).nullable().optional() })
    .loose()
    .safeParse(await call("GET", "api/v1/applications"));
  if (!list.success)
    throw unavailable(
      "argocd.bad_answer",
      `Argo CD answered an application list without the expected fields: ${list.error.issues[0]?.message}`,
    );
  const apps = (list.data.items ?? []).map(driftDetails);
  const drifted = apps
    .filter((a) => a.syncStatus !== "Synced")
    .map((a) => ({
      application: a.application,
      ...(a.project && { project: a.project }),
      syncStatus: a.syncStatus,
      ...(a.health && { health: a.health }),
      outOfSync: a.outOfSync.length,
    }));
  const names = drifted
    .slice(0, 10)
    .map((d) => `${d.application} (${d.syncStatus}${d.outOfSync ? `, ${d.outOfSync} resource(s)` : ""})`)
    .join(", ");
  const summary = drifted.length
    ? `${drifted.length} of ${apps.length} application(s) drifted from git: ${names}${drifted.length > 10 ? ", …" : ""}`
    : `all ${apps.length} application(s) Synced`;
  return { summary, drifted, total: apps.length };
}

function driftDetails(app: Application): DriftResult["details"] {
  const source = app.spec.source ?? app.spec.sources?.[0];
  const outOfSync = (app.status?.resources ?? [])
    .filter((r) => r.status === "OutOfSync")
    .map((r) => ({
      ...(r.group && { group: r.group }),
      kind: r.kind,
      name: r.name,
      ...(r.namespace && { namespace: r.namespace }),
      status: "OutOfSync",
      ...(r.health?.status && { health: r.health.status }),
    }));
  return {
    application: app.metadata.name,
    ...(app.spec.project && { project: app.spec.project }),
    syncStatus: app.status?.sync?.status ?? "Unknown",
    ...(app.status?.health?.status && { health: app.status.health.status }),
    ...(app.status?.sync?.revision && { revision: app.status.sync.revision }),
    ...(source?.repoURL && { repoURL: source.repoURL }),
    ...(source?.path && { path: source.path }),
    ...(source?.targetRevision && { targetRevision: source.targetRevision }),
    outOfSync,
  };
}

/** Argo CD's gRPC-gateway error body is `{error, code, message}`; keep its message, short. */
function argoMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { message?: unknown; error?: unknown };
    const m = typeof body.message === "string" ? body.message : typeof body.error === "string" ? body.error : "";
    return m.slice(0, 300);
  } catch {
    return "";
  }
}

function statusError(status: number, what: string, message: string, application: string): AppError {
  const said = message ? `: ${message}` : "";
  if (status === 401 || status === 403)
    return new AppError(
      "forbidden",
      "argocd.unauthorized",
      `${what} answered ${status}: the token is missing, expired or lacks permission`,
    );
  if (status === 404) return notFound("argocd.app_not_found", `Argo CD has no application ${application}`);
  if (status === 429 || status >= 500) return unavailable("argocd.unavailable", `${what} answered ${status}${said}`);
  // Argo CD refuses a second sync while one runs (gRPC FailedPrecondition); it will finish.
  if (/another operation is already in progress/i.test(message)) {
    return new AppError("conflict", "argocd.operation_in_progress", `${what} answered ${status}${said}`, {
      retryable: true,
    });
  }
  return invalid("argocd.bad_request", `${what} answered ${status}${said}`);
}
