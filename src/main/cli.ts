import { parseArgs } from "node:util";
import { ConfigError, loadConfig, type Config } from "../config/load.ts";
import { createLogger } from "../shared/logger.ts";
import { VERSION } from "../shared/version.ts";

const USAGE = `Usage: pitcrew <command>

Commands:
  serve     run the control plane (HTTP, outbox relay, event ingester; in embedded mode also the runners)
  runner    run a runner process (distributed mode: needs NATS_URL)
  migrate   apply database migrations and exit
  help      show this text

Configuration comes from environment variables; see the README.`;

function fail(message: string): never {
  process.stderr.write(`pitcrew: ${message}\n`);
  process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, strict: false, options: { version: { type: "boolean", short: "v" }, help: { type: "boolean", short: "h" } } });
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const command = positionals[0] ?? "help";
  if (values.help || command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (!["serve", "runner", "migrate"].includes(command)) fail(`unknown command "${command}"\n\n${USAGE}`);

  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) fail(`invalid configuration: ${err.message}`);
    throw err;
  }
  const log = createLogger({ level: config.logLevel, name: `pitcrew-${command}` });

  // Commands load their modules on demand: a configuration error answers at once.
  const { describeStartupError, migrateWithRetry, serve } = await import("./serve.ts");
  try {
    if (command === "serve") await serve(config, log);
    else if (command === "runner") await (await import("../../runner/main.ts")).runRunnerProcess(config, log);
    else {
      const { openStore } = await import("../store/db.ts");
      const store = openStore(config.database);
      const applied = await migrateWithRetry(store, log, 1);
      await store.close();
      process.stdout.write(applied.length ? `applied: ${applied.join(", ")}\n` : "database is up to date\n");
    }
  } catch (err) {
    if (err instanceof ConfigError) fail(`invalid configuration: ${err.message}`);
    log.debug({ err }, "startup failed");
    fail(`cannot ${command}: ${describeStartupError(err)}`);
  }
}

await main(process.argv.slice(2));
