import { invalid } from "../shared/errors.ts";

// AlertManager bodies are parsed here rather than by fastify's default parser. What a plain
// JSON.parse of a string would silently change is refused instead, so nothing is stored altered:
// bytes that are not UTF-8 (a lenient decode turns them into U+FFFD), escapes that leave a lone
// UTF-16 surrogate (MySQL cannot store one), and nesting deep enough to hurt (the real payload is
// four levels deep). Keys such as `__proto__` are kept: JSON.parse makes them own properties, and
// the payload schema copies label sets into null-prototype objects.

export const MAX_DEPTH = 32;

const utf8 = new TextDecoder("utf-8", { fatal: true });
// An escape of a UTF-16 surrogate (\uD800–\uDFFF): only these can produce a lone surrogate once
// the bytes are known to be valid UTF-8.
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F][0-9a-fA-F]{2}/;
const LONE_SURROGATE = /\p{Cs}/u;

/** Nesting depth of a JSON text, counting brackets outside strings. O(n), no recursion. */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      depth++;
      if (depth > max) max = depth;
    } else if (c === 125 || c === 93) depth--;
  }
  return max;
}

/** Decodes a body as strict UTF-8 (a leading byte-order mark is dropped). */
export function decodeUtf8(body: Uint8Array): string {
  try {
    return utf8.decode(body);
  } catch {
    throw invalid("request.invalid_utf8", "body is not valid UTF-8");
  }
}

export function parseAlertmanagerJson(body: string | Uint8Array): unknown {
  const text = typeof body === "string" ? body : decodeUtf8(body);
  if (text.trim() === "") throw invalid("request.empty_body", "body is empty");
  if (LONE_SURROGATE.test(text)) throw invalid("request.invalid_utf8", "body contains a lone UTF-16 surrogate");
  if (jsonDepth(text) > MAX_DEPTH)
    throw invalid("alertmanager.too_deep", `JSON nesting deeper than ${MAX_DEPTH} levels`);
  const checkEscapes = SURROGATE_ESCAPE.test(text);
  let lone: string | undefined;
  let parsed: unknown;
  try {
    parsed = checkEscapes
      ? JSON.parse(text, (key, value) => {
          if (
            lone === undefined &&
            (LONE_SURROGATE.test(key) || (typeof value === "string" && LONE_SURROGATE.test(value)))
          )
            lone = key;
          return value;
        })
      : JSON.parse(text);
  } catch {
    throw invalid("request.invalid_json", "body is not valid JSON");
  }
  if (lone !== undefined)
    throw invalid(
      "request.invalid_utf8",
      "body contains an escape of a lone UTF-16 surrogate (\\uD800–\\uDFFF unpaired)",
    );
  return parsed;
}
