import { z } from "zod";
import { parseDuration } from "../shared/duration.ts";

// Field types of the environment schema: each failure names what was expected.

export const duration = (fallback: string, min = 1) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const ms = parseDuration(v);
      if (ms === undefined || ms < min) {
        ctx.addIssue({
          code: "custom",
          message: `expected a duration like 500ms, 30s, 5m, 2h or 7d (at least ${min} ms)`,
        });
        return z.NEVER;
      }
      return ms;
    });

export const int = (fallback: number, min: number, max: number) =>
  z
    .string()
    .default(String(fallback))
    .transform((v, ctx) => {
      const n = Number(v);
      if (!/^\s*-?\d+\s*$/.test(v) || n < min || n > max) {
        ctx.addIssue({ code: "custom", message: `expected a whole number from ${min} to ${max}` });
        return z.NEVER;
      }
      return n;
    });

export const labelList = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      const names = v
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean);
      if (names.length === 0 || names.some((n) => !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(n))) {
        ctx.addIssue({ code: "custom", message: "expected comma-separated Prometheus label names" });
        return z.NEVER;
      }
      return names;
    });

export const bool = (fallback: boolean) =>
  z
    .string()
    .default(String(fallback))
    .transform((v, ctx) => {
      const t = v.trim().toLowerCase();
      if (["1", "true", "yes", "on"].includes(t)) return true;
      if (["0", "false", "no", "off", ""].includes(t)) return false;
      ctx.addIssue({ code: "custom", message: "expected true or false" });
      return z.NEVER;
    });

export const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

/** A regular expression, compiled; an empty value matches nothing. */
export const regex = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((v, ctx) => {
      if (v.trim() === "") return /(?!)/;
      try {
        return new RegExp(v);
      } catch {
        ctx.addIssue({ code: "custom", message: "expected a regular expression" });
        return z.NEVER;
      }
    });
