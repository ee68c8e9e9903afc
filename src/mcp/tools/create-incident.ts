import { createHash } from "node:crypto";
import { z } from "zod";
import { defineTool } from "../tool.ts";
import { LIMITS } from "../../alerts/normalize.ts";
import { appendEvent } from "../../events/repo.ts";
import { queueAnalysis } from "../../incidents/analysis.ts";
import { newIncidentRow } from "../../incidents/repo.ts";
import { conflict } from "../../shared/errors.ts";
import { newId } from "../../shared/ids.ts";
import type { Executor } from "../../store/sql.ts";
import { isDuplicateKey } from "../../store/sql.ts";
import type { IncidentRow } from "../../store/schema.ts";
import { IncidentView, incidentView, mcpActor, sameJson } from "../views.ts";

/** Labels one incident may carry through MCP; names and values are capped as the alert intake caps them. */
const MAX_LABELS = 200;

const Labels = z
  .record(z.string().min(1).max(LIMITS.name), z.string().max(LIMITS.value))
  .refine((l) => Object.keys(l).length <= MAX_LABELS, { message: `must have at most ${MAX_LABELS} labels` })
  .refine((l) => Buffer.byteLength(JSON.stringify(l)) <= LIMITS.setBytes, {
    message: `must be at most ${LIMITS.setBytes} bytes as JSON`,
  });

/** The fields a repeat with the same idempotency key must match. */
const fieldsOf = (r: Pick<IncidentRow, "title" | "namespace" | "service" | "severity" | "alertname" | "labels">) => ({
  title: r.title,
  namespace: r.namespace,
  service: r.service,
  severity: r.severity,
  alertname: r.alertname,
  labels: JSON.parse(r.labels) as Record<string, string>,
});

async function firstAnalysis(db: Executor, incidentId: string): Promise<string | null> {
  const t = await db
    .selectFrom("tasks")
    .select("id")
    .where("incident_id", "=", incidentId)
    .where("kind", "=", "incident.analyze")
    .orderBy("id")
    .limit(1)
    .executeTakeFirst();
  return t?.id ?? null;
}

export const createIncident = defineTool({
  name: "create_incident",
  title: "Create an incident",
  description:
    "Opens an incident by hand (source mcp, state detected) and queues its analysis exactly as an alert would: a matching skill is planned, policed and run or sent for approval. namespace, service, severity and alertname are also set as labels (unless labels names them), so skills match and template on them. With an idempotency_key, a repeat returns the first incident (created: false); the same key with different fields is refused.",
  scope: "write",
  input: {
    title: z.string().min(1).max(LIMITS.title).describe("What is wrong, in a line."),
    namespace: z.string().max(LIMITS.namespace).optional().describe("Kubernetes namespace."),
    service: z.string().max(LIMITS.service).optional().describe("Service (e.g. the deployment name)."),
    severity: z.string().max(LIMITS.severity).optional().describe("Severity, e.g. critical, warning."),
    alertname: z.string().max(LIMITS.alertname).optional().describe("An alert name for skills that match on it."),
    labels: Labels.optional().describe(
      `Labels the skills match and template on (e.g. deployment, pod): at most ${MAX_LABELS}, names up to ${LIMITS.name} characters, values up to ${LIMITS.value}.`,
    ),
    idempotency_key: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe("Same key → same incident: a retried call does not open a second one."),
  },
  output: {
    incident: IncidentView.describe("The incident (new, or the first one opened with this idempotency key)."),
    analysis_task_id: z.string().nullable().describe("Its analysis task."),
    created: z.boolean().describe("False when the idempotency key matched an incident opened before."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const { store } = deps;
    const by = mcpActor(principal);
    const now = deps.now();
    const id = newId("inc", now);
    const labels: Record<string, string> = { ...args.labels };
    for (const name of ["namespace", "service", "severity", "alertname"] as const) {
      const value = args[name];
      if (value && labels[name] === undefined) labels[name] = value;
    }
    // A manual incident has no alert fingerprint; its own key (or its idempotency key's) keeps it
    // out of alert dedupe. The key is also its open_key, unique while it is open: of two racing
    // first calls, one inserts and the other finds it.
    const key =
      args.idempotency_key === undefined
        ? `m:${id}`
        : `m:key:${createHash("sha256").update(args.idempotency_key).digest("hex")}`;
    const row = newIncidentRow(
      {
        id,
        fingerprint: key,
        dedupe_key: null,
        open_key: key,
        title: args.title,
        source: "mcp",
        severity: args.severity ?? null,
        namespace: args.namespace ?? null,
        service: args.service ?? null,
        alertname: args.alertname ?? null,
        labels,
        annotations: { summary: args.title },
      },
      now,
    );

    const existing = async () => {
      if (args.idempotency_key === undefined) return null;
      const first = await store.db
        .selectFrom("incidents")
        .selectAll()
        .where("fingerprint", "=", key)
        .where("source", "=", "mcp")
        .orderBy("opened_at")
        .orderBy("id")
        .limit(1)
        .executeTakeFirst();
      if (!first) return null;
      if (!sameJson(fieldsOf(first), fieldsOf(row))) {
        const why = `idempotency_key was used for incident ${first.id} with different fields; use a new key for a new incident`;
        throw conflict("incident.idempotency_conflict", why);
      }
      return {
        summary: `${first.id} was opened with this idempotency key before (${first.state})`,
        data: {
          incident: incidentView(first),
          analysis_task_id: await firstAnalysis(store.db, first.id),
          created: false,
        },
      };
    };

    const before = await existing();
    if (before) return before;
    let taskId: string;
    try {
      taskId = await store.db.transaction().execute(async (trx) => {
        await trx.insertInto("incidents").values(row).execute();
        await appendEvent(
          trx,
          store.dialect,
          {
            type: "incident.detected",
            incidentId: id,
            ...by,
            reason: args.title,
            data: { source: "mcp", labels },
            occurredAt: now,
          },
          now,
        );
        // The same job the alert intake queues (kind, pool, idempotency key).
        return queueAnalysis(trx, store.dialect, row, by, now);
      });
    } catch (err) {
      const raced = isDuplicateKey(err) ? await existing() : null;
      if (raced) return raced;
      throw err;
    }
    deps.kick();
    return {
      summary: `opened ${id} "${args.title}"; analysis queued (${taskId})`,
      data: { incident: incidentView(row), analysis_task_id: taskId, created: true },
    };
  },
});
