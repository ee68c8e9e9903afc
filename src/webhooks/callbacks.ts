import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { Store } from "../store/db.ts";
import { isDuplicateKey } from "../store/sql.ts";
import { AppError, invalid, notFound } from "../shared/errors.ts";
import { getWebhookDelivery, hashToken, type WebhookDelivery } from "./repo.ts";
import { header, verifyHeaders } from "./sign.ts";
import type { WebhookTarget } from "./targets.ts";
import { RESULT_STATUSES, type Claims, type Holder } from "./claims.ts";

// The callbacks of external agents (DESIGN §7): POST /api/v1/incidents/:id/claims and …/results.
// Two ways to authenticate, both bound to the incident and the target the delivery went to:
//   - `Authorization: Bearer <token>`: the per-delivery credential from the body's `delivery`
//     block, compared by its sha256 with the one stored for that delivery;
//   - a Standard Webhooks signature made with the target's secret (`webhook-id`,
//     `webhook-timestamp` within TOLERANCE_SECONDS, `webhook-signature`). Each `webhook-id` is
//     accepted once per target while its timestamp is within the tolerance — remembered in the
//     database, so a replay to another replica is refused too.
// Bad input is refused (400) before anything is written.

export const TOLERANCE_SECONDS = 300;

export type CallbackRouteDeps = {
  store: Store;
  now: () => number;
  claims: Claims;
  targets: { get(name: string): WebhookTarget | undefined };
  leaseTtlMs: number;
};

const AgentId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces");
const Ref = z.string().min(1).max(40);
const TargetName = z.string().min(1).max(64);

const ClaimBody = z.object({ agent_id: AgentId, delivery_id: Ref, target: TargetName.optional() });

