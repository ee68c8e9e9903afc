import { z } from "zod";
import { AppError, invalid, notFound } from "../../shared/errors.ts";
import { describeInstance, findObjects, loadRepo, workloadDocs, type Layer } from "../../gitops/manifests.ts";
import { parseQuantity, quantityMode, scaleQuantity } from "../../gitops/quantity.ts";
import { getValue, setValue } from "../../gitops/yaml-file.ts";
import { Namespace, ObjectName } from "./params.ts";
import { noChange, parseParams, type RepoBuiltin } from "./types.ts";

// Raise a ResourceQuota's `spec.hard` entries by `factor`, in the units the file uses. The cap is
// `max_factor` × the value before Pitcrew first raised it, which is recorded on the quota as an
// annotation: without it every run would start from the last raise and the cap would never hold.

export const BASELINE_ANNOTATION = "pitcrew.dev/quota-baseline";

const Params = z
  .object({
    namespace: Namespace,
    resourcequota: ObjectName.optional(),
    /** Only this `spec.hard` entry (e.g. `requests.cpu`, as in the alert's `resource` label). */
    resource: z
      .string()
      .regex(/^[A-Za-z0-9][-A-Za-z0-9_./]*$/)
      .optional(),
    factor: z.number().gt(1, "factor must be more than 1").max(10),
    max_factor: z.number().min(1).max(100).default(2),
  })
  .strict();

type Entry = { key: string; from: string | number; to: string | number; capped: boolean; file: string };

function readBaseline(layer: Layer): Record<string, string | number> {
  const raw = getValue(layer.doc, ["metadata", "annotations", BASELINE_ANNOTATION]);
  if (typeof raw !== "string") return {};
  try {
    const v = JSON.parse(raw) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, string | number>) : {};
  } catch {
    return {};
  }
}

export const quota: RepoBuiltin = async (workdir, params) => {
  const p = parseParams("quota", Params, params);
  const repo = await loadRepo(workdir);
  const found = findObjects(repo, {
    kind: "ResourceQuota",
    namespace: p.namespace,
    ...(p.resourcequota ? { name: p.resourcequota } : {}),
  });
  const label = `${p.namespace}/${p.resourcequota ?? "*"}`;
  if (found.length === 0)
    throw notFound(
      "gitops.quota_not_found",
      `no ResourceQuota ${label} in the repository (${repo.files.size} YAML files searched)`,
    );
  if (found.length > 1) {
    const list = found.map((m) => `${m.name} (${describeInstance(m.instance)})`).join("; ");
    if (p.resourcequota)
      throw new AppError(
        "conflict",
        "gitops.workload_ambiguous",
        `ResourceQuota ${label} is defined in several places: ${list}`,
      );
    throw invalid(
      "gitops.quota_ambiguous",
      `namespace ${p.namespace} has several ResourceQuotas (${list}): say which with resourcequota`,
    );
  }
  const match = found[0]!;
  const docs = workloadDocs(match.instance);

  // Each entry is edited where it is set, outermost first (an overlay's patch before the base).
  const keys = [
    ...new Set(
      docs.flatMap((l) =>
        Object.keys((getValue(l.doc, ["spec", "hard"]) as Record<string, unknown> | undefined) ?? {}),
      ),
    ),
  ];
  if (p.resource !== undefined && !keys.includes(p.resource))
    throw notFound(
      "gitops.quota_resource_not_found",
      `ResourceQuota ${match.name} has no spec.hard.${p.resource} (it has ${keys.join(", ") || "nothing"})`,
    );

  const entries: Entry[] = [];
  const skipped: string[] = [];
  const baselines = new Map<Layer, Record<string, string | number>>();
  for (const key of p.resource !== undefined ? [p.resource] : keys) {
    const layer = docs.find((l) => getValue(l.doc, ["spec", "hard", key]) !== undefined)!;
    const current = getValue(layer.doc, ["spec", "hard", key]);
    const stored = baselines.get(layer) ?? readBaseline(layer);
    baselines.set(layer, stored);
    const baseline = parseQuantity(stored[key]) ? stored[key] : current;
    const base = parseQuantity(baseline);
    const scaled = base
      ? scaleQuantity(current, p.factor, {
          mode: quantityMode(key, current),
          cap: base.base * p.max_factor,
          capLike: baseline,
        })
      : undefined;
    if (!scaled) {
      skipped.push(`${key}: ${JSON.stringify(current)} is not a quantity`);
      continue;
    }
    if (!scaled.changed) {
      skipped.push(`${key}: ${current} is at its cap (${p.max_factor} × ${baseline})`);
      continue;
    }
    setValue(layer.doc, ["spec", "hard", key], scaled.value);
    if (stored[key] === undefined) stored[key] = current as string | number;
    entries.push({
      key,
      from: current as string | number,
      to: scaled.value,
      capped: scaled.capped,
      file: layer.file.path,
    });
  }
  if (entries.length === 0)
    throw noChange(`ResourceQuota ${p.namespace}/${match.name}: nothing to raise (${skipped.join("; ")})`);

  for (const [layer, stored] of baselines) {
    if (!entries.some((e) => e.file === layer.file.path)) continue;
    const json = JSON.stringify(stored);
    if (getValue(layer.doc, ["metadata", "annotations", BASELINE_ANNOTATION]) !== json)
      setValue(layer.doc, ["metadata", "annotations", BASELINE_ANNOTATION], json);
  }
  const files = await repo.save();
  const untouched = p.resource === undefined ? [] : keys.filter((k) => k !== p.resource);
  const only =
    p.resource === undefined
      ? ""
      : `; only ${p.resource}, the resource the alert names, was raised${untouched.length ? ` (${untouched.join(", ")} unchanged)` : ""}`;
  return {
    files,
    summary: `quota ${p.namespace}/${match.name}: ${entries.map((e) => `${e.key} ${e.from} → ${e.to}${e.capped ? " (capped)" : ""}`).join(", ")} in ${[...new Set(entries.map((e) => e.file))].join(", ")}${only}`,
    details: {
      namespace: p.namespace,
      resourcequota: match.name,
      factor: p.factor,
      maxFactor: p.max_factor,
      entries,
      ...(skipped.length ? { skipped } : {}),
    },
  };
};
