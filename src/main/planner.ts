import type { Config } from "../config/load.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { Store } from "../store/db.ts";
import { rulesPlanner, type Planner } from "../skills/planner.ts";

/**
 * Claude when ANTHROPIC_API_KEY is set (with rules as its fallback), rules alone otherwise. With a
 * store, the tokens of each call are added to the incident's counters; with metrics, to the planner's.
 * The Anthropic SDK (a thousand modules) is loaded only when a key is set.
 */
export async function createPlanner(config: Config, log: Logger, store?: Store, metrics?: Metrics): Promise<Planner> {
  const a = config.anthropic;
  if (!a) return rulesPlanner;
  const { createClaudePlanner } = await import("../skills/planner-claude.ts");
  return createClaudePlanner({
    apiKey: a.apiKey,
    model: a.model,
    maxTokens: a.maxTokens,
    timeoutMs: a.timeoutMs,
    baseURL: a.baseURL,
    log,
    fallback: rulesPlanner,
    metrics,
    onUsage: async (u) => {
      log.info(
        { incidentId: u.incidentId, inputTokens: u.inputTokens, outputTokens: u.outputTokens, model: u.model },
        "claude usage",
      );
      if (!store) return;
      await store.db
        .updateTable("incidents")
        .set((eb) => ({
          llm_calls: eb("llm_calls", "+", 1),
          llm_input_tokens: eb("llm_input_tokens", "+", u.inputTokens),
          llm_output_tokens: eb("llm_output_tokens", "+", u.outputTokens),
        }))
        .where("id", "=", u.incidentId)
        .execute();
    },
  });
}
