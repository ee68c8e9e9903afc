import { posix } from "node:path";
import { getValue, hasErrors, type YamlFile } from "./yaml-file.ts";
import type { Instance, Layer } from "./manifests.ts";

// Helm values files (`values.yaml`, `values-<env>.yaml`) of a chart folder or of a release folder.
// A release is named after its folder, the chart's name or `fullnameOverride`/`nameOverride`. The
// namespace comes from a `namespace`/`namespaceOverride` key, a `values-<namespace>.yaml` file
// name, or a folder named like it; a chart that says nothing about it matches any namespace, at
// the lowest rank. Layers are the specific file first, then the folder's `values.yaml`: Helm gives
// the later `-f` file precedence, so that is the order to read a field in.

const VALUES_FILE = /^values(?:[-.]([A-Za-z0-9_.-]+?))?\.ya?ml$/;

function namespaceKey(f: YamlFile): string | undefined {
  const d = f.docs[0];
  if (!d || hasErrors(d)) return undefined;
  for (const path of [["namespaceOverride"], ["namespace"], ["global", "namespace"]]) {
    const v = getValue(d, path);
    if (typeof v === "string" && v) return v;
  }
  return undefined;
}

function looksLikeWorkload(f: YamlFile): boolean {
  const d = f.docs[0];
  if (!d || hasErrors(d)) return false;
  const image = getValue(d, ["image"]);
  return (!!image && typeof image === "object") || typeof getValue(d, ["replicaCount"]) === "number";
}

export function isValuesFile(path: string): boolean {
  return VALUES_FILE.test(posix.basename(path));
}

export function helmInstances(files: Map<string, YamlFile>): Instance[] {
  const byDir = new Map<string, YamlFile[]>();
  for (const f of files.values()) {
    if (!isValuesFile(f.path) || f.docs.length !== 1) continue;
    const dir = posix.dirname(f.path);
    byDir.set(dir, [...(byDir.get(dir) ?? []), f]);
  }

  const instances: Instance[] = [];
  for (const [dir, group] of [...byDir].sort(([a], [b]) => a.localeCompare(b))) {
    if (!group.some(looksLikeWorkload)) continue;
    const base = group.find((f) => /^values\.ya?ml$/.test(posix.basename(f.path)));
    const chart = files.get(dir === "." ? "Chart.yaml" : `${dir}/Chart.yaml`);
    const chartName = chart?.docs[0] ? getValue(chart.docs[0], ["name"]) : undefined;
    const names = new Set<string>();
    if (dir !== ".") names.add(posix.basename(dir));
    if (typeof chartName === "string") names.add(chartName);
    for (const f of group) {
      for (const key of ["fullnameOverride", "nameOverride"]) {
        const v = f.docs[0] && !hasErrors(f.docs[0]) ? getValue(f.docs[0], [key]) : undefined;
        if (typeof v === "string" && v) names.add(v);
      }
    }
    const pathHints = dir === "." ? [] : dir.split("/");
    for (const f of group.sort((a, b) => a.path.localeCompare(b.path))) {
      const layers: Layer[] = [{ type: "values", file: f, doc: f.docs[0]! }];
      if (base && f !== base) layers.push({ type: "values", file: base, doc: base.docs[0]! });
      const env = f === base ? undefined : VALUES_FILE.exec(posix.basename(f.path))?.[1];
      // values-<env>.yaml speaks for itself; the folder's namespace key only for values.yaml alone.
      const namespace = namespaceKey(f) ?? (env === undefined && base ? namespaceKey(base) : undefined);
      instances.push({
        source: "helm",
        kind: "HelmValues",
        names: [...names],
        ...(namespace ? { namespace } : {}),
        ...(env ? { envHint: env } : {}),
        pathHints,
        layers,
      });
    }
  }
  return instances;
}
