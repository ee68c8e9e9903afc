import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Reads the token kept in `<dataDir>/secrets/<name>.token`, or creates one (256 random bits,
 * base64url) in a 0700 folder with file mode 0600. Returns whether it was created now, so the
 * caller can show it once.
 */
export function loadOrCreateToken(dataDir: string, name: string): { token: string; created: boolean; path: string } {
  const dir = join(dataDir, "secrets");
  const path = join(dir, `${name}.token`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  if (existsSync(path)) {
    const token = readFileSync(path, "utf8").trim();
    if (token.length >= 32) return { token, created: false, path };
  }
  const token = randomBytes(32).toString("base64url");
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: "w" });
  chmodSync(path, 0o600);
  return { token, created: true, path };
}

/** Constant-time comparison that does not leak the length of the expected value either. */
export function safeEqual(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b) && given.length === expected.length;
}
