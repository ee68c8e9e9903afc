// Tool schemas in the JSON Schema subset that clients mapping tools onto narrower dialects (the
// OpenAPI subset of Gemini function declarations, strict structured outputs) accept, and that the
// MCP Inspector's schema lint (`--strict`) passes: every node has one `type` (a nullable field is
// `anyOf: [{type: T, …}, {type: "null"}]`, never `type: [T, "null"]`), and no node accepts
// anything by saying nothing (`{}`): a free-form value is spelled out as the JSON types it may be,
// a free-form object's values as `additionalProperties: true`. The meaning does not change.

type Schema = Record<string, unknown>;

/** Keywords that describe a node rather than constrain it: they stay on the node when its type is split. */
const ANNOTATIONS = new Set([
  "description",
  "title",
  "default",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
  "$comment",
  "$schema",
]);

const CONSTRAINING = new Set([
  "type",
  "enum",
  "const",
  "multipleOf",
  "maximum",
  "exclusiveMaximum",
  "minimum",
  "exclusiveMinimum",
  "maxLength",
  "minLength",
  "pattern",
  "format",
  "maxItems",
  "minItems",
  "uniqueItems",
  "maxProperties",
  "minProperties",
  "required",
  "allOf",
  "anyOf",
  "oneOf",
  "not",
  "items",
  "prefixItems",
  "contains",
  "properties",
  "patternProperties",
  "additionalProperties",
  "propertyNames",
  "$ref",
]);

/** Any JSON value, each branch with one type. */
const ANY_JSON: Schema[] = [
  { type: "object", additionalProperties: true },
  { type: "array" },
  { type: "string" },
  { type: "number" },
  { type: "boolean" },
  { type: "null" },
];

const isSchema = (v: unknown): v is Schema => typeof v === "object" && v !== null && !Array.isArray(v);
const isEmpty = (s: Schema) => !Object.keys(s).some((k) => CONSTRAINING.has(k));

function node(s: unknown): unknown {
  if (!isSchema(s)) return s;
  const out: Schema = {};
  for (const [k, v] of Object.entries(s)) {
    if ((k === "properties" || k === "patternProperties" || k === "$defs" || k === "definitions") && isSchema(v)) {
      out[k] = Object.fromEntries(Object.entries(v).map(([name, sub]) => [name, node(sub)]));
    } else if ((k === "anyOf" || k === "allOf" || k === "oneOf" || k === "prefixItems") && Array.isArray(v)) {
      out[k] = v.map(node);
    } else if (k === "items" && Array.isArray(v)) {
      out[k] = v.map(node);
    } else if (k === "additionalProperties" && isSchema(v) && isEmpty(v)) {
      out[k] = true;
    } else if (
      k === "items" ||
      k === "additionalProperties" ||
      k === "propertyNames" ||
      k === "contains" ||
      k === "not"
    ) {
      out[k] = node(v);
    } else {
      out[k] = v;
    }
  }
  return splitTypes(out);
}

/** `type: [A, B]` → `anyOf: [{type: A, …}, {type: B, …}]`; a node that constrains nothing → any JSON value. */
function splitTypes(s: Schema): Schema {
  const keep: Schema = {};
  const rest: Schema = {};
  for (const [k, v] of Object.entries(s)) (ANNOTATIONS.has(k) ? keep : rest)[k] = v;
  if (Array.isArray(s.type)) {
    const { type: _, ...constraints } = rest;
    const branches = (s.type as string[]).map((t) => (t === "null" ? { type: "null" } : { type: t, ...constraints }));
    return branches.length === 1 ? { ...keep, ...branches[0] } : { ...keep, anyOf: branches };
  }
  if (isEmpty(rest)) return { ...keep, anyOf: ANY_JSON };
  return s;
}

/** The portable form of a tool's input or output schema (see above). */
export function portableSchema<T extends Schema>(schema: T): T {
  return node(schema) as T;
}
