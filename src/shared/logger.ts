import { pino, type Logger, type LoggerOptions } from "pino";
import { LOG_REDACT_PATHS } from "./redact.ts";

export type { Logger };

export function createLogger(opts: { level: string; name?: string; destination?: pino.DestinationStream }): Logger {
  const options: LoggerOptions = {
    level: opts.level,
    name: opts.name ?? "pitcrew",
    redact: { paths: LOG_REDACT_PATHS, censor: "***" },
    serializers: { err: pino.stdSerializers.err },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

export const silentLogger: Logger = pino({ level: "silent" });
