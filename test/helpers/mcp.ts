import { createMemoryQueue } from "../../src/bus/memory.ts";
import type { TaskQueue } from "../../src/bus/port.ts";
import type { Config } from "../../src/config/load.ts";
import type { McpDeps } from "../../src/mcp/tool.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import type { Skill } from "../../src/skills/schema.ts";
import type { Store } from "../../src/store/db.ts";
import { createTaskService } from "../../src/tasks/service.ts";

/**
 * What the MCP server needs, for tests: the real store, queue and task service, a fixed skill set
 * (reloading publishes nothing), no analysis. `extra` adds or replaces parts (schedules, gitHost…).
 */
export function mcpTestDeps(
  o: { config: Config; store: Store; queue?: TaskQueue; skills?: Skill[]; now?: () => number },
  extra: Partial<McpDeps> = {},
): McpDeps {
  const now = o.now ?? Date.now;
  const skills = o.skills ?? [];
  return {
    config: o.config,
    log: silentLogger,
    store: o.store,
    queue: o.queue ?? createMemoryQueue({ log: silentLogger }),
    tasks: createTaskService({ store: o.store, log: silentLogger, now }),
    now,
    skills: () => skills,
    reloadSkills: async () => ({ skills, problems: [], published: false }),
    analyze: async () => "skipped",
    kick: () => {},
    ...extra,
  };
}
