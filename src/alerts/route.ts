import type { FastifyInstance, FastifyRequest } from "fastify";
import type { z } from "zod";
import { AppError, invalid } from "../shared/errors.ts";
import { safeEqual } from "../shared/secrets.ts";
import { createLogThrottle } from "../shared/log-throttle.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { AlertIntake } from "./intake.ts";
import { parseAlertmanagerJson } from "./json.ts";
import { AlertmanagerPayload } from "./payload.ts";

export type AlertmanagerAuth = { mode: "token"; token: string; user: string } | { mode: "none" };

/** `bodyLimit`: this route's own limit (AlertManager sends a whole group in one body). */
export type AlertmanagerRouteDeps = {
  intake: AlertIntake;
  auth: AlertmanagerAuth;
  metrics: Metrics;
  bodyLimit: number;
};

const CHALLENGE = 'Bearer realm="pitcrew", Basic realm="pitcrew"';

function authorized(req: FastifyRequest, auth: AlertmanagerAuth): boolean {
  if (auth.mode === "none") return true;
  const header = req.headers.authorization ?? "";
  const [scheme, value = ""] = header.split(/\s+/, 2);
  if (/^bearer$/i.test(scheme ?? "")) return safeEqual(value, auth.token);
  if (/^basic$/i.test(scheme ?? "")) {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return false;
    // Both compared, always, so timing says nothing about which one was wrong.
    const userOk = safeEqual(decoded.slice(0, colon), auth.user);
    const passOk = safeEqual(decoded.slice(colon + 1), auth.token);
    return userOk && passOk;
  }
  return false;
}

/**
 * What a 401 is logged with: who called and which scheme they tried, never what they sent.
 * `suppressed`: refusals since the previous line (one line a minute at most).
 */
function refusalFields(req: FastifyRequest, suppressed: number) {
  const scheme = (req.headers.authorization ?? "").split(/\s+/, 1)[0] || "none";
  return {
    ip: req.ip,
    userAgent: req.headers["user-agent"]?.slice(0, 200),
    scheme: /^(bearer|basic)$/i.test(scheme) ? scheme.toLowerCase() : scheme === "none" ? "none" : "other",
    suppressed,
  };
}

/** JSON is UTF-8 (RFC 8259); a body declared in another charset would be stored altered. */
function checkCharset(contentType: string | undefined): void {
  const m = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? "");
  if (m && !/^utf-?8$/i.test(m[1]!))
    throw invalid("request.unsupported_charset", `charset ${m[1]} is not supported: send UTF-8`);
}

/** Turns the first schema problem into a code that names it. */
export function describePayloadProblem(raw: unknown, error: z.ZodError): AppError {
  const issue = error.issues[0]!;
  const path = issue.path.map(String);
  const where = path.length ? path.join(".") : "body";
  let value: unknown = raw;
  for (const p of path) value = value && typeof value === "object" ? (value as Record<string, unknown>)[p] : undefined;
  const last = path[path.length - 1];
  let code = "alertmanager.invalid_value";
  if (value === undefined) code = "alertmanager.missing_field";
  else if (issue.code === "invalid_type") code = "alertmanager.invalid_type";
  else if ((last === "startsAt" || last === "endsAt") && value !== undefined) code = "alertmanager.invalid_timestamp";
  return invalid(code, `${where}: ${value === undefined ? "is required" : issue.message}`);
}

export async function alertmanagerRoutes(app: FastifyInstance, deps: AlertmanagerRouteDeps) {
  const { alertsReceived, alertPayloads, intakeDuration } = deps.metrics;

  // Our own JSON parsing for this route: strict UTF-8, no lone surrogates, bounded nesting (json.ts).
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer", bodyLimit: deps.bodyLimit }, (req, body, done) => {
    try {
      checkCharset(req.headers["content-type"]);
      done(null, parseAlertmanagerJson(body as Buffer));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  // Every request, whatever stopped it (credentials, the body parser, the schema, the store).
  app.addHook("onResponse", async (_req, reply) => {
    const code = reply.statusCode;
    alertPayloads.inc({
      status: code < 300 ? "accepted" : code === 401 ? "unauthorized" : code < 500 ? "invalid" : "failed",
    });
  });

  const refusals = createLogThrottle(60_000);
  app.addHook("onRequest", async (req, reply) => {
    if (!authorized(req, deps.auth)) {
      refusals((suppressed) =>
        req.log.warn(refusalFields(req, suppressed), "AlertManager webhook refused: missing or invalid credentials"),
      );
      reply.header("www-authenticate", CHALLENGE);
      throw new AppError(
        "unauthorized",
        "auth.invalid_credentials",
        "missing or invalid credentials for the AlertManager webhook",
      );
    }
  });

  app.post("/webhooks/alertmanager", async (req) => {
    const started = process.hrtime.bigint();
    let outcome = "error";
    try {
      const raw = req.body;
      if (!raw || typeof raw !== "object" || Array.isArray(raw))
        throw invalid("alertmanager.invalid_type", "body: expected a JSON object");
      const version = (raw as { version?: unknown }).version;
      if (version !== "4")
        throw invalid(
          "alertmanager.unsupported_version",
          `version: expected "4", got ${JSON.stringify(version ?? null)}`,
        );
      const parsed = AlertmanagerPayload.safeParse(raw);
      if (!parsed.success) {
        outcome = "invalid";
        throw describePayloadProblem(raw, parsed.error);
      }
      const results = await deps.intake.receive(parsed.data);
      // Counted once the payload committed: one per alert, by what became of it.
      for (const r of results) alertsReceived.inc({ outcome: r.outcome });
      outcome = "stored";
      const incidents = [...new Set(results.map((r) => r.incidentId).filter((id): id is string => id !== null))];
      return {
        status: "accepted",
        alerts: results.length,
        incidents,
        outcomes: results.map((r) => ({ fingerprint: r.fingerprint, outcome: r.outcome, incidentId: r.incidentId })),
      };
    } catch (err) {
      if (outcome === "error" && err instanceof AppError && err.kind === "invalid") outcome = "invalid";
      throw err;
    } finally {
      intakeDuration.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  });
}
