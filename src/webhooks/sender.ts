import type { Store } from "../store/db.ts";
import type { DeliveryOutcome, Sender } from "../notify/deliverer.ts";
import type { DeliveryRow } from "../notify/repo.ts";
import { newDeliveryId, requestDelivery, type DeliveryRequest } from "../notify/requests.ts";
import { errorMessage } from "../shared/errors.ts";
import { VERSION } from "../shared/version.ts";
import { bodyWithToken, buildWebhookBody, deliveryBlock } from "./body.ts";
import type { JwsSigner } from "./keys.ts";
import { postWebhook, type PostOptions } from "./post.ts";
import { disabledTargets, disableTarget, FANOUT, hashToken } from "./repo.ts";
import { signHeaders } from "./sign.ts";
import { subscribes, type WebhookRegistry, type WebhookTarget } from "./targets.ts";
import type { DeliveryTokens } from "./token.ts";

// The webhook channel of the deliverer. A fan-out row becomes one delivery per target that
// subscribes to its event (and to the incident's namespace), each with the body snapshotted now.
// A delivery is POSTed with the same body and webhook-id on every attempt, signed at send time
// (webhook-timestamp is the attempt's). The answer decides: 2xx sent; 408, 429, 5xx and no answer
// are retried on the schedule; any other 4xx, a redirect and a refused address are final; 410
// Gone also disables the target until its URL changes or it is registered or redelivered again.

/** 1 s, 5 s, 30 s, 2 min, 10 min, then dead. */
export const WEBHOOK_RETRY_DELAYS_MS = [1000, 5000, 30_000, 120_000, 600_000];

export type WebhookSenderDeps = {
  store: Store;
  registry: WebhookRegistry;
  tokens: DeliveryTokens;
  jws: JwsSigner;
  publicUrl: string;
  leaseTtlMs: number;
  post: Omit<PostOptions, "timeoutMs"> & { timeoutMs: number };
  retryDelaysMs?: number[];
};

