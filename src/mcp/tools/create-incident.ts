import { z } from "zod";
import { defineTool } from "../tool.ts";
import { appendEvent } from "../../events/repo.ts";
import { queueAnalysis } from "../../incidents/analysis.ts";
import { newId } from "../../shared/ids.ts";
import { newIncidentRow } from "../../incidents/repo.ts";
import { IncidentView, incidentView, mcpActor } from "../views.ts";

export const createIncident = defineTool({
  name: "create_incident",
  title: "Create an incident",
  description:
    "Opens an incident by hand (source mcp, state detected) and queues its analysis exactly as an alert would: a matching skill is planned, policed and run or sent for approval.",
  scope: "write",
  input: {
    title: z.string().min(1).max(500).describe("What is wrong, in a line."),
    namespace: z.string().max(255).optional().describe("Kubernetes namespace."),
    service: z.string().max(255).optional().describe("Service (e.g. the deployment name)."),
    severity: z.string().max(64).optional().describe("Severity, e.g. critical, warning."),
    alertname: z.string().max(255).optional().describe("An alert name for skills that match on it."),
    labels: z.record(z.string().max(255), z.string().max(1000)).optional().describe("Labels the skills match and template on (e.g. deployment, pod)."),
  },
  output: {
    incident: IncidentView.describe("The new incident."),
    analysis_task_id: z.string().describe("The queued analysis task."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const { store } = deps;
    const by = mcpActor(principal);
    const now = deps.now();
    const id = newId("inc", now);
    const labels = { ...args.labels };
    if (args.namespace && !labels.namespace) labels.namespace = args.namespace;
    if (args.alertname && !labels.alertname) labels.alertname = args.alertname;
    // A manual incident has no alert fingerprint; its own key keeps it out of alert dedupe.
    const key = `m:${id}`;
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
    const taskId = await store.db.transaction().execute(async (trx) => {
      await trx.insertInto("incidents").values(row).execute();
      await appendEvent(trx, store.dialect, { type: "incident.detected", incidentId: id, ...by, reason: args.title, data: { source: "mcp", labels }, occurredAt: now }, now);
      // The same job the alert intake queues (kind, pool, idempotency key).
      return queueAnalysis(trx, store.dialect, row, by, now);
    });
    deps.kick();
    return { summary: `opened ${id} "${args.title}"; analysis queued (${taskId})`, data: { incident: incidentView(row), analysis_task_id: taskId } };
  },
});
