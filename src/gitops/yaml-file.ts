import { Document, Scalar, YAMLMap, YAMLSeq, isNode, isScalar, isSeq, parseAllDocuments, visit, type Node, type ToStringOptions } from "yaml";

// A YAML file edited through the `yaml` Document API, written back so that a reviewer sees only
// the change: untouched documents keep their bytes, a changed scalar is replaced in place (its
// comment, alignment and quoting stay), and only a document whose structure changed (a new key,
// an appended item) is re-stringified, with the indentation style detected from the file.

export type YamlPath = Array<string | number>;

type Splice = { start: number; end: number; text: string };

export type YamlDoc = {
  index: number;
  doc: Document.Parsed;
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

export const getNode = (d: YamlDoc, path: YamlPath): unknown => (path.length === 0 ? d.doc.contents : d.doc.getIn(path, true));

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

/**
 * Sets the value at `path`, creating missing maps on the way. An existing single-line scalar is
 * replaced in place; anything else changes the document's structure.
 */
export function setValue(d: YamlDoc, path: YamlPath, value: unknown): void {
  const node = getNode(d, path);
  const scalarValue = value === null || typeof value !== "object";
  if (scalarValue && isScalar(node) && node.range && !String(node.type ?? "").startsWith("BLOCK") && !node.anchor && !node.tag) {
    const text = stringifyScalar(value, node.type);
    if (!text.includes("\n")) {
      // Ranges point into the original text: a second edit of the same scalar replaces the first.
      d.splices = d.splices.filter((sp) => sp.start !== node.range![0]);
      d.splices.push({ start: node.range[0], end: node.range[1], text });
      node.value = value;
      delete node.source;
      return;
    }
  }
  // An empty `annotations:` is a null scalar; setIn can only walk through maps.
  for (let n = 1; n < path.length; n++) {
    const parent = getNode(d, path.slice(0, n));
    if (isScalar(parent) && (parent.value === null || parent.value === undefined)) d.doc.setIn(path.slice(0, n), new YAMLMap());
  }
  if (path.length === 0) d.doc.contents = safeNode(d, value) as Document.Parsed["contents"];
  else d.doc.setIn(path, safeNode(d, value));
  d.restructured = true;
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
    d.doc.setIn(path, new YAMLSeq());
  } else if (!isSeq(node)) {
    throw new TypeError("not a list");
  }
  (getNode(d, path) as YAMLSeq).add(safeNode(d, value));
  d.restructured = true;
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
  for (const s of [...d.splices].sort((a, b) => b.start - a.start)) {
    out = out.slice(0, s.start - d.start) + s.text + out.slice(s.end - d.start);
  }
  return out;
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
  return { lineWidth: 0, minContentWidth: 0, indent: indent >= 1 && indent <= 8 ? indent : 2, indentSeq: indentSeq ?? true, flowCollectionPadding: flowPadded };
}
