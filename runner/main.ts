import type { Config } from "../src/config/load.ts";
import { ConfigError } from "../src/config/load.ts";
import { createQueue } from "../src/bus/create.ts";
import { onShutdownSignal } from "../src/main/signals.ts";
import type { Logger } from "../src/shared/logger.ts";
import { VERSION } from "../src/shared/version.ts";
import { loadSkills } from "../src/skills/load.ts";
import { missingAgentClis, warnMissingAgentClis } from "../src/skills/agent-clis.ts";
import { buildExecutors, checkAgentIdentity } from "./executors/index.ts";
import { createGitHost } from "../src/main/gitops.ts";
import { createRunner, runnerOptions } from "./worker.ts";

/** `pitcrew runner`: a standalone runner process for distributed mode. Needs NATS, not the database. */
export async function runRunnerProcess(config: Config, log: Logger): Promise<void> {
  if (!config.nats) {
    throw new ConfigError(
      "NATS_URL: required by `pitcrew runner` (in embedded mode `pitcrew serve` runs the runners itself)",
    );
  }
  checkAgentIdentity(config.agents, process.getuid?.(), log);
  // The skills this runner can see (its SKILLS_DIR; the image ships them) against its own PATH.
  warnMissingAgentClis(
    missingAgentClis(loadSkills(config.skillsDir).skills, config.agents, process.env.PATH ?? ""),
    log,
  );
  const queue = await createQueue(config, log, `pitcrew-runner-${config.runner.id}`);
  const runner = createRunner(
    {
      queue,
      log: log.child({ component: "runner" }),
      executors: await buildExecutors(config, { host: await createGitHost(config, log), env: process.env }),
    },
    runnerOptions(config, config.runner.id, VERSION),
  );
  runner.start();
  process.stdout.write(
    `  Pitcrew runner ${config.runner.id} (${VERSION}) pulling pool "${config.runner.pool}" with concurrency ${config.runner.concurrency}\n`,
  );
  onShutdownSignal(log, config.shutdownTimeoutMs, async () => {
    await runner.stop();
    await queue.close();
  });
}
