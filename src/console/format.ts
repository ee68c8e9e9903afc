import { html, type Html } from "./html.ts";

// Small pieces of markup the pages share: times, states, JSON, outside links.

/** A time (ms since the epoch, or an ISO string as MCP views give) as `<time>`: UTC, to the second, the ISO value for machines. */
export function when(t: number | string | null | undefined): Html {
  const d = t === null || t === undefined ? null : new Date(typeof t === "string" && !/^\d+$/.test(t) ? t : Number(t));
  if (!d || Number.isNaN(d.getTime())) return html`<span class="muted">—</span>`;
  const iso = d.toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 19).replace("T", " ")}Z</time>`;
}

/** "3m ago", "2h ago": how long before `now`. */
export function ago(ms: number | null | undefined, now: number): string {
  if (ms === null || ms === undefined) return "never";
  const s = Math.max(0, Math.round((now - Number(ms)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** A state as a labelled badge (the word is always shown; colour only helps). */
export function stateBadge(state: string): Html {
  const kind = /^[a-z_]+$/.test(state) ? state : "unknown";
  return html`<span class="state state-${kind}">${state}</span>`;
}

export function json(value: unknown): Html {
  return html`<pre class="json">${JSON.stringify(value, null, 2) ?? "null"}</pre>`;
}

/** A link to an outside page only when it is http(s); otherwise the text. */
export function outsideLink(url: string | null | undefined, text: string): Html {
  if (!url || !/^https?:\/\//i.test(url)) return html`${text}`;
  return html`<a href="${url}" rel="noopener noreferrer">${text}</a>`;
}

/** Keeps the query string of a list page when one parameter changes. */
export function withQuery(path: string, q: Record<string, string | undefined>): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== "") params.set(k, v);
  const s = params.toString();
  return s ? `${path}?${s}` : path;
}
