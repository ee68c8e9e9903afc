// The console's HTML is built with one tagged template: every interpolated value is escaped unless
// it is itself the result of `html` (or `raw`, for markup we wrote). Labels, annotations, titles,
// reasons and diffs come from alerts and agents — attacker-controlled — so escaping is the default
// and never a choice made at each call site.

const SAFE = Symbol("html");

export type Html = { readonly [SAFE]: true; readonly text: string };

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

const isHtml = (v: unknown): v is Html => typeof v === "object" && v !== null && (v as Html)[SAFE] === true;

/** Markup we wrote ourselves; never pass outside text here. */
export function raw(text: string): Html {
  return { [SAFE]: true, text };
}

type Value = Html | string | number | boolean | null | undefined | readonly Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return "";
  if (Array.isArray(v)) return v.map(render).join("");
  if (isHtml(v)) return v.text;
  return escapeHtml(String(v));
}

/** `html\`<p>${text}</p>\`` — values escaped, nested `html` kept, arrays joined, null/false/undefined dropped. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return raw(out);
}

/** The document as a string, for the reply. */
export const toText = (h: Html): string => h.text;
