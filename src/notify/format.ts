// Text for Telegram's HTML parse mode. Everything that comes from outside (labels, annotations,
// titles, the planner's rationale, diffs, people's reasons) goes through escapeHtml or escapeCut;
// only our own fixed tags are written raw. A message must stay within 4,096 characters: fitHtml
// shortens the parts that may be shortened, always between characters of the escaped text, so
// a cut never splits an entity (`&amp;`), a tag or a surrogate pair.

export const TELEGRAM_TEXT_LIMIT = 4096;
const ELLIPSIS = "…";

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ENTITIES[c]!);
}

/** `raw` escaped, at most `max` characters long; ends with "…" when it had to be cut. */
export function escapeCut(raw: string, max: number): string {
  if (max <= 0) return "";
  const full = escapeHtml(raw);
  if (full.length <= max) return full;
  let out = "";
  for (const ch of raw) {
    const piece = ENTITIES[ch] ?? ch;
    if (out.length + piece.length + ELLIPSIS.length > max) break;
    out += piece;
  }
  return out.length === 0 && max < ELLIPSIS.length ? "" : out + ELLIPSIS;
}

/**
 * A part of a message: fixed HTML (ours, short), or outside text that is escaped and may be cut —
 * down to `min` characters when the message is too long, and to `max` always. `open`/`close` wrap
 * it (e.g. `<pre>`…`</pre>`) and are left out with it when it is cut away entirely.
 */
export type Part = string | { text: string; max?: number; min?: number; open?: string; close?: string };

/** Joins the parts into at most `limit` characters, shortening the longest cuttable parts first. */
export function fitHtml(parts: Part[], limit = TELEGRAM_TEXT_LIMIT): string {
  const cuts = parts.map((p) => (typeof p === "string" ? null : { ...p, budget: p.max ?? Number.POSITIVE_INFINITY }));
  const render = (i: number): string => {
    const p = parts[i]!;
    const c = cuts[i];
    if (typeof p === "string" || !c) return p as string;
    const body = escapeCut(c.text, c.budget);
    return body ? `${c.open ?? ""}${body}${c.close ?? ""}` : "";
  };
  const rendered = parts.map((_, i) => render(i));
  const total = () => rendered.reduce((n, s) => n + s.length, 0);
  for (const floor of ["min", "zero"] as const) {
    while (total() > limit) {
      // The longest part that can still give something up.
      let best = -1;
      for (let i = 0; i < cuts.length; i++) {
        const c = cuts[i];
        if (!c || rendered[i]!.length === 0) continue;
        const lowest = floor === "min" ? (c.min ?? 0) : 0;
        if (rendered[i]!.length <= lowest + (c.open?.length ?? 0) + (c.close?.length ?? 0)) continue;
        if (best < 0 || rendered[i]!.length > rendered[best]!.length) best = i;
      }
      if (best < 0) break;
      const c = cuts[best]!;
      const wrap = (c.open?.length ?? 0) + (c.close?.length ?? 0);
      const lowest = floor === "min" ? (c.min ?? 0) : 0;
      const body = rendered[best]!.length - wrap;
      c.budget = Math.max(lowest, body - (total() - limit), 0);
      if (c.budget >= body) c.budget = body - 1;
      rendered[best] = render(best);
    }
    if (total() <= limit) break;
  }
  if (total() <= limit) return rendered.join("");
  // Our own fixed text alone is too long (it should never be): keep whole parts while they fit.
  let out = "";
  for (const s of rendered) {
    if (out.length + s.length + ELLIPSIS.length > limit) break;
    out += s;
  }
  return out + ELLIPSIS;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** "08:15:03 UTC" */
export function formatTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** "2026-11-20 08:15 UTC" */
export function formatDateTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

/** "3m12s", "2h05m", "45s", "1d3h" */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}