export function createWebhookSender(deps: WebhookSenderDeps): Sender {
  const { store } = deps;

  const eventOf = (row: DeliveryRow) => (JSON.parse(row.payload ?? "{}") as { event?: string }).event ?? "";
  const candidatesFor = (event: string) =>
    deps.registry.list().filter((t) => t.events.includes(event) || t.events.includes("*"));
  const nobodyWants = (event: string) => `no target subscribes to ${event}`;

  async function fanOut(row: DeliveryRow, now: number): Promise<DeliveryOutcome> {
    const event = eventOf(row);
    await deps.registry.refresh();
    // Most installs have no target for most events: find that out before reading the body's parts.
    const candidates = candidatesFor(event);
    const skipped = { status: "skipped", why: nobodyWants(event) } as const;
    if (candidates.length === 0) return skipped;
    const body = await buildWebhookBody(store.db, row.ref, event, deps.publicUrl);
    if (!body) return { status: "skipped", why: "the event or its incident no longer exists" };
    const disabled = await disabledTargets(store.db);
    const targets = candidates.filter(
      (t) => subscribes(t, event, body.incident?.namespace ?? null) && disabled.get(t.name)?.url !== t.url,
    );
    if (targets.length === 0) return skipped;
    // Idempotent: a fan-out interrupted after some inserts is done again without doubling them.
    const done = new Set(
      (
        await store.db
          .selectFrom("deliveries")
          .select("target")
          .where("channel", "=", row.channel)
          .where("ref", "=", row.ref)
          .where("kind", "=", event)
          .execute()
      ).map((r) => r.target),
    );
    // Rows are built before the transaction: the token key may be read (or made) on first use, and
    // on SQLite a query outside an open transaction would wait for it forever.
    const rows: DeliveryRequest[] = [];
    for (const t of targets.filter((x) => !done.has(x.name))) {
      const id = newDeliveryId(now);
      const incidentId = body.incident?.id ?? null;
      const payload = JSON.stringify(
        incidentId
          ? { ...body, delivery: deliveryBlock(deps.publicUrl, incidentId, id, t.name, deps.leaseTtlMs) }
          : body,
      );
      rows.push({
        id,
        channel: row.channel,
        kind: event,
        ref: row.ref,
        target: t.name,
        incidentId,
        payload,
        tokenHash: hashToken(await deps.tokens.token(id)),
      });
    }
    await store.db.transaction().execute(async (trx) => {
      for (const r of rows) await requestDelivery(trx, store.dialect, r, now);
    });
    return { status: "sent", target: targets.map((t) => t.name).join(",") };
  }

  async function headersFor(t: WebhookTarget, id: string, body: string, now: number): Promise<Record<string, string>> {
    const ts = Math.floor(now / 1000);
    const secrets = t.secrets();
    if (t.signing === "standard" && secrets.length === 0)
      throw new Error(`the secret env var ${t.secretEnv ?? "(none)"} of target ${t.name} is not set`);
    const signed: Record<string, string> = secrets.length
      ? signHeaders(id, ts, body, secrets)
      : { "webhook-id": id, "webhook-timestamp": String(ts) };
    const jws: Record<string, string> = t.signing === "jws" ? { "webhook-jws": await deps.jws.sign(id, ts, body) } : {};
    return {
      ...t.headers,
      "content-type": "application/json",
      "user-agent": `Pitcrew/${VERSION}`,
      ...signed,
      ...jws,
    };
  }

  async function send(row: DeliveryRow, now: number): Promise<DeliveryOutcome> {
    let t = deps.registry.get(row.target);
    // Not known here (yet): read the folder and the database before calling it gone.
    if (!t) {
      await deps.registry.refresh({ files: true });
      t = deps.registry.get(row.target);
    }
    if (!t) return { status: "dead", error: `target ${row.target} no longer exists` };
    const off = (await disabledTargets(store.db)).get(t.name);
    if (off && off.url === t.url) return { status: "dead", error: `target ${t.name} is disabled: ${off.reason}` };
    const body = bodyWithToken(row.payload!, await deps.tokens.token(row.id));
    let headers: Record<string, string>;
    try {
      headers = await headersFor(t, row.id, body, now);
    } catch (err) {
      return { status: "retry", error: errorMessage(err).slice(0, 500) };
    }
    const out = await postWebhook(t.url, headers, body, deps.post);
    if (out.kind === "refused") return { status: "dead", error: `refused: ${out.error}` };
    if (out.kind === "failed") return { status: "retry", error: out.error };
    const s = out.status;
    const said = out.body ? `: ${out.body.replace(/\s+/g, " ").slice(0, 200)}` : "";
    if (s >= 200 && s < 300) return { status: "sent", target: t.name, httpStatus: s };
    if (s === 410) {
      await disableTarget(
        store.db,
        store.dialect,
        t.name,
        t.url,
        `answered 410 Gone at ${new Date(now).toISOString()} (delivery ${row.id})`,
        now,
      );
      return { status: "dead", error: `HTTP 410 Gone: target ${t.name} disabled${said}`, httpStatus: s };
    }
    if (s >= 300 && s < 400)
      return { status: "dead", error: `HTTP ${s}: redirect to ${out.location ?? "?"} not followed`, httpStatus: s };
    if (s === 408 || s === 429 || s >= 500) return { status: "retry", error: `HTTP ${s}${said}`, httpStatus: s };
    return { status: "dead", error: `HTTP ${s}${said}`, httpStatus: s };
  }

  return {
    attempts: { delaysMs: deps.retryDelaysMs ?? WEBHOOK_RETRY_DELAYS_MS, claimMs: deps.post.timeoutMs + 5000 },
    deadEvent: "webhook.dead",
    /** Fan-out rows of events no target subscribes to: most of a storm's, on most installs. */
    async unwanted(rows: DeliveryRow[]): Promise<Map<string, string>> {
      const out = new Map<string, string>();
      const fanOuts = rows.filter((r) => r.kind === FANOUT);
      if (fanOuts.length === 0) return out;
      await deps.registry.refresh();
      for (const row of fanOuts) {
        const event = eventOf(row);
        if (candidatesFor(event).length === 0) out.set(row.id, nobodyWants(event));
      }
      return out;
    },
    async deliver(row: DeliveryRow, now: number): Promise<DeliveryOutcome> {
      if (row.kind === FANOUT) return fanOut(row, now);
      if (!row.payload) return { status: "dead", error: "the delivery has no body" };
      return send(row, now);
    },
  };
}
