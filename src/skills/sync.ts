import { createHash } from "node:crypto";
import { z } from "zod";
import { appendEvent } from "../events/repo.ts";
import { errorMessage } from "../shared/errors.ts";
import type { Logger } from "../shared/logger.ts";
import type { Store } from "../store/db.ts";
import { upsert, type Executor } from "../store/sql.ts";
import { formatProblem, loadSkills, type LoadedSkills, type SkillProblem } from "./load.ts";
import { Skill } from "./schema.ts";

// Every control plane must use the same skills: two replicas with different sets would compute
// different open keys for one alert and open two incidents. The set lives in the database: a
// replica that (re)reads the folder — at start, on SIGHUP, through reload_skills — publishes what
// it loaded, and every replica adopts the published set. A small version row is checked often
// (each AlertManager payload and every SKILLS_SYNC_INTERVAL); the set itself is read only when the
// version changed.

const VERSION_KEY = "skills.version";
const SET_KEY = "skills.set";

const Published = z.object({
  version: z.string(),
  skills: z.array(Skill),
  problems: z.array(z.object({ file: z.string(), line: z.number(), message: z.string() })),
});
type Published = z.infer<typeof Published>;

export type SkillSet = { version: string; skills: Skill[]; problems: SkillProblem[] };

export type PublishResult = LoadedSkills & { version: string; published: boolean };

/** The version of a skill set: the same skills (in load order) give the same version on every replica. */
export function skillSetVersion(skills: Skill[]): string {
  return createHash("sha256").update(JSON.stringify(skills)).digest("hex").slice(0, 16);
}

/** The skill files that did not load when the set in use was published (system_status shows them). */
export async function publishedSkillProblems(db: Executor): Promise<SkillProblem[]> {
  const row = await db.selectFrom("settings").select("value").where("key", "=", SET_KEY).executeTakeFirst();
  const parsed = row ? Published.safeParse(JSON.parse(row.value)) : undefined;
  return parsed?.success ? parsed.data.problems : [];
}

export function createSkillSync(deps: { store: Store; log: Logger; now: () => number; dir: string }) {
  const { store } = deps;
  const log = deps.log.child({ component: "skills" });
  let current: SkillSet = { version: "", skills: [], problems: [] };
  let refreshing: Promise<boolean> | undefined;
  let timer: NodeJS.Timeout | undefined;

  function adopt(set: SkillSet, why: string) {
    const changed = set.version !== current.version;
    current = set;
    if (changed) log.info({ version: set.version, skills: set.skills.map((s) => s.name), why }, "skills in use");
  }

  async function readVersion(): Promise<string | undefined> {
    const row = await store.db.selectFrom("settings").select("value").where("key", "=", VERSION_KEY).executeTakeFirst();
    return row ? (JSON.parse(row.value) as { version: string }).version : undefined;
  }

  /**
   * Reads the folder and publishes what loaded to every replica. A folder that cannot be listed at
   * all publishes nothing (an empty set would take every skill away from every replica): the set in
   * use stays, and the problem is reported.
   */
  async function publish(by: { actor: string; channel: string }): Promise<PublishResult> {
    const loaded = loadSkills(deps.dir);
    for (const p of loaded.problems) log.error({ problem: formatProblem(p) }, "skill not loaded");
    if (loaded.unreadableFolder) {
      await refresh().catch(() => false);
      return { ...loaded, skills: current.skills, version: current.version, published: false };
    }
    const set: SkillSet = { version: skillSetVersion(loaded.skills), skills: loaded.skills, problems: loaded.problems };
    const now = deps.now();
    const published = await store.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom("settings").select("value").where("key", "=", VERSION_KEY).executeTakeFirst();
      if (row && (JSON.parse(row.value) as { version: string }).version === set.version) return false;
      const value = JSON.stringify(set satisfies Published);
      const version = JSON.stringify({ version: set.version, skills: set.skills.length });
      await upsert(
        trx,
        store.dialect,
        "settings",
        { key: SET_KEY, value, updated_by: by.actor, updated_at: now },
        "key",
        { value, updated_by: by.actor, updated_at: now },
      );
      await upsert(
        trx,
        store.dialect,
        "settings",
        { key: VERSION_KEY, value: version, updated_by: by.actor, updated_at: now },
        "key",
        { value: version, updated_by: by.actor, updated_at: now },
      );
      await appendEvent(
        trx,
        store.dialect,
        {
          type: "skills.published",
          ...by,
          reason: `${set.skills.length} skill(s) from ${deps.dir}`,
          data: {
            version: set.version,
            skills: set.skills.map((s) => s.name),
            problems: set.problems.map(formatProblem),
          },
          occurredAt: now,
        },
        now,
      );
      return true;
    });
    adopt(set, published ? "published" : "already published");
    return { ...loaded, version: set.version, published };
  }

  /** Adopts the published set when its version differs from the one in use. True when it changed. */
  function refresh(): Promise<boolean> {
    refreshing ??= (async () => {
      try {
        const version = await readVersion();
        if (version === undefined || version === current.version) return false;
        const row = await store.db.selectFrom("settings").select("value").where("key", "=", SET_KEY).executeTakeFirst();
        if (!row) return false;
        const parsed = Published.safeParse(JSON.parse(row.value));
        if (!parsed.success) {
          log.error(
            { issue: parsed.error.issues[0]?.message },
            "published skill set is not valid here; keeping the skills in use",
          );
          return false;
        }
        adopt(parsed.data, "published by another replica");
        return true;
      } finally {
        refreshing = undefined;
      }
    })();
    return refreshing;
  }

  return {
    skills: () => current.skills,
    problems: () => current.problems,
    version: () => current.version,
    publish,
    refresh,
    start(intervalMs: number) {
      timer = setInterval(
        () => refresh().catch((err) => log.warn({ err: { message: errorMessage(err) } }, "skill set check failed")),
        intervalMs,
      );
      timer.unref();
    },
    stop() {
      clearInterval(timer);
    },
  };
}

export type SkillSync = ReturnType<typeof createSkillSync>;
