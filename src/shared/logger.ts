import { createRequire } from "node:module";
import { pino, type Logger, type LoggerOptions } from "pino";
import type { PrettyOptions } from "pino-pretty";
import { LOG_REDACT_PATHS } from "./redact.ts";

export type { Logger };

/** `json`: one JSON object per line (the default, for log collectors); `pretty`: for a terminal. */
export type LogFormat = "json" | "pretty";

export function createLogger(opts: {
  level: string;
  name?: string;
  format?: LogFormat;
  destination?: pino.DestinationStream;
}): Logger {
  const options: LoggerOptions = {
    level: opts.level,
    name: opts.name ?? "pitcrew",
    redact: { paths: LOG_REDACT_PATHS, censor: "***" },
    serializers: { err: pino.stdSerializers.err },
  };
  if (opts.format === "pretty") {
    // In-process and synchronous (no worker thread): a line is on the terminal before the next one
    // is written, and an exit right after a fatal line loses nothing.
    const stream = loadPretty()({
      sync: true,
      translateTime: "SYS:HH:MM:ss.l",
      ignore: "pid,hostname",
      ...(opts.destination ? { destination: opts.destination, colorize: false } : {}),
    });
    return pino(options, stream);
  }
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

// Loaded only when asked for: JSON logging (production, one-off commands) never reads it.
function loadPretty(): (opts: PrettyOptions) => pino.DestinationStream {
  return createRequire(import.meta.url)("pino-pretty") as (opts: PrettyOptions) => pino.DestinationStream;
}

export const silentLogger: Logger = pino({ level: "silent" });
