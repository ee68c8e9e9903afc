import { parseArgs } from "node:util";
import { ConfigError, loadConfig, type Config } from "../config/load.ts";
import { createLogger } from "../shared/logger.ts";
import { VERSION } from "../shared/version.ts";
import { errorMessage, isAppError } from "../shared/errors.ts";
import { describeDbError } from "../store/errors.ts";

const USAGE = `Usage: pitcrew <command>

Commands:
  serve     run the control plane (HTTP, outbox relay, event ingester; in embedded mode also the runners)
  runner    run a runner process (distributed mode: needs NATS_URL)
  migrate   apply database migrations and exit
  pause [reason]           stop analysing and fixing new incidents (they are still recorded)
  resume                   resume automation and analyse the incidents that waited
  skills validate [dir]    check skill files (default SKILLS_DIR); exits 1 on any problem
  replay <alert.json> [--json]
                           show the incident and plan an AlertManager payload would produce; changes nothing
  token [--rotate]         show the generated MCP token, or replace it (the old one works until the next restart)
  demo [--keep]            the whole loop on this machine in a temporary folder: alert, plan, pull request,
                           approval, merge, resolve (no network; with TELEGRAM_* set, approve with a button)
  help      show this text

Configuration comes from environment variables; see the README.`;

function fail(message: string): never {
  process.stderr.write(`pitcrew: ${message}\n`);
  process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: {
      version: { type: "boolean", short: "v" },
      help: { type: "boolean", short: "h" },
      json: { type: "boolean" },
      rotate: { type: "boolean" },
      keep: { type: "boolean" },
    },
  });
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const command = positionals[0] ?? "help";
  if (values.help || command === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command === "demo") {
    // The demo configures its own control plane (a temporary folder); only TELEGRAM_* pass through.
    const { runDemo } = await import("./demo.ts");
    try {
      await runDemo({ env: process.env, out: (line) => process.stdout.write(`${line}\n`), keep: values.keep === true });
    } catch (err) {
      fail(`demo failed: ${errorMessage(err)}`);
    }
    return;
  }
  if (!["serve", "runner", "migrate", "pause", "resume", "skills", "replay", "token"].includes(command))
    fail(`unknown command "${command}"\n\n${USAGE}`);
  if (command === "skills" && positionals[1] !== "validate")
    fail(`unknown skills command "${positionals[1] ?? ""}" (try: pitcrew skills validate [dir])`);

  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) fail(`invalid configuration: ${err.message}`);
    throw err;
  }
  const log = createLogger({ level: config.logLevel, format: config.logFormat, name: `pitcrew-${command}` });

  if (command === "token") {
    process.stdout.write(`${(await import("./token.ts")).tokenCommand(config, values.rotate === true)}\n`);
    return;
  }

  if (command === "skills") {
    const r = (await import("./skills-validate.ts")).validateSkillsCommand(positionals[2] ?? config.skillsDir);
    process.stdout.write(`${r.output}\n`);
    if (!r.ok) process.exit(1);
    return;
  }

  // Commands load their modules on demand: a configuration error answers at once, and a one-off
  // (--version, token, skills validate) loads no database driver.
  try {
    if (command === "serve") await (await import("./serve.ts")).serve(config, log);
    else if (command === "runner") await (await import("../../runner/main.ts")).runRunnerProcess(config, log);
    else {
      const admin = await import("./admin.ts");
      if (command === "migrate") process.stdout.write(`${await admin.migrateCommand(config, log)}\n`);
      else if (command === "pause")
        process.stdout.write(
          `${await admin.pauseCommand(config, log, true, positionals.slice(1).join(" ") || undefined)}\n`,
        );
      else if (command === "resume") process.stdout.write(`${await admin.pauseCommand(config, log, false)}\n`);
      else if (command === "replay") {
        if (!positionals[1]) fail("replay needs a file: pitcrew replay <alert.json>");
        const { replay, formatReplay } = await import("./replay.ts");
        const { createPlanner } = await import("./planner.ts");
        const results = await replay(positionals[1], config, await createPlanner(config, log), log);
        process.stdout.write(`${values.json ? JSON.stringify(results, null, 2) : formatReplay(results)}\n`);
      }
    }
  } catch (err) {
    if (err instanceof ConfigError) fail(`invalid configuration: ${err.message}`);
    log.debug({ err }, "startup failed");
    fail(`cannot ${command}: ${describeStartupError(err)}`);
  }
}

/** One line for a failed start: an AppError's message, a port clash, or the driver's code. */
function describeStartupError(err: unknown): string {
  if (isAppError(err)) return err.message;
  if ((err as { code?: string }).code === "EADDRINUSE") return `port already in use (${errorMessage(err)})`;
  return describeDbError(err) || errorMessage(err);
}

await main(process.argv.slice(2));
