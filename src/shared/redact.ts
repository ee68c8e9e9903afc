// Secrets must never reach logs, events or error bodies. Pino redacts by path; these helpers
// cover values that are not at a fixed path (URLs with credentials, free-form objects).

// Matched against the key in snake_case (apiKey → api_key), as a whole word at the end: catches
// `token`, `github_token`, `x-api-key`, `clientSecret`, but not `input_tokens` or `bypass`.
const SECRET_KEY =
  /(^|_)(pass|password|passwd|secret|token|api_key|apikey|authorization|cookie|credential|credentials|private_key|access_key|secret_key|signature)$/;
const MAX_DEPTH = 20;

const snake = (key: string) =>
  key
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/-/g, "_")
    .toLowerCase();
export const isSecretKey = (key: string): boolean => SECRET_KEY.test(snake(key));

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
  if (value === null || typeof value !== "object") return value;
  // Deeper than any real payload: drop it rather than pass unchecked values through.
  if (depth >= MAX_DEPTH) return "[too deep]" as T;
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v, depth + 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = isSecretKey(k) && v !== null && v !== undefined ? "***" : redactSecrets(v, depth + 1);
  }
  return out as T;
}
