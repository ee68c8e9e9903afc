import type { Skill } from "./schema.ts";

export type MatchInput = { alertname: string; labels: Record<string, string> };

/** A skill matches when the alert name is listed (or none is) and every label regex matches in full. */
export function skillMatches(skill: Skill, alert: MatchInput): boolean {
  const m = skill.match;
  if (m.alertname.length > 0 && !m.alertname.includes(alert.alertname)) return false;
  if (m.alertname.length === 0 && Object.keys(m.labels).length === 0) return false;
  for (const [name, pattern] of Object.entries(m.labels)) {
    const value = alert.labels[name];
    if (value === undefined || !new RegExp(`^(?:${pattern})$`).test(value)) return false;
  }
  return true;
}

/** How specific a match is: listed alert names and each label condition count. */
export function specificity(skill: Skill): number {
  return (skill.match.alertname.length > 0 ? 10 : 0) + Object.keys(skill.match.labels).length;
}

/**
 * The candidates for an alert, best first: higher priority, then more specific, then name (so
 * the order is deterministic).
 */
export function rankSkills(skills: Skill[], alert: MatchInput): Skill[] {
  return skills
    .filter((s) => skillMatches(s, alert))
    .sort(
      (a, b) => b.match.priority - a.match.priority || specificity(b) - specificity(a) || a.name.localeCompare(b.name),
    );
}
