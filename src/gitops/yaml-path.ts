import { isMap, isScalar, isSeq, type YAMLMap } from "yaml";
import { invalid } from "../shared/errors.ts";
import { getNode, type YamlDoc, type YamlPath } from "./yaml-file.ts";

// Dotted paths for declarative patches: `spec.template.spec.containers[name=api].resources.limits.cpu`.
// `[n]` indexes a list, `[key=value]` selects the list item whose `key` equals `value`, and
// `["a.b/c"]` is a map key that contains dots or slashes (annotation names).

export type PathSegment = { key: string } | { index: number } | { match: { key: string; value: string } };

function unquote(s: string): string {
  const t = s.trim();
  if (t.length >= 2 && (t[0] === '"' || t[0] === "'") && t[t.length - 1] === t[0]) return t.slice(1, -1);
  return t;
}

export function parseYamlPath(path: string): PathSegment[] {
  const bad = (why: string) => invalid("patch.bad_path", `bad path ${JSON.stringify(path)}: ${why}`);
  const segs: PathSegment[] = [];
  let i = 0;
  let expectKey = true;
  while (i < path.length) {
    const c = path[i]!;
    if (c === "[") {
      const close = findClose(path, i);
      if (close === -1) throw bad("unclosed [");
      const inner = path.slice(i + 1, close);
      const quoted = /^\s*(["']).*\1\s*$/.test(inner);
      const eq = quoted ? -1 : inner.indexOf("=");
      if (quoted) segs.push({ key: unquote(inner) });
      else if (/^\s*\d+\s*$/.test(inner)) segs.push({ index: Number(inner) });
      else if (eq > 0 && inner.slice(0, eq).trim() !== "")
        segs.push({ match: { key: inner.slice(0, eq).trim(), value: unquote(inner.slice(eq + 1)) } });
      else throw bad(`[${inner}] is neither an index, a key=value selector nor a quoted key`);
      i = close + 1;
      expectKey = false;
    } else if (c === ".") {
      if (expectKey) throw bad("empty segment");
      i++;
      expectKey = true;
      if (i === path.length) throw bad("ends with a dot");
    } else {
      if (!expectKey) throw bad(`expected . or [ at offset ${i}`);
      let j = i;
      while (j < path.length && path[j] !== "." && path[j] !== "[") j++;
      if (path.slice(i, j).includes("]")) throw bad("unexpected ]");
      segs.push({ key: path.slice(i, j) });
      i = j;
      expectKey = false;
    }
  }
  if (segs.length === 0) throw bad("empty");
  return segs;
}

function findClose(path: string, open: number): number {
  let quote: string | undefined;
  for (let i = open + 1; i < path.length; i++) {
    const c = path[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "]") return i;
  }
  return -1;
}

export function formatYamlPath(segs: PathSegment[]): string {
  return segs
    .map((s, n) =>
      "index" in s
        ? `[${s.index}]`
        : "match" in s
          ? `[${s.match.key}=${s.match.value}]`
          : /[.[\]]/.test(s.key)
            ? `[${JSON.stringify(s.key)}]`
            : `${n ? "." : ""}${s.key}`,
    )
    .join("");
}

const keyText = (k: unknown) => String(isScalar(k) ? k.value : k);

export type Resolution = {
  /** The concrete path of the segments that exist. */
  path: YamlPath;
  /** How many segments exist in this document. */
  resolved: number;
  complete: boolean;
  /** The full path with the missing tail, when that tail is plain keys (so it can be created). */
  creatable?: YamlPath;
};

export function resolveYamlPath(d: YamlDoc, segs: PathSegment[]): Resolution {
  const path: YamlPath = [];
  let node: unknown = getNode(d, []);
  let n = 0;
  for (; n < segs.length; n++) {
    const seg = segs[n]!;
    let next: { step: string | number; node: unknown } | undefined;
    if ("key" in seg && isMap(node)) {
      const pair = (node as YAMLMap).items.find((p) => keyText(p.key) === seg.key);
      if (pair) next = { step: isScalar(pair.key) ? (pair.key.value as string) : seg.key, node: pair.value };
    } else if ("index" in seg && isSeq(node)) {
      if (seg.index < node.items.length) next = { step: seg.index, node: node.items[seg.index] };
    } else if ("match" in seg && isSeq(node)) {
      const idx = node.items.findIndex(
        (it) =>
          isMap(it) &&
          it.items.some(
            (p) => keyText(p.key) === seg.match.key && isScalar(p.value) && String(p.value.value) === seg.match.value,
          ),
      );
      if (idx !== -1) next = { step: idx, node: node.items[idx] };
    }
    if (!next) break;
    path.push(next.step);
    node = next.node;
  }
  const complete = n === segs.length;
  const rest = segs.slice(n);
  const creatable =
    rest.every((s) => "key" in s) &&
    (isMap(node) || node === null || node === undefined || (isScalar(node) && node.value === null))
      ? [...path, ...rest.map((s) => (s as { key: string }).key)]
      : undefined;
  return { path, resolved: n, complete, creatable };
}
