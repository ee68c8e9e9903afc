import { z } from "zod";
import { defineTool } from "../tool.ts";
import { formatProblem } from "../../skills/load.ts";
import { mcpActor } from "../views.ts";

export const reloadSkills = defineTool({
  name: "reload_skills",
  title: "Reload skills",
  description:
    "Reads the skills folder again and makes every control plane use what loaded. Bad files are reported (file:line: message) and skipped; the others load. A folder that cannot be read changes nothing.",
  scope: "admin",
  input: {},
  output: {
    loaded: z.array(z.string()).describe("Names of the skills now loaded."),
    problems: z.array(z.string()).describe("Problems found, as file:line: message."),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async handler(_args, { principal, deps }) {
    const { skills, problems } = await deps.reloadSkills(mcpActor(principal));
    const loaded = skills.map((s) => s.name);
    return {
      summary: `${loaded.length} skill(s) loaded${problems.length ? `; ${problems.length} problem(s): ${problems.map(formatProblem).join("; ")}` : ""}`,
      data: { loaded, problems: problems.map(formatProblem) },
    };
  },
});
