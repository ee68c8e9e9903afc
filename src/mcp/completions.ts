import type { Skill } from "../skills/schema.ts";
import type { Executor } from "../store/sql.ts";

// completion/complete for incident ids and skill names (resource templates and prompt arguments).

/** Suggestions per answer; the protocol allows up to 100. */
export const COMPLETION_LIMIT = 20;

/**
 * Incident ids starting with what was typed, newest first. The `inc_` prefix may be left out or
 * typed in any case (ids are `inc_` and an upper-case ULID); anything that is not an id prefix
 * suggests nothing.
 */
export async function completeIncidentIds(db: Executor, typed: string, limit = COMPLETION_LIMIT): Promise<string[]> {
  const t = typed.trim();
  let prefix: string;
  if ("inc_".startsWith(t.toLowerCase())) prefix = "inc_";
  else if (/^inc_/i.test(t)) prefix = `inc_${t.slice(4).toUpperCase()}`;
  else prefix = `inc_${t.toUpperCase()}`;
  if (!/^inc_[0-9A-Z]{0,26}$/.test(prefix)) return [];
  // A range, not LIKE: `_` is a LIKE wildcard, and ids are ASCII, where `~` sorts after them all.
  const rows = await db
    .selectFrom("incidents")
    .select("id")
    .where("id", ">=", prefix)
    .where("id", "<", `${prefix}~`)
    .orderBy("id", "desc")
    .limit(limit)
    .execute();
  return rows.map((r) => r.id);
}

/** Loaded skill names starting with what was typed, in name order. */
export function completeSkillNames(skills: Skill[], typed: string, limit = 100): string[] {
  const t = typed.trim().toLowerCase();
  return skills
    .map((s) => s.name)
    .filter((n) => n.startsWith(t))
    .sort()
    .slice(0, limit);
}
