import { html, type Html } from "./html.ts";
import type { DiffSummary } from "../gitops/port.ts";

// A unified diff as the console shows it: one block per file, headed by its path and line counts,
// the lines in a <pre> (so indentation survives without a stylesheet) with each added line an
// <ins> and each removed line a <del> — the marks a screen reader announces — and the +/- kept as
// text. Every line comes from a pull request (written by an agent or a person), so every line
// goes through `html` and is escaped; nothing here is ever trusted as markup.

export type DiffLine =
  | { kind: "add" | "del" | "ctx"; text: string; oldNo: number | null; newNo: number | null }
  | { kind: "hunk"; text: string }
  | { kind: "note"; text: string };

export type DiffFileBlock = {
  path: string;
  oldPath: string | null;
  meta: string[];
  lines: DiffLine[];
  added: number;
  removed: number;
  binary: boolean;
};

/** What is left after the files: the excerpt's "… N more lines" note, or text before the first file. */
export type ParsedDiff = { files: DiffFileBlock[]; notes: string[] };

const HUNK = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/;

function pathOf(header: string): { path: string; oldPath: string | null } {
  // "diff --git a/x b/y": the paths can contain spaces, so prefer the ---/+++ lines when present.
  const m = /^diff --git a\/(.*) b\/(.*)$/.exec(header);
  if (!m) return { path: header.replace(/^diff --git /, ""), oldPath: null };
  return { path: m[2]!, oldPath: m[1] !== m[2] ? m[1]! : null };
}

/** Parses a unified diff (git's, or the excerpt Pitcrew stores: cut at a line, with a closing note). */
export function parseUnifiedDiff(text: string): ParsedDiff {
  const files: DiffFileBlock[] = [];
  const notes: string[] = [];
  let file: DiffFileBlock | undefined;
  let oldNo = 0;
  let newNo = 0;
  let inHunk = false;
  for (const line of text.replace(/\r\n/g, "\n").split("\n")) {
    if (line.startsWith("diff --git ")) {
      file = { ...pathOf(line), meta: [], lines: [], added: 0, removed: 0, binary: false };
      files.push(file);
      inHunk = false;
      continue;
    }
    if (/^… \d+ more lines?$/.test(line)) {
      notes.push(line);
      continue;
    }
    if (!file) {
      if (line.startsWith("--- ") && !inHunk) {
        // A diff without "diff --git" headers (plain `diff -u`).
        file = { path: "", oldPath: null, meta: [], lines: [], added: 0, removed: 0, binary: false };
        files.push(file);
      } else {
        if (line.trim()) notes.push(line);
        continue;
      }
    }
    const hunk = HUNK.exec(line);
    if (hunk) {
      oldNo = Number(hunk[1]);
      newNo = Number(hunk[2]);
      inHunk = true;
      file.lines.push({ kind: "hunk", text: line });
      continue;
    }
    if (!inHunk) {
      if (line.startsWith("+++ ")) {
        const p = line.slice(4).replace(/^b\//, "");
        if (p !== "/dev/null") file.path = p;
      } else if (line.startsWith("--- ")) {
        const p = line.slice(4).replace(/^a\//, "");
        if (p !== "/dev/null" && !file.path) file.path = p;
      } else if (line.startsWith("Binary files ")) {
        file.binary = true;
        file.meta.push(line);
      } else if (line.trim() && !line.startsWith("index ")) file.meta.push(line);
      continue;
    }
    if (line.startsWith("+")) {
      file.lines.push({ kind: "add", text: line.slice(1), oldNo: null, newNo: newNo++ });
      file.added += 1;
    } else if (line.startsWith("-")) {
      file.lines.push({ kind: "del", text: line.slice(1), oldNo: oldNo++, newNo: null });
      file.removed += 1;
    } else if (line.startsWith(" ") || line === "") {
      // An empty line inside a hunk is a context line whose leading space was trimmed (GitHub patches).
      file.lines.push({ kind: "ctx", text: line.slice(1), oldNo: oldNo++, newNo: newNo++ });
    } else file.lines.push({ kind: "note", text: line });
  }
  // A trailing empty context line is the diff's final newline, not a line of the file.
  for (const f of files) {
    const last = f.lines[f.lines.length - 1];
    if (last && last.kind === "ctx" && last.text === "") f.lines.pop();
  }
  return { files, notes };
}

const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

function renderLine(l: DiffLine): Html {
  switch (l.kind) {
    case "add":
      return html`<ins class="diff-add">+${l.text}</ins>`;
    case "del":
      return html`<del class="diff-del">-${l.text}</del>`;
    case "ctx":
      return html`<span class="diff-ctx"> ${l.text}</span>`;
    case "hunk":
      return html`<span class="diff-hunk">${l.text}</span>`;
    case "note":
      return html`<span class="diff-note">${l.text}</span>`;
  }
}

function renderFile(f: DiffFileBlock, i: number): Html {
  const id = `diff-file-${i}`;
  const renamed = f.oldPath ? html` <span class="diff-rename">(from <code>${f.oldPath}</code>)</span>` : "";
  const what = f.binary
    ? "binary file"
    : `${count(f.added, "line", "lines")} added, ${count(f.removed, "line", "lines")} removed`;
  // One line per element, joined by newlines inside the <pre>: the line breaks are the text's own.
  const body = f.lines.map((l, n) => (n === 0 ? renderLine(l) : html`\n${renderLine(l)}`));
  return html`<section class="diff-file" aria-labelledby="${id}">
<h3 id="${id}"><code>${f.path || "(unnamed file)"}</code>${renamed} <span class="diff-counts">${what}</span></h3>
${f.meta.length ? html`<p class="diff-meta">${f.meta.join("; ")}</p>` : ""}
${f.lines.length ? html`<pre class="diff" tabindex="0" aria-label="${`Changes to ${f.path}`}"><code>${body}</code></pre>` : ""}
</section>`;
}

/** The diff rendered: one section per file; notes (a cut excerpt's remainder) after them. */
export function renderDiff(text: string): Html {
  const parsed = parseUnifiedDiff(text);
  if (parsed.files.length === 0) return html`<pre class="diff" tabindex="0"><code>${text}</code></pre>`;
  return html`<div class="diff-files">${parsed.files.map(renderFile)}${parsed.notes.map((n) => html`<p class="diff-more">${n}</p>`)}</div>`;
}

/** The files a change touches, with lines added and removed: a table, readable when the diff is cut. */
export function renderDiffSummary(s: DiffSummary): Html {
  return html`<table class="diff-summary">
<caption>${count(s.files.length + (s.more ?? 0), "file", "files")} changed, ${count(s.added, "line", "lines")} added, ${count(
    s.removed,
    "line",
    "lines",
  )} removed</caption>
<thead><tr><th scope="col">File</th><th scope="col">Added</th><th scope="col">Removed</th></tr></thead>
<tbody>${s.files.map((f) => html`<tr><td><code>${f.path}</code></td><td class="num">+${f.added}</td><td class="num">−${f.removed}</td></tr>`)}</tbody>
${s.more ? html`<tfoot><tr><td colspan="3">and ${count(s.more, "more file", "more files")}</td></tr></tfoot>` : ""}
</table>`;
}
