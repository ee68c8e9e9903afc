import { isDeepStrictEqual } from "node:util";
import {
  Document,
  Scalar,
  YAMLMap,
  type YAMLSeq,
  isMap,
  isNode,
  isScalar,
  isSeq,
  parseAllDocuments,
  visit,
  type Node,
  type ToStringOptions,
} from "yaml";

// A YAML file edited through the `yaml` Document API, written back so that a reviewer sees only
// the change: untouched documents keep their bytes, a changed scalar is replaced in place (its
// comment, alignment and quoting stay), new keys and list items are added as lines. Every such
// text edit is checked by parsing the result against the Document; when it does not match, or
// the shape does not allow it (flow maps, deletions), that one document is re-stringified with
// the indentation style detected from the file (comments kept, alignment not).

export type YamlPath = Array<string | number>;

type Splice = { start: number; end: number; text: string; seq: number };

export type YamlDoc = {
  index: number;
  doc: Document.Parsed;
  /** The whole file's original text (ranges of nodes point into it). */
  source: string;
  /** This document's slice of the file: [start, end). The slices tile the whole file. */
  start: number;
  end: number;
  splices: Splice[];
  restructured: boolean;
};

export type YamlFile = { path: string; text: string; docs: YamlDoc[] };

export function parseYamlFile(path: string, text: string): YamlFile {
  const parsed = parseAllDocuments(text);
  const list = Array.isArray(parsed) ? parsed : [];
  const docs = list.map((doc, index) => ({
    index,
    doc,
    source: text,
    start: index === 0 ? 0 : doc.range[0],
    end: index === list.length - 1 ? text.length : list[index + 1]!.range[0],
    splices: [],
    restructured: false,
  }));
  return { path, text, docs };
}

export const hasErrors = (d: YamlDoc) => d.doc.errors.length > 0;
export const isDirty = (f: YamlFile) => f.docs.some((d) => d.restructured || d.splices.length > 0);

/** The plain JS value at `path` (undefined when absent). */
export function getValue(d: YamlDoc, path: YamlPath): unknown {
  const node = path.length === 0 ? d.doc.contents : d.doc.getIn(path, true);
  return isNode(node) ? node.toJSON() : node;
}

/** A scalar as written: `tag: 1.10` reads "1.10", not the number 1.1. */
export function getText(d: YamlDoc, path: YamlPath): string | undefined {
  const node = d.doc.getIn(path, true);
  if (!isScalar(node) || node.value === null || node.value === undefined) return undefined;
  if (node.type === "PLAIN" && typeof node.source === "string") return node.source;
  return String(node.value);
}

export const getNode = (d: YamlDoc, path: YamlPath): unknown =>
  path.length === 0 ? d.doc.contents : d.doc.getIn(path, true);

// Quote what a YAML 1.1 reader (go-yaml, so kubectl, Helm, Argo CD) would not read as a string:
// yes/no/on, timestamps, octals.
function stringifyScalar(value: unknown, type?: Scalar.Type): string {
  const s = new Scalar(value);
  if (type && !type.startsWith("BLOCK")) s.type = type;
  return new Document(s, { version: "1.1" }).toString({ lineWidth: 0 }).replace(/\n$/, "");
}

function safeNode(d: YamlDoc, value: unknown): Node {
  const node = d.doc.createNode(value) as Node;
  visit(node, {
    Scalar(_k, s) {
      if (typeof s.value === "string" && !s.type && stringifyScalar(s.value).startsWith('"')) s.type = "QUOTE_DOUBLE";
    },
  });
  return node;
}

let splices = 0;
function splice(d: YamlDoc, start: number, end: number, text: string) {
  // Ranges point into the original text: a second edit of the same scalar replaces the first.
  if (end > start) d.splices = d.splices.filter((sp) => sp.start !== start || sp.end === sp.start);
  d.splices.push({ start, end, text, seq: splices++ });
}

const column = (source: string, offset: number) => offset - source.lastIndexOf("\n", offset - 1) - 1;

function indentBlock(text: string, by: number): string {
  const pad = " ".repeat(by);
  return `${text
    .replace(/\n$/, "")
    .split("\n")
    .map((l) => (l ? pad + l : l))
    .join("\n")}\n`;
}

/** Where a new line goes after a block collection's last item, or undefined when it can't. */
function endOfBlock(d: YamlDoc, node: unknown): number | undefined {
  if (!(isMap(node) || isSeq(node)) || node.flow || !node.range || node.items.length === 0) return undefined;
  const end = node.range[1];
  return d.source[end - 1] === "\n" ? end : undefined;
}

/** Column of a block collection's items: its first key, or its first `-`. */
function itemColumn(d: YamlDoc, node: YAMLMap | YAMLSeq): number | undefined {
  if (isMap(node)) {
    const key = node.items[0]?.key;
    return isNode(key) && key.range ? column(d.source, key.range[0]) : undefined;
  }
  return node.range ? column(d.source, node.range[0]) : undefined;
}

/**
 * New keys as lines added to the deepest existing block map, so the rest of the document keeps
 * its bytes. False when the document is not shaped for that (flow maps, empty maps, created nodes).
 */
function insertKeys(d: YamlDoc, path: YamlPath, value: unknown): boolean {
  let n = path.length - 1;
  while (n > 0 && getNode(d, path.slice(0, n)) === undefined) n--;
  const parent = getNode(d, path.slice(0, n));
  const at = endOfBlock(d, parent);
  const col = at === undefined ? undefined : itemColumn(d, parent as YAMLMap);
  if (
    !isMap(parent) ||
    at === undefined ||
    col === undefined ||
    typeof path[n] !== "string" ||
    path.slice(n).some((k) => typeof k !== "string")
  )
    return false;
  const sub = new Document({});
  sub.setIn(path.slice(n), safeNode(d, value));
  splice(d, at, at, indentBlock(sub.toString(stringifyOptions(d.source)), col));
  return true;
}

