import { z } from "zod";

// AlertManager's webhook body (version "4"), as sent by AlertManager 0.2x. Unknown fields that
// newer versions add are tolerated and dropped; known fields are checked strictly.

const MAX_LABELS = 128;
const MAX_LABEL_NAME = 256;
const MAX_LABEL_VALUE = 16_384;
const MAX_ALERTS = 1000;

// RFC 3339 as AlertManager writes it: 2024-05-01T10:00:00.123456789Z or with an offset. The zero
// time (0001-01-01T00:00:00Z) is what AlertManager sends for "no end" and stays accepted.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

export const Timestamp = z
  .string()
  .regex(RFC3339, "expected an RFC 3339 timestamp")
  .refine((s) => !Number.isNaN(Date.parse(s)), "expected a real date");

const labelName = z.string().min(1).max(MAX_LABEL_NAME);

export const LabelSet = z
  .record(labelName, z.string().max(MAX_LABEL_VALUE))
  .refine((r) => Object.keys(r).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`);

export const Alert = z.object({
  status: z.enum(["firing", "resolved"]),
  labels: LabelSet.refine((l) => typeof l.alertname === "string" && l.alertname.length > 0, "labels.alertname is required"),
  annotations: LabelSet.default({}),
  startsAt: Timestamp,
  endsAt: Timestamp.optional(),
  generatorURL: z.string().max(4096).optional(),
  fingerprint: z.string().max(128).optional(),
});
export type Alert = z.infer<typeof Alert>;

export const AlertmanagerPayload = z.object({
  version: z.literal("4", { message: 'expected version "4"' }),
  groupKey: z.string().max(8192),
  truncatedAlerts: z.number().int().min(0).default(0),
  status: z.enum(["firing", "resolved"]),
  receiver: z.string().max(1024),
  groupLabels: LabelSet.default({}),
  commonLabels: LabelSet.default({}),
  commonAnnotations: LabelSet.default({}),
  externalURL: z.string().max(4096).default(""),
  alerts: z.array(Alert).min(1, "alerts must not be empty").max(MAX_ALERTS),
});
export type AlertmanagerPayload = z.infer<typeof AlertmanagerPayload>;

/** AlertManager's "no end" timestamp. */
export function isZeroTime(ts: string | undefined): boolean {
  return ts === undefined || ts.startsWith("0001-01-01");
}