const Sha = z.string().regex(/^[0-9a-f]{40}(?:[0-9a-f]{24})?$/, "a full commit sha (40 or 64 hex digits)");
const ResultBody = z
  .object({
    lease_id: Ref,
    idempotency_key: z.string().min(1).max(255),
    status: z.enum(RESULT_STATUSES),
    agent_id: AgentId.optional(),
    target: TargetName.optional(),
    delivery_id: Ref.optional(),
    summary: z.string().max(4000).optional(),
    pr: z
      .object({
        number: z.number().int().positive().max(2_147_483_647),
        url: z.string().url().max(2048).optional(),
        branch: z.string().min(1).max(255).optional(),
        head_sha: Sha.optional(),
      })
      .optional(),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .refine((b) => b.status !== "pr_created" || b.pr !== undefined, {
    message: "a pr_created result needs pr (number, and url, branch, head_sha)",
    path: ["pr"],
  });

const Params = z.object({ id: z.string().min(1).max(40) });

function parse<T extends z.ZodTypeAny>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const where = issue.path.length ? issue.path.join(".") : "body";
  return fail(invalid("callback.invalid_body", `${where}: ${issue.message}`));
}

const fail = (err: AppError): never => {
  throw err;
};
const unauthorized = (code: string, message: string) => new AppError("unauthorized", code, message);
const forbidden = (code: string, message: string) => new AppError("forbidden", code, message);

type Auth = { via: "bearer" | "signature"; target: string };

/** The raw bodies of this scope's requests: a signature is over the bytes as sent. */
const rawBodies = new WeakMap<FastifyRequest, string>();

export async function callbackRoutes(app: FastifyInstance, deps: CallbackRouteDeps) {
  const jsonParser = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string", bodyLimit: 256 * 1024 }, (req, body, done) => {
    rawBodies.set(req, body as string);
    jsonParser(req, body as string, done);
  });

  const bearerOf = (req: FastifyRequest): string | undefined => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    if (req.headers.authorization !== undefined && !m)
      throw unauthorized("callback.bad_credentials", "Authorization must be `Bearer <delivery token>`");
    return m?.[1];
  };

  /** The delivery whose token this is, for this incident. */
  async function byToken(token: string, deliveryId: string, incidentId: string): Promise<WebhookDelivery> {
    const d = await getWebhookDelivery(deps.store.db, deliveryId);
    const given = Buffer.from(hashToken(token), "hex");
    const stored = Buffer.from(d?.tokenHash ?? "", "hex");
    if (!d || stored.length !== given.length || !timingSafeEqual(stored, given)) {
      throw unauthorized("callback.bad_credentials", `the bearer token is not the one of delivery ${deliveryId}`);
    }
    if (d.incidentId !== incidentId)
      throw forbidden(
        "callback.wrong_incident",
        `delivery ${deliveryId} is about incident ${d.incidentId}, not ${incidentId}`,
      );
    return d;
  }

  /** Checks the Standard Webhooks signature with `targetName`'s secrets, and that its id is new. */
  async function bySignature(req: FastifyRequest, targetName: string | undefined): Promise<WebhookTarget> {
    if (!targetName)
      throw unauthorized("callback.unknown_target", "a signed callback names its webhook target (target)");
    const target = deps.targets.get(targetName);
    if (!target)
      throw unauthorized("callback.unknown_target", `no webhook target is named ${JSON.stringify(targetName)}`);
    let secrets: string[];
    try {
      secrets = target.secrets();
    } catch {
      req.log.error({ target: target.name }, "the webhook target's secret is malformed");
      throw unauthorized(
        "callback.no_secret",
        `target ${target.name} has no usable secret; authenticate with the delivery's bearer token`,
      );
    }
    const v = verifyHeaders(req.headers, rawBodies.get(req) ?? "", secrets, {
      toleranceSeconds: TOLERANCE_SECONDS,
      now: deps.now(),
    });
    if (!v.ok) {
      if (v.reason === "too_old" || v.reason === "too_new") {
        throw unauthorized(
          "callback.stale_timestamp",
          `webhook-timestamp is more than ${TOLERANCE_SECONDS} seconds from the server's time`,
        );
      }
      if (v.reason === "no_secret")
        throw unauthorized(
          "callback.no_secret",
          `target ${target.name} has no secret configured; authenticate with the delivery's bearer token`,
        );
      throw unauthorized(
        "callback.bad_signature",
        v.reason === "no_signature_matched"
          ? "webhook-signature does not match the body with the target's secret"
          : `the signature headers are invalid (${v.reason})`,
      );
    }
    if (v.id.length > 256) throw invalid("callback.invalid_body", "webhook-id: at most 256 characters");
    if (!(await remember(deps.store, target.name, v.id, v.timestamp, deps.now()))) {
      throw new AppError(
        "conflict",
        "callback.replayed",
        `webhook-id ${JSON.stringify(v.id)} was already used; sign each callback with a new webhook-id`,
      );
    }
    return target;
  }

  /** Bearer or signature, whichever the request carries. */
  async function authenticate(
    req: FastifyRequest,
    incidentId: string,
    o: { deliveryId: string | undefined; target: string | undefined },
  ): Promise<Auth> {
    const token = bearerOf(req);
    if (token !== undefined) {
      if (!o.deliveryId)
        throw unauthorized(
          "callback.bad_credentials",
          "a bearer token is checked against its delivery: give delivery_id",
        );
      const delivery = await byToken(token, o.deliveryId, incidentId);
      if (o.target && o.target !== delivery.target)
        throw forbidden(
          "callback.wrong_target",
          `delivery ${delivery.id} went to target ${delivery.target}, not ${o.target}`,
        );
      return { via: "bearer", target: delivery.target };
    }
    if (header(req.headers, "webhook-signature") !== undefined) {
      const target = await bySignature(req, o.target);
      return { via: "signature", target: target.name };
    }
    throw unauthorized(
      "callback.unauthenticated",
      "authenticate with `Authorization: Bearer <delivery token>` or a Standard Webhooks signature made with the target's secret",
    );
  }

  app.post("/api/v1/incidents/:id/claims", async (req, reply) => {
    const { id } = parse(Params, req.params);
    const body = parse(ClaimBody, req.body);
    // A signed claim names its target, or the delivery it takes up does.
    const delivery = await getWebhookDelivery(deps.store.db, body.delivery_id);
    const auth = await authenticate(req, id, { deliveryId: body.delivery_id, target: body.target ?? delivery?.target });
    if (!delivery || delivery.target !== auth.target || delivery.incidentId !== id) {
      throw forbidden(
        "callback.wrong_delivery",
        `delivery ${body.delivery_id} was not sent to target ${auth.target} about incident ${id}`,
      );
    }
    const holder: Holder = { target: auth.target, agent: body.agent_id };
    const { created, lease } = await deps.claims.claim(id, holder, delivery.id, auth.via);
    return reply.status(created ? 201 : 200).send({
      lease_id: lease.leaseId,
      incident_id: lease.incidentId,
      agent_id: lease.agent,
      target: lease.target,
      expires_at: new Date(lease.expiresAt).toISOString(),
      lease_ttl_seconds: Math.round(deps.leaseTtlMs / 1000),
      result_url: `/api/v1/incidents/${encodeURIComponent(id)}/results`,
    });
  });

  app.post("/api/v1/incidents/:id/results", async (req, reply) => {
    const { id } = parse(Params, req.params);
    const body = parse(ResultBody, req.body);
    const claim = await deps.claims.getClaim(body.lease_id);
    if (!claim || claim.incident_id !== id)
      throw notFound("claim.not_found", `lease ${body.lease_id} does not exist for incident ${id}`);
    const auth = await authenticate(req, id, {
      deliveryId: body.delivery_id ?? claim.delivery_id ?? undefined,
      target: body.target ?? claim.target ?? undefined,
    });
    if (auth.target !== claim.target)
      throw forbidden(
        "callback.wrong_target",
        `lease ${claim.id} is held for target ${claim.target}, not ${auth.target}`,
      );
    const holder: Holder = { target: auth.target, agent: body.agent_id ?? claim.agent };
    const pr = body.pr && {
      number: body.pr.number,
      url: body.pr.url,
      branch: body.pr.branch,
      headSha: body.pr.head_sha,
    };
    const answer = await deps.claims.report(
      {
        incidentId: id,
        leaseId: body.lease_id,
        idempotencyKey: body.idempotency_key,
        status: body.status,
        summary: body.summary,
        pr,
        details: body.details,
      },
      holder,
    );
    return reply.status(200).send(answer);
  });
}

type SeenIds = { webhook_callback_ids: { id: string; expires_at: number } };

/**
 * Remembers a signed callback's id for as long as its timestamp is acceptable; false when it was
 * seen already (a replay). Ids whose window has passed are forgotten first.
 */
export async function remember(
  store: Store,
  target: string,
  webhookId: string,
  timestampSeconds: number,
  now: number,
): Promise<boolean> {
  const db = store.db.withTables<SeenIds>();
  await db.deleteFrom("webhook_callback_ids").where("expires_at", "<", now).execute();
  const id = createHash("sha256").update(`${target}\n${webhookId}`).digest("hex");
  const expiresAt = (timestampSeconds + TOLERANCE_SECONDS) * 1000 + 1000;
  try {
    await db
      .insertInto("webhook_callback_ids")
      .values({ id, expires_at: Math.max(expiresAt, now) })
      .execute();
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}
