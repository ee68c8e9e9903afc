import type { Config } from "../config/load.ts";
import { conflict, invalid, notFound } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import { createJwsSigner, rotateKey } from "./keys.ts";
import {
  deleteRegisteredTarget,
  disabledTargets,
  enableTarget,
  getWebhookDelivery,
  redeliverWebhook,
  saveRegisteredTarget,
  type Disabled,
} from "./repo.ts";
import { createWebhookSender } from "./sender.ts";
import {
  buildTarget,
  createWebhookRegistry,
  loadTargetFiles,
  loadTargetRows,
  TargetSpec,
  type TargetProblem,
  type WebhookTarget,
} from "./targets.ts";
import { createDeliveryTokens } from "./token.ts";
import { formatProblem } from "../shared/yaml-folder.ts";
import { kickDeliverer } from "../notify/requests.ts";

// Webhooks as the control plane runs them: the registry of targets, the sender the deliverer uses
// for the `webhook` channel, and what the MCP tools do (register, list, delete targets; redeliver;
// rotate the JWS key). Tool files only adapt arguments to these functions.

export type WebhookDeps = { store: Store; log: Logger; now: () => number; env: (name: string) => string | undefined };

export function createWebhooks(
  config: Pick<Config, "webhooks" | "publicUrl">,
  deps: WebhookDeps,
  opts: { retryDelaysMs?: number[] } = {},
) {
  const { store } = deps;
  const registry = createWebhookRegistry({
    db: store.db,
    dir: config.webhooks.dir,
    env: deps.env,
    log: deps.log.child({ component: "webhooks" }),
    now: deps.now,
  });
  const tokens = createDeliveryTokens({ db: store.db, dialect: store.dialect, now: deps.now });
  const jws = createJwsSigner({ db: store.db, dialect: store.dialect, now: deps.now });
  const sender = createWebhookSender({
    store,
    registry,
    tokens,
    jws,
    publicUrl: config.publicUrl,
    leaseTtlMs: config.webhooks.leaseTtlMs,
    post: { allowPrivate: config.webhooks.allowPrivate, timeoutMs: config.webhooks.timeoutMs },
    ...(opts.retryDelaysMs && { retryDelaysMs: opts.retryDelaysMs }),
  });
  return { registry, tokens, jws, sender };
}

export type Webhooks = ReturnType<typeof createWebhooks>;

// --- what the MCP tools do ---

export type AdminDeps = { store: Store; now: () => number; dir: string; env: (name: string) => string | undefined };

export type TargetListing = { target: WebhookTarget; secretSet: boolean; secretError?: string; disabled?: Disabled };

/** Every target, files first, with whether its secret is set and whether a 410 disabled it. */
export async function listTargets(d: AdminDeps): Promise<{ targets: TargetListing[]; problems: string[] }> {
  const files = loadTargetFiles(d.dir, d.env);
  const rows = await loadTargetRows(d.store.db, d.env);
  const disabled = await disabledTargets(d.store.db);
  const all = [...files.targets, ...rows.targets.filter((r) => !files.targets.some((f) => f.name === r.name))];
  const targets = all.map((target) => {
    let secretSet = false;
    let secretError: string | undefined;
    try {
      secretSet = target.secrets().length > 0;
    } catch (err) {
      secretError = (err as Error).message;
    }
    const off = disabled.get(target.name);
    return {
      target,
      secretSet,
      ...(secretError && { secretError }),
      ...(off && off.url === target.url && { disabled: off }),
    };
  });
  return { targets, problems: files.problems.map((p: TargetProblem) => formatProblem(p)) };
}

/** Registers (or replaces) a target; a name a file target uses is refused. */
export async function registerTarget(
  d: AdminDeps,
  input: unknown,
  by: string,
): Promise<{ target: WebhookTarget; replaced: boolean; secretSet: boolean }> {
  const parsed = TargetSpec.safeParse(input);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw invalid("webhook.bad_target", `${i.path.join(".") || "target"}: ${i.message}`);
  }
  const spec = parsed.data;
  if (loadTargetFiles(d.dir, d.env).targets.some((t) => t.name === spec.name)) {
    throw conflict(
      "webhook.file_target",
      `a target named ${spec.name} is defined in a file in WEBHOOKS_DIR; change the file, or choose another name`,
    );
  }
  const existing = await d.store.db
    .selectFrom("webhook_targets")
    .select(["name", "source"])
    .where("name", "=", spec.name)
    .where("source", "=", "mcp")
    .executeTakeFirst();
  await saveRegisteredTarget(d.store.db, d.store.dialect, spec.name, spec, by, d.now());
  const target = buildTarget(spec, "mcp", d.env);
  let secretSet = false;
  try {
    secretSet = target.secrets().length > 0;
  } catch {
    secretSet = false;
  }
  return { target, replaced: !!existing, secretSet };
}

export async function deleteTarget(d: AdminDeps, name: string): Promise<void> {
  if (loadTargetFiles(d.dir, d.env).targets.some((t) => t.name === name)) {
    throw conflict(
      "webhook.file_target",
      `target ${name} is defined in a file in WEBHOOKS_DIR; remove the file to delete it`,
    );
  }
  if (!(await deleteRegisteredTarget(d.store.db, name)))
    throw notFound("webhook.target_not_found", `no target named ${name} was registered through MCP`);
}

/** Sends a delivery again (same body, same webhook-id), and enables its target if a 410 had disabled it. */
export async function redeliver(
  d: Pick<AdminDeps, "store" | "now">,
  deliveryId: string,
): Promise<{ previousState: string; enabledTarget: boolean }> {
  const before = await getWebhookDelivery(d.store.db, deliveryId);
  if (!before) throw notFound("webhook.delivery_not_found", `no webhook delivery ${deliveryId}`);
  const result = await d.store.db.transaction().execute(async (trx) => {
    const previousState = (await redeliverWebhook(trx, deliveryId, d.now()))!;
    const enabledTarget = await enableTarget(trx, before.target, d.now());
    return { previousState, enabledTarget };
  });
  kickDeliverer();
  return result;
}

export async function rotateSigningKey(
  d: Pick<AdminDeps, "store" | "now">,
): Promise<{ kid: string; retired: string | null }> {
  return d.store.db.transaction().execute((trx) => rotateKey(trx, d.store.dialect, d.now()));
}
