import { formatProblem, loadSkills } from "../skills/load.ts";

/** `pitcrew skills validate [dir]`: prints every problem as file:line: message; false when any. */
export function validateSkillsCommand(dir: string): { ok: boolean; output: string } {
  const { skills, problems } = loadSkills(dir);
  const lines = problems.map(formatProblem);
  lines.push(`${skills.length} skill(s) valid, ${problems.length} problem(s)`);
  return { ok: problems.length === 0, output: lines.join("\n") };
}
