import { posix } from "node:path";
import { getValue, hasErrors, type YamlDoc, type YamlFile } from "./yaml-file.ts";
import type { Instance, Layer } from "./manifests.ts";

// Kustomize as far as finding and editing a workload needs: `resources:` (files and directories,
// recursively), `namespace:`, `namePrefix:`/`nameSuffix:`, and strategic-merge patch files. Each
// resource found through an overlay carries its layers, outermost first, so an edit can go to the
// overlay that sets a field (its `images:`, `replicas:` or a patch) rather than to a shared base.

export const KUSTOMIZATION_NAMES = new Set(["kustomization.yaml", "kustomization.yml", "Kustomization"]);

type Found = { kind: string; name: string; namespace?: string; pathHints: string[]; layers: Layer[] };

const dirOf = (p: string) => posix.dirname(p);
const segments = (dir: string) => (dir === "." ? [] : dir.split("/"));
const isRemote = (r: string) =>
  /^[a-z][a-z0-9+.-]*:\/\//i.test(r) || r.startsWith("github.com/") || r.startsWith("git@");

function resolveRef(dir: string, ref: string): string | undefined {
  if (isRemote(ref)) return undefined;
  const p = posix.normalize(posix.join(dir, ref)).replace(/\/$/, "");
  return p === ".." || p.startsWith("../") ? undefined : p;
}

function strings(d: YamlDoc, key: string): string[] {
  const v = getValue(d, [key]);
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

/** `kind` + `metadata.name` + `metadata.namespace` of a document that is a Kubernetes object. */
export function objectMeta(d: YamlDoc): { kind: string; name: string; namespace?: string } | undefined {
  if (hasErrors(d)) return undefined;
  const kind = getValue(d, ["kind"]);
  const name = getValue(d, ["metadata", "name"]);
  const namespace = getValue(d, ["metadata", "namespace"]);
  if (typeof kind !== "string" || typeof name !== "string") return undefined;
  return { kind, name, ...(typeof namespace === "string" && namespace ? { namespace } : {}) };
}

type PatchRef = { path: string; target?: { kind?: string; name?: string } };

function patchRefs(d: YamlDoc): PatchRef[] {
  const refs: PatchRef[] = strings(d, "patchesStrategicMerge")
    .filter((s) => !s.includes("\n"))
    .map((path) => ({ path }));
  const patches = getValue(d, ["patches"]);
  for (const p of Array.isArray(patches) ? patches : []) {
    if (typeof p === "string") refs.push({ path: p });
    else if (p && typeof p === "object" && typeof (p as { path?: unknown }).path === "string") {
      const t = (p as { target?: { kind?: unknown; name?: unknown } }).target;
      const target =
        t && typeof t === "object"
          ? {
              ...(typeof t.kind === "string" ? { kind: t.kind } : {}),
              ...(typeof t.name === "string" ? { name: t.name } : {}),
            }
          : undefined;
      refs.push({ path: (p as { path: string }).path, ...(target ? { target } : {}) });
    }
  }
  return refs;
}

/**
 * Every object reachable from a root kustomization (one no other kustomization includes), and
 * the set of files those kustomizations claim, which are then not read as standalone manifests.
 */
export function kustomizeInstances(files: Map<string, YamlFile>): { instances: Instance[]; claimed: Set<string> } {
  const byDir = new Map<string, YamlFile>();
  for (const f of files.values()) {
    if (KUSTOMIZATION_NAMES.has(posix.basename(f.path)) && f.docs[0] && !hasErrors(f.docs[0]))
      byDir.set(dirOf(f.path), f);
  }
  const claimed = new Set<string>();
  const included = new Set<string>();
  for (const [dir, k] of byDir) {
    for (const r of [
      ...strings(k.docs[0]!, "resources"),
      ...strings(k.docs[0]!, "bases"),
      ...strings(k.docs[0]!, "components"),
    ]) {
      const p = resolveRef(dir, r);
      if (p !== undefined && byDir.has(p)) included.add(p);
    }
  }

  const expand = (dir: string, stack: string[]): Found[] => {
    const k = byDir.get(dir)!;
    const kd = k.docs[0]!;
    claimed.add(k.path);
    const found: Found[] = [];
    for (const r of [...strings(kd, "resources"), ...strings(kd, "bases"), ...strings(kd, "components")]) {
      const p = resolveRef(dir, r);
      if (p === undefined) continue;
      if (byDir.has(p)) {
        if (!stack.includes(p)) found.push(...expand(p, [...stack, p]));
        continue;
      }
      const file = files.get(p);
      if (!file) continue;
      claimed.add(file.path);
      for (const d of file.docs) {
        const meta = objectMeta(d);
        if (meta)
          found.push({ ...meta, pathHints: segments(dirOf(file.path)), layers: [{ type: "resource", file, doc: d }] });
      }
    }

    const patches: Array<{ layer: Layer; kind: string; name?: string }> = [];
    for (const ref of patchRefs(kd)) {
      const p = resolveRef(dir, ref.path);
      const file = p === undefined ? undefined : files.get(p);
      if (!file) continue;
      claimed.add(file.path);
      for (const d of file.docs) {
        const meta = objectMeta(d);
        const kind = ref.target?.kind ?? meta?.kind;
        const name = ref.target?.name ?? meta?.name;
        const body = hasErrors(d) ? undefined : getValue(d, []);
        // A JSON 6902 patch is a list of operations: not something a field can be read from.
        if (kind && body && typeof body === "object" && !Array.isArray(body)) {
          patches.push({ layer: { type: "patch", file, doc: d }, kind, ...(name ? { name } : {}) });
        }
      }
    }

    const namespace = getValue(kd, ["namespace"]);
    const prefix = getValue(kd, ["namePrefix"]);
    const suffix = getValue(kd, ["nameSuffix"]);
    const layer: Layer = { type: "kustomization", file: k, doc: kd };
    return found.map((f) => ({
      kind: f.kind,
      name: `${typeof prefix === "string" ? prefix : ""}${f.name}${typeof suffix === "string" ? suffix : ""}`,
      ...(typeof namespace === "string" && namespace ? { namespace } : f.namespace ? { namespace: f.namespace } : {}),
      pathHints: [...segments(dir), ...f.pathHints],
      layers: [
        layer,
        ...patches.filter((p) => p.kind === f.kind && (p.name === undefined || p.name === f.name)).map((p) => p.layer),
        ...f.layers,
      ],
    }));
  };

  const instances: Instance[] = [];
  for (const dir of [...byDir.keys()].sort()) {
    if (included.has(dir)) continue;
    for (const f of expand(dir, [dir])) {
      instances.push({
        source: "kustomize",
        kind: f.kind,
        names: [f.name],
        ...(f.namespace ? { namespace: f.namespace } : {}),
        pathHints: f.pathHints,
        layers: f.layers,
      });
    }
  }
  return { instances, claimed };
}
