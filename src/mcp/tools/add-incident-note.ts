import { z } from "zod";
import { defineTool } from "../tool.ts";
import { notFound } from "../../shared/errors.ts";
import { appendEvent } from "../../events/repo.ts";
import { getIncident } from "../../incidents/repo.ts";
import { newId } from "../../shared/ids.ts";

export const addIncidentNote = defineTool({
  name: "add_incident_note",
  title: "Add a note to an incident",
  description:
    "Adds a note (an incident.note event) to an incident's timeline, signed by the caller. Does not change its state.",
  scope: "write",
  input: {
    incident_id: z.string().min(1).max(40).describe("Incident id (inc_…)."),
    text: z.string().min(1).max(10_000).describe("The note."),
  },
  output: {
    event_id: z.string().describe("The note's event id."),
    incident_id: z.string().describe("The incident."),
    actor: z.string().describe("Who the note is recorded as."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async handler(args, { principal, deps }) {
    const { store } = deps;
    const inc = await getIncident(store.db, args.incident_id);
    if (!inc) throw notFound("incident.not_found", `incident ${args.incident_id} does not exist`);
    const now = deps.now();
    const id = newId("evt", now);
    // A note is signed by the person (as an approval's decided_by is), not by the channel.
    const by = { actor: principal.subject, channel: "mcp" };
    await appendEvent(
      store.db,
      store.dialect,
      {
        id,
        type: "incident.note",
        incidentId: inc.id,
        ...by,
        reason: args.text.slice(0, 1000),
        data: { text: args.text },
        occurredAt: now,
      },
      now,
    );
    return { summary: `note added to ${inc.id}`, data: { event_id: id, incident_id: inc.id, actor: by.actor } };
  },
});
