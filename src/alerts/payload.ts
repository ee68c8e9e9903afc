import { z } from "zod";

// AlertManager's webhook body (version "4"), as sent by AlertManager 0.2x. Unknown fields that
// newer versions add are tolerated and dropped; known fields are checked strictly for type.
//
// AlertManager never retries a 4xx, so only what is truly invalid is refused here: wrong types,
// missing fields, impossible dates. Sizes are not refused: long values are fitted by
// normalize.ts (truncated with a marker), a group of any size is taken (the route caps the count).

/** A label or annotation set. A null-prototype object: `__proto__` or `constructor` is just a name. */
export type Labels = Record<string, string>;

// RFC 3339 as AlertManager writes it: 2024-05-01T10:00:00.123456789Z or with an offset. The zero
// time (0001-01-01T00:00:00Z) is what AlertManager sends for "no end" and stays accepted.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$/;

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * True for a timestamp that names a real instant. `Date.parse` alone rolls `2026-02-30` over to
 * March 2 and `T24:00` to the next day; AlertManager (Go) would never write either.
 */
export function isRealTimestamp(s: string): boolean {
  const m = RFC3339.exec(s);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return false;
  if (hour > 23 || minute > 59 || second > 59) return false;
  if (m[9] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) return false;
  return !Number.isNaN(Date.parse(s));
}

export const Timestamp = z
  .string()
  .regex(RFC3339, "expected an RFC 3339 timestamp")
  .refine(isRealTimestamp, "expected a real date and time");

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * A label set: an object of strings, copied into a null-prototype object. Not `z.record`, which
 * assigns keys onto a plain object and so silently drops a label named `__proto__`.
 */
function labelSet(required: boolean) {
  return (required ? z.unknown() : z.unknown().optional()).transform((input, ctx): Labels => {
    const out: Labels = Object.create(null);
    if (input === undefined && !required) return out;
    if (!isPlainObject(input)) {
      ctx.addIssue({ code: "invalid_type", expected: "object", input, message: "expected an object of strings" });
      return z.NEVER;
    }
    for (const name of Object.keys(input)) {
      const value = input[name];
      if (typeof value !== "string") {
        ctx.addIssue({
          code: "invalid_type",
          expected: "string",
          input: value,
          path: [name],
          message: `expected a string, got ${value === null ? "null" : typeof value}`,
        });
        continue;
      }
      out[name] = value;
    }
    return out;
  });
}

export const LabelSet = labelSet(true);
export const OptionalLabelSet = labelSet(false);

export const Alert = z.object({
  status: z.enum(["firing", "resolved"]),
  labels: LabelSet.refine(
    (l) => typeof l.alertname === "string" && l.alertname.length > 0,
    "labels.alertname is required",
  ),
  annotations: OptionalLabelSet,
  startsAt: Timestamp,
  endsAt: Timestamp.optional(),
  generatorURL: z.string().optional(),
  fingerprint: z.string().optional(),
});
export type Alert = z.infer<typeof Alert>;

export const AlertmanagerPayload = z.object({
  version: z.literal("4", { message: 'expected version "4"' }),
  groupKey: z.string(),
  truncatedAlerts: z.number().int().min(0).default(0),
  status: z.enum(["firing", "resolved"]),
  receiver: z.string(),
  groupLabels: OptionalLabelSet,
  commonLabels: OptionalLabelSet,
  commonAnnotations: OptionalLabelSet,
  externalURL: z.string().default(""),
  alerts: z.array(Alert).min(1, "alerts must not be empty"),
});
export type AlertmanagerPayload = z.infer<typeof AlertmanagerPayload>;

/** AlertManager's "no end" timestamp. */
export function isZeroTime(ts: string | undefined): boolean {
  return ts === undefined || ts.startsWith("0001-01-01");
}
