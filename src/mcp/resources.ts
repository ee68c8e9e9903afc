import { readFileSync } from "node:fs";
import { type McpServer, ResourceTemplate, type Variables } from "@modelcontextprotocol/server";
import { stringify } from "yaml";
import { loadYamlFolder } from "../shared/yaml-folder.ts";
import { Skill } from "../skills/schema.ts";
import { completeIncidentIds, completeSkillNames } from "./completions.ts";
import { incidentMarkdown, loadIncidentDoc } from "./incident-doc.ts";
import { RESOURCE_NOT_FOUND, RpcError, requireScope, rpcBoundary } from "./rpc-errors.ts";
import type { McpDeps, Principal } from "./tool.ts";

// Resources: pitcrew://incidents/{id} (the incident with its timeline, as markdown and as JSON)
// and pitcrew://skills/{name} (the skill's YAML). Listing, reading and completing them needs the
// `read` scope. The lists are not announced as changing (no listChanged): a server lives for one
// request and could not send the notification.

export const INCIDENT_URI = "pitcrew://incidents/{id}";
export const SKILL_URI = "pitcrew://skills/{name}";
/** Incidents resources/list shows: the most recent ones. */
const LISTED_INCIDENTS = 50;

export const incidentUri = (id: string) => `pitcrew://incidents/${encodeURIComponent(id)}`;
export const skillUri = (name: string) => `pitcrew://skills/${encodeURIComponent(name)}`;

function variable(vars: Variables, name: string): string {
  const v = vars[name];
  const s = Array.isArray(v) ? v.join(",") : (v ?? "");
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The skill's YAML: the file as written (comments kept) when the skills folder here holds a file
 * that parses to exactly the skill in use; otherwise (another replica published it, or the file
 * changed since) the skill in use, written out with its defaults.
 */
export function skillYaml(skill: Skill, dir: string): string {
  const loaded = loadYamlFolder(dir, Skill, { what: "skill", nameOf: (s) => s.name });
  const same = loaded.items.find((i) => i.item.name === skill.name && JSON.stringify(i.item) === JSON.stringify(skill));
  if (same) {
    try {
      return readFileSync(same.file, "utf8");
    } catch {
      // Removed meanwhile: fall through to the skill in use.
    }
  }
  return stringify(skill);
}

export function registerResources(server: McpServer, deps: McpDeps, principal: Principal): void {
  const { db } = deps.store;
  const guard = <T>(what: string, fn: () => Promise<T>) =>
    rpcBoundary(
      deps.log,
      what,
      async () => {
        requireScope(principal, "read", what);
        return fn();
      },
      RESOURCE_NOT_FOUND,
    );

  server.registerResource(
    "incident",
    new ResourceTemplate(INCIDENT_URI, {
      list: () =>
        guard("listing incidents", async () => {
          const rows = await db
            .selectFrom("incidents")
            .select(["id", "title", "state", "updated_at"])
            .orderBy("id", "desc")
            .limit(LISTED_INCIDENTS)
            .execute();
          return {
            resources: rows.map((r) => ({
              uri: incidentUri(r.id),
              name: r.id,
              title: r.title,
              description: `${r.state}: ${r.title}`,
              mimeType: "text/markdown",
              annotations: { lastModified: new Date(Number(r.updated_at)).toISOString() },
            })),
          };
        }),
      complete: { id: (value) => guard("completing incident ids", () => completeIncidentIds(db, value)) },
    }),
    {
      title: "Incident",
      description:
        "An incident with its labels, annotations, approvals and timeline (its last events, oldest first): " +
        `text/markdown to read, application/json with the fields of get_incident. Lists the ${LISTED_INCIDENTS} most recent.`,
      mimeType: "text/markdown",
    },
    (uri, vars) =>
      guard("reading an incident", async () => {
        const id = variable(vars, "id");
        const doc = await loadIncidentDoc(db, id);
        if (!doc) {
          const what = `incident ${JSON.stringify(id.slice(0, 60))} does not exist (incident.not_found)`;
          throw new RpcError(RESOURCE_NOT_FOUND, what, { code: "incident.not_found" }, { uri: uri.href });
        }
        return {
          contents: [
            { uri: uri.href, mimeType: "text/markdown", text: incidentMarkdown(doc) },
            { uri: uri.href, mimeType: "application/json", text: JSON.stringify(doc) },
          ],
        };
      }),
  );

  server.registerResource(
    "skill",
    new ResourceTemplate(SKILL_URI, {
      list: () =>
        guard("listing skills", async () => ({
          resources: deps
            .skills()
            .map((s) => ({
              uri: skillUri(s.name),
              name: s.name,
              title: s.name,
              description: s.description.slice(0, 300),
              mimeType: "text/yaml",
            }))
            .sort((a, b) => a.name.localeCompare(b.name)),
        })),
      complete: {
        name: (value) => guard("completing skill names", async () => completeSkillNames(deps.skills(), value)),
      },
    }),
    {
      title: "Skill",
      description: "A loaded skill's YAML (match, risk, approval, action, verify).",
      mimeType: "text/yaml",
    },
    (uri, vars) =>
      guard("reading a skill", async () => {
        const name = variable(vars, "name");
        const skill = deps.skills().find((s) => s.name === name);
        if (!skill) {
          const what = `no skill named ${JSON.stringify(name.slice(0, 63))} is loaded (skill.not_found)`;
          throw new RpcError(RESOURCE_NOT_FOUND, what, { code: "skill.not_found" }, { uri: uri.href });
        }
        return { contents: [{ uri: uri.href, mimeType: "text/yaml", text: skillYaml(skill, deps.config.skillsDir) }] };
      }),
  );

  // McpServer announces listChanged for resources; a per-request server cannot send it.
  server.server.registerCapabilities({ resources: { listChanged: false } });
}
