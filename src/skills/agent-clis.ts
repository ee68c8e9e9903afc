import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import type { Config } from "../config/load.ts";
import type { Logger } from "../shared/logger.ts";
import type { Skill } from "./schema.ts";

// Which agent CLIs the loaded skills need and are not installed: a skill's `agent.command` (or
// AGENT_DEFAULT) names an AGENT_COMMANDS entry, whose first argument is the program.

export type MissingAgentCli = {
  agent: string;
  /** The program the command template starts; undefined when AGENT_COMMANDS has no such agent. */
  program?: string;
  skills: string[];
  hint: string;
};

export function missingAgentClis(
  skills: Skill[],
  agents: Pick<Config["agents"], "commands" | "defaultAgent">,
  searchPath: string,
): MissingAgentCli[] {
  const byAgent = new Map<string, string[]>();
  for (const s of skills) {
    if (!("agent" in s.action)) continue;
    const agent = s.action.agent.command ?? agents.defaultAgent;
    byAgent.set(agent, [...(byAgent.get(agent) ?? []), s.name]);
  }
  const missing: MissingAgentCli[] = [];
  for (const [agent, names] of [...byAgent].sort(([a], [b]) => a.localeCompare(b))) {
    const program = agents.commands[agent]?.[0];
    if (program === undefined) {
      missing.push({
        agent,
        skills: names,
        hint: `AGENT_COMMANDS has no "${agent}"; add it, e.g. AGENT_COMMANDS='{"${agent}": ["my-cli", "{{prompt}}"]}'`,
      });
    } else if (!findProgram(program, searchPath)) {
      missing.push({
        agent,
        program,
        skills: names,
        hint: `install ${program} on the runners' PATH, or point AGENT_COMMANDS' "${agent}" at a command that exists`,
      });
    }
  }
  return missing;
}

/** The program's path: as given when it contains a slash, else the first executable file on PATH. */
export function findProgram(program: string, searchPath: string): string | undefined {
  const candidates = program.includes("/")
    ? [program]
    : searchPath
        .split(delimiter)
        .filter((d) => d && isAbsolute(d))
        .map((d) => join(d, program));
  return candidates.find((c) => {
    try {
      accessSync(c, constants.X_OK);
      return statSync(c).isFile();
    } catch {
      return false;
    }
  });
}

/** One warning per missing CLI, at start: the skills that need it would fail when they run. */
export function warnMissingAgentClis(missing: MissingAgentCli[], log: Logger): void {
  for (const m of missing)
    log.warn(
      { agent: m.agent, program: m.program, skills: m.skills, hint: m.hint },
      "agent CLI not installed: skills that need it will fail",
    );
}
