import { invalid } from "../shared/errors.ts";

// AlertManager bodies are parsed here rather than by fastify's default parser, to refuse what a
// plain JSON.parse would let through: prototype-pollution keys anywhere, and nesting deep enough
// to hurt (the real payload is four levels deep).

const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);
export const MAX_DEPTH = 32;

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

export function parseAlertmanagerJson(text: string): unknown {
  if (text.trim() === "") throw invalid("request.empty_body", "body is empty");
  if (jsonDepth(text) > MAX_DEPTH) throw invalid("alertmanager.too_deep", `JSON nesting deeper than ${MAX_DEPTH} levels`);
  let forbidden: string | undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text, (key, value) => {
      if (FORBIDDEN_KEYS.has(key)) forbidden ??= key;
      return value;
    });
  } catch {
    throw invalid("request.invalid_json", "body is not valid JSON");
  }
  if (forbidden) throw invalid("alertmanager.forbidden_key", `key "${forbidden}" is not allowed`);
  return parsed;
}
