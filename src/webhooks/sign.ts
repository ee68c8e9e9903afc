import { createHmac, timingSafeEqual } from "node:crypto";
import { invalid } from "../shared/errors.ts";

// Standard Webhooks (https://www.standardwebhooks.com): the signed content is
// `${webhook-id}.${webhook-timestamp}.${body}`, HMAC-SHA256, base64, sent as `v1,<sig>`; several
// space-separated signatures may be sent (key rotation) and any one of them passing is enough.
// Replay protection beyond the timestamp window is the caller's job: `verify` returns the id.

const PREFIX = "whsec_";
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

export type SignInput = { id: string; timestamp: number; body: string | Uint8Array };

export type VerifyFailure = "missing_headers" | "bad_timestamp" | "too_old" | "too_new" | "no_signature_matched";
export type VerifyResult = { ok: true; id: string; timestamp: number } | { ok: false; reason: VerifyFailure };

export type HeaderSource = Headers | Record<string, string | string[] | undefined>;

/** `whsec_<base64>` → the decoded bytes; anything else is used as raw UTF-8 bytes. */
export function secretKey(secret: string): Buffer {
  if (secret.startsWith(PREFIX)) {
    const b64 = secret.slice(PREFIX.length);
    if (!BASE64.test(b64)) throw invalid("webhook.bad_secret", "a whsec_ secret must be followed by base64");
    const key = Buffer.from(b64, "base64");
    if (key.length === 0) throw invalid("webhook.bad_secret", "the webhook secret is empty");
    return key;
  }
  if (secret.length === 0) throw invalid("webhook.bad_secret", "the webhook secret is empty");
  return Buffer.from(secret, "utf8");
}

function digest(input: SignInput, key: Buffer): string {
  return createHmac("sha256", key)
    .update(`${input.id}.${input.timestamp}.`)
    .update(input.body)
    .digest("base64");
}

export function sign(input: SignInput, secret: string): string {
  if (!Number.isSafeInteger(input.timestamp) || input.timestamp < 0) throw invalid("webhook.bad_timestamp", "the timestamp must be whole seconds");
  return `v1,${digest(input, secretKey(secret))}`;
}

/** The three headers of a signed request. */
export function signatureHeaders(input: SignInput, secret: string): Record<"webhook-id" | "webhook-timestamp" | "webhook-signature", string> {
  return { "webhook-id": input.id, "webhook-timestamp": String(input.timestamp), "webhook-signature": sign(input, secret) };
}

function header(headers: HeaderSource, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== name) continue;
    return Array.isArray(v) ? v.join(" ") : v;
  }
  return undefined;
}

/**
 * Checks a request signed with `secret`. `body` must be the raw body as received (re-serialising
 * parsed JSON changes the bytes). The timestamp must lie within `toleranceSeconds` of `now`, in the
 * past or in the future.
 */
export function verify(
  headers: HeaderSource,
  body: string | Uint8Array,
  secret: string,
  opts: { toleranceSeconds?: number; now?: Date | number } = {},
): VerifyResult {
  const id = header(headers, "webhook-id");
  const ts = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !ts || !signatures) return { ok: false, reason: "missing_headers" };
  if (!/^\d{1,15}$/.test(ts.trim())) return { ok: false, reason: "bad_timestamp" };
  const timestamp = Number(ts.trim());
  const tolerance = opts.toleranceSeconds ?? 300;
  const nowMs = opts.now === undefined ? Date.now() : typeof opts.now === "number" ? opts.now : opts.now.getTime();
  const now = Math.floor(nowMs / 1000);
  if (now - timestamp > tolerance) return { ok: false, reason: "too_old" };
  if (timestamp - now > tolerance) return { ok: false, reason: "too_new" };

  const expected = Buffer.from(digest({ id, timestamp, body }, secretKey(secret)));
  for (const entry of signatures.split(" ")) {
    const comma = entry.indexOf(",");
    if (comma === -1 || entry.slice(0, comma) !== "v1") continue;
    const given = Buffer.from(entry.slice(comma + 1));
    // The length of an HMAC-SHA256 in base64 is public (44); only the content is compared in constant time.
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true, id, timestamp };
  }
  return { ok: false, reason: "no_signature_matched" };
}
