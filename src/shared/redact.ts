// Secrets must never reach logs, events or error bodies. Pino redacts by path; these helpers
// cover values that are not at a fixed path (URLs with credentials, free-form objects).

const SECRET_KEY = /pass(word)?|secret|token|api[-_]?key|authorization|cookie|credential|private[-_]?key/i;

export const LOG_REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["x-telegram-bot-api-secret-token"]',
  'req.headers["webhook-signature"]',
  "*.password",
  "*.token",
  "*.secret",
  "*.apiKey",
  "*.authorization",
];

/** `mysql://root:hunter2@db/x` → `mysql://root:***@db/x`; a token-only userinfo is masked too. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    else if (u.username && (u.protocol === "nats:" || u.protocol === "tls:")) u.username = "***";
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//***@");
  }
}

/** Deep copy with values under secret-looking keys replaced; safe for events and logs. */
export function redactSecrets<T>(value: T, depth = 0): T {
  if (depth > 20 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = SECRET_KEY.test(k) && v !== null && v !== undefined ? "***" : redactSecrets(v, depth + 1);
  }
  return out as T;
}