/**
 * Sets the value at `path`, creating missing maps on the way. An existing single-line scalar is
 * replaced in place and new keys are added as lines; anything else re-stringifies the document.
 */
export function setValue(d: YamlDoc, path: YamlPath, value: unknown): void {
  const node = getNode(d, path);
  const scalarValue = value === null || typeof value !== "object";
  if (
    scalarValue &&
    isScalar(node) &&
    node.range &&
    !String(node.type ?? "").startsWith("BLOCK") &&
    !node.anchor &&
    !node.tag
  ) {
    const text = stringifyScalar(value, node.type);
    if (!text.includes("\n")) {
      // Keep an aligned trailing comment in its column when the value's width changes.
      const [start, end] = node.range;
      const gap = /^( {2,})#/.exec(d.source.slice(end, end + 200))?.[1]?.length;
      const width = end - start;
      if (gap !== undefined && text.length !== width)
        splice(d, start, end + gap, text + " ".repeat(Math.max(1, gap - (text.length - width))));
      else splice(d, start, end, text);
      node.value = value;
      delete node.source;
      return;
    }
  }
  const inserted = node === undefined && path.length > 0 && !d.restructured && insertKeys(d, path, value);
  // An empty `annotations:` is a null scalar; setIn can only walk through maps.
  for (let n = 1; n < path.length; n++) {
    const parent = getNode(d, path.slice(0, n));
    if (isScalar(parent) && (parent.value === null || parent.value === undefined))
      d.doc.setIn(path.slice(0, n), new YAMLMap());
  }
  if (path.length === 0) d.doc.contents = safeNode(d, value) as Document.Parsed["contents"];
  else d.doc.setIn(path, safeNode(d, value));
  if (!inserted) d.restructured = true;
}

export function deleteValue(d: YamlDoc, path: YamlPath): boolean {
  if (!d.doc.hasIn(path)) return false;
  d.doc.deleteIn(path);
  d.restructured = true;
  return true;
}

/** Appends to the sequence at `path`, creating it when absent. */
export function appendValue(d: YamlDoc, path: YamlPath, value: unknown): void {
  const node = getNode(d, path);
  if (node === undefined || node === null || (isScalar(node) && node.value === null)) {
    setValue(d, path, [value]);
    return;
  }
  if (!isSeq(node)) throw new TypeError("not a list");
  const at = d.restructured ? undefined : endOfBlock(d, node);
  const col = at === undefined ? undefined : itemColumn(d, node);
  if (at !== undefined && col !== undefined)
    splice(d, at, at, indentBlock(new Document([safeNode(d, value)]).toString(stringifyOptions(d.source)), col));
  else d.restructured = true;
  node.add(safeNode(d, value));
}

export function renderYamlFile(f: YamlFile): string {
  if (!isDirty(f)) return f.text;
  return f.docs.map((d) => renderDoc(f.text, d)).join("");
}

function renderDoc(text: string, d: YamlDoc): string {
  const slice = text.slice(d.start, d.end);
  if (d.restructured) {
    const trailing = /\n*$/.exec(slice)![0];
    return d.doc.toString(stringifyOptions(slice)).replace(/\n*$/, "") + trailing;
  }
  let out = slice;
  for (const s of [...d.splices].sort((a, b) => b.start - a.start || b.seq - a.seq)) {
    out = out.slice(0, s.start - d.start) + s.text + out.slice(s.end - d.start);
  }
  // The edits in place must mean what the Document API edit means; if not, stringify it whole.
  const check = parseAllDocuments(out);
  const same =
    Array.isArray(check) &&
    check.length === 1 &&
    check[0]!.errors.length === 0 &&
    isDeepStrictEqual(check[0]!.toJS(), d.doc.toJS());
  return same ? out : renderDoc(text, { ...d, restructured: true });
}

/** The indentation style of the original text, so a re-stringified document looks the same. */
export function stringifyOptions(source: string): ToStringOptions {
  const lines = source.split("\n").filter((l) => l.trim() !== "" && !l.trimStart().startsWith("#"));
  let indent = 0;
  let indentSeq: boolean | undefined;
  for (let i = 1; i < lines.length; i++) {
    const prev = lines[i - 1]!;
    const line = lines[i]!;
    const prevIndent = prev.length - prev.trimStart().length;
    const lineIndent = line.length - line.trimStart().length;
    const opensBlock = /:\s*(#.*)?$/.test(prev) && !prev.trimStart().startsWith("- ");
    if (!opensBlock) continue;
    if (line.trimStart().startsWith("- ")) {
      indentSeq ??= lineIndent > prevIndent;
      if (lineIndent > prevIndent && !indent) indent = lineIndent - prevIndent;
    } else if (lineIndent > prevIndent && !indent) {
      indent = lineIndent - prevIndent;
    }
    if (indent && indentSeq !== undefined) break;
  }
  const flowPadded = !/[{[][^\s}\]]/.test(source) || /[{[] /.test(source);
  return {
    lineWidth: 0,
    minContentWidth: 0,
    indent: indent >= 1 && indent <= 8 ? indent : 2,
    indentSeq: indentSeq ?? true,
    flowCollectionPadding: flowPadded,
  };
}
