import { invalid } from "../shared/errors.ts";

// Data-only templates: {{labels.x}}, {{annotations.y}}, {{incident.id}}. A lookup into plain
// data and nothing else: no expressions, no functions, no prototype walking. A missing value is
// an error, never an empty string.

const PLACEHOLDER = /\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_.-]+)?)\s*\}\}/g;
const ROOTS = new Set(["labels", "annotations", "incident"]);

export type TemplateData = {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  incident: Record<string, string | number | null>;
};

export function renderTemplate(template: string, data: TemplateData): string {
  return template.replace(PLACEHOLDER, (_m, ref: string) => {
    const dot = ref.indexOf(".");
    const root = dot === -1 ? ref : ref.slice(0, dot);
    const key = dot === -1 ? "" : ref.slice(dot + 1);
    if (!ROOTS.has(root) || key === "")
      throw invalid(
        "template.bad_reference",
        `{{${ref}}}: only labels.<name>, annotations.<name> and incident.<field> can be used`,
      );
    const source = data[root as keyof TemplateData] as Record<string, unknown>;
    const value = Object.hasOwn(source, key) ? source[key] : undefined;
    if (value === undefined || value === null || value === "")
      throw invalid("template.missing_value", `{{${ref}}} has no value for this incident`);
    return String(value);
  });
}

/** Renders every string inside a plain value (the `with:` parameters of a skill). */
export function renderValue(value: unknown, data: TemplateData): unknown {
  if (typeof value === "string") return renderTemplate(value, data);
  if (Array.isArray(value)) return value.map((v) => renderValue(v, data));
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderValue(v, data)]));
  return value;
}
