import { isDeepStrictEqual } from "node:util";
import { isScalar, isSeq } from "yaml";
import { invalid, notFound } from "../shared/errors.ts";
import { loadYamlFile, saveFiles } from "../gitops/manifests.ts";
import { parseQuantity, quantityMode, scaleQuantity } from "../gitops/quantity.ts";
import {
  appendValue,
  getNode,
  getValue,
  hasErrors,
  setValue,
  type YamlDoc,
  type YamlFile,
} from "../gitops/yaml-file.ts";
import {
  formatYamlPath,
  parseYamlPath,
  resolveYamlPath,
  type PathSegment,
  type Resolution,
} from "../gitops/yaml-path.ts";
import { noChange, type RepoChange } from "./builtins/types.ts";

// The declarative `patch` action: edits of one YAML file each, by path, for skills with no code.
// In a file of several documents an op applies to the first document where its path exists; a
// `set` or `append` whose path does not exist yet goes to the document where most of it does.
// Re-running a patch is safe: a `set` to the same value or an `append` of an item already in
// the list changes nothing, and a `multiply` already at `max` stays there.

/** One op as the skill states it, templates already rendered. `max` is a quantity (8, "4Gi"). */
export type PatchEdit = {
  file: string;
  path: string;
  set?: unknown;
  multiply?: number;
  append?: unknown;
  max?: number | string;
};

type OpResult = {
  file: string;
  path: string;
  doc: number;
  op: "set" | "multiply" | "append";
  from: unknown;
  to: unknown;
  changed: boolean;
  capped?: boolean;
};

function chooseDoc(
  file: YamlFile,
  segs: PathSegment[],
  create: boolean,
): { doc: YamlDoc; res: Resolution } | undefined {
  const candidates = file.docs.filter((d) => !hasErrors(d)).map((doc) => ({ doc, res: resolveYamlPath(doc, segs) }));
  const full = candidates.find((c) => c.res.complete);
  if (full || !create) return full;
  let best: { doc: YamlDoc; res: Resolution } | undefined;
  for (const c of candidates) {
    if (
      c.res.creatable &&
      (c.res.resolved > 0 || candidates.length === 1) &&
      (!best || c.res.resolved > best.res.resolved)
    )
      best = c;
  }
  return best;
}

function opKind(op: PatchEdit): "set" | "multiply" | "append" {
  const given = (["set", "multiply", "append"] as const).filter((k) => op[k] !== undefined);
  if (given.length !== 1)
    throw invalid("patch.bad_op", `${op.file} ${op.path}: give exactly one of set, multiply, append`);
  return given[0]!;
}

function applyOp(file: YamlFile, op: PatchEdit): OpResult {
  const kind = opKind(op);
  const segs = parseYamlPath(op.path);
  const target = chooseDoc(file, segs, kind !== "multiply");
  if (!target)
    throw notFound(
      "patch.path_not_found",
      `${formatYamlPath(segs)} is not in ${file.path}${kind === "multiply" ? "" : " and cannot be created there"}`,
    );
  const { doc, res } = target;
  const path = res.complete ? res.path : res.creatable!;
  const base = { file: file.path, path: op.path, doc: doc.index, op: kind };

  if (kind === "multiply") {
    const node = getNode(doc, path);
    const last = segs[segs.length - 1]!;
    const from = isScalar(node) ? node.value : undefined;
    const cap = op.max === undefined ? undefined : parseQuantity(op.max)?.base;
    if (op.max !== undefined && cap === undefined)
      throw invalid("patch.bad_max", `${op.path}: max ${JSON.stringify(op.max)} is not a quantity`);
    if (!(op.multiply! > 0)) throw invalid("patch.bad_op", `${op.path}: multiply must be a positive number`);
    const scaled = scaleQuantity(from, op.multiply!, {
      mode: quantityMode("key" in last ? last.key : "", from),
      ...(cap !== undefined ? { cap } : {}),
    });
    if (!scaled)
      throw invalid(
        "patch.not_a_quantity",
        `${op.path} in ${file.path} is ${JSON.stringify(from ?? getValue(doc, path))}: not a number or quantity`,
      );
    if (scaled.changed) setValue(doc, path, scaled.value);
    return { ...base, from, to: scaled.value, changed: scaled.changed, capped: scaled.capped };
  }

  const from = res.complete ? getValue(doc, path) : undefined;
  if (kind === "set") {
    const changed = !isDeepStrictEqual(from, op.set);
    if (changed) setValue(doc, path, op.set);
    return { ...base, from, to: op.set, changed };
  }
  const node = res.complete ? getNode(doc, path) : undefined;
  const isEmpty = node === undefined || node === null || (isScalar(node) && node.value === null);
  if (!isEmpty && !isSeq(node))
    throw invalid("patch.not_a_list", `${op.path} in ${file.path} is not a list: cannot append to it`);
  const list = Array.isArray(from) ? from : [];
  const changed = !list.some((item) => isDeepStrictEqual(item, op.append));
  if (changed) appendValue(doc, path, op.append);
  return { ...base, from, to: changed ? [...list, op.append] : list, changed };
}

const show = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

export async function applyPatch(workdir: string, ops: PatchEdit[]): Promise<RepoChange> {
  if (ops.length === 0) throw invalid("patch.bad_op", "a patch needs at least one op");
  const files = new Map<string, YamlFile>();
  const results: OpResult[] = [];
  for (const op of ops) {
    let file = [...files.values()].find((f) => f.path === op.file);
    if (!file) {
      file = await loadYamlFile(workdir, op.file);
      file = files.get(file.path) ?? file;
      files.set(file.path, file);
    }
    if (file.docs.length === 0) throw notFound("patch.path_not_found", `${file.path} is empty`);
    if (file.docs.every(hasErrors))
      throw invalid("patch.bad_yaml", `${file.path} is not valid YAML: ${file.docs[0]!.doc.errors[0]!.message}`);
    results.push(applyOp(file, op));
  }
  const changed = results.filter((r) => r.changed);
  if (changed.length === 0)
    throw noChange(
      `patch: nothing to change (${results.map((r) => `${r.file} ${r.path} is ${show(r.from)}${r.capped ? " (at max)" : ""}`).join("; ")})`,
    );
  const written = await saveFiles(workdir, [...files.values()]);
  return {
    files: written,
    summary: `patch: ${changed.map((r) => `${r.file} ${r.path} ${r.op === "append" ? `+ ${show((r.to as unknown[]).at(-1))}` : `${show(r.from)} → ${show(r.to)}`}${r.capped ? " (capped)" : ""}`).join(", ")}`,
    details: { ops: results },
  };
}
