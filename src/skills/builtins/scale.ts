import { z } from "zod";
import { conflict, invalid } from "../../shared/errors.ts";
import { findObjects, loadRepo, workloadDocs, type Match } from "../../gitops/manifests.ts";
import { objectMeta } from "../../gitops/kustomize.ts";
import { getValue, setValue, type YamlDoc, type YamlFile, type YamlPath } from "../../gitops/yaml-file.ts";
import { oneWorkload, oneWorkloadMessage, workloadParams } from "./params.ts";
import { noChange, parseParams, type RepoBuiltin } from "./types.ts";
import { locate } from "./workload.ts";

// More replicas, never more than `max`, never fewer than now. The count is edited where it is
// set, outermost first: an overlay's kustomize `replicas:`, a patch, the base manifest, or Helm's
// `replicaCount`. A workload an autoscaler owns is left to the autoscaler.

const Params = z
  .object({
    ...workloadParams,
    factor: z.number().gt(1, "factor must be more than 1").max(10).optional(),
    add: z.number().int().min(1).max(1000).optional(),
    max: z.number().int().min(1).max(10_000),
  })
  .strict()
  .refine(oneWorkload, oneWorkloadMessage)
  .refine((p) => (p.factor === undefined) !== (p.add === undefined), { message: "give exactly one of factor or add" });

type Target = { file: YamlFile; doc: YamlDoc; path: YamlPath; current: number; defined: boolean };

function replicasAt(doc: YamlDoc, path: YamlPath): number | undefined {
  const v = getValue(doc, path);
  if (v === undefined || v === null) return undefined;
  const n = typeof v === "string" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0)
    throw invalid("gitops.bad_replicas", `${path.join(".")} is ${JSON.stringify(v)}, not a replica count`);
  return n;
}

function findReplicas(match: Match): Target {
  const inst = match.instance;
  if (inst.source === "helm") {
    const autoscaling = inst.layers
      .map((l) => getValue(l.doc, ["autoscaling", "enabled"]))
      .find((v) => v !== undefined);
    if (autoscaling === true)
      throw conflict(
        "gitops.autoscaled",
        `${match.name}: autoscaling.enabled is true in its values, so replicaCount is not used`,
      );
    for (const l of inst.layers) {
      const n = replicasAt(l.doc, ["replicaCount"]);
      if (n !== undefined) return { file: l.file, doc: l.doc, path: ["replicaCount"], current: n, defined: true };
    }
    const first = inst.layers[0]!;
    return { file: first.file, doc: first.doc, path: ["replicaCount"], current: 1, defined: false };
  }
  if (inst.kind === "DaemonSet")
    throw invalid("gitops.not_scalable", `${match.name} is a DaemonSet: it runs one pod per node and has no replicas`);
  const docs = workloadDocs(inst);
  const baseName = objectMeta(docs[docs.length - 1]!.doc)?.name;
  for (const l of inst.layers) {
    if (l.type === "kustomization") {
      const entries = getValue(l.doc, ["replicas"]);
      const i = Array.isArray(entries)
        ? entries.findIndex(
            (e) => e && typeof e === "object" && [match.name, baseName].includes((e as { name?: string }).name),
          )
        : -1;
      const n = i === -1 ? undefined : replicasAt(l.doc, ["replicas", i, "count"]);
      if (n !== undefined)
        return { file: l.file, doc: l.doc, path: ["replicas", i, "count"], current: n, defined: true };
    } else {
      const n = replicasAt(l.doc, ["spec", "replicas"]);
      if (n !== undefined) return { file: l.file, doc: l.doc, path: ["spec", "replicas"], current: n, defined: true };
    }
  }
  // Unset means 1 (the Kubernetes default); write it on the outermost workload document.
  const outer = docs[0]!;
  return { file: outer.file, doc: outer.doc, path: ["spec", "replicas"], current: 1, defined: false };
}

export const scale: RepoBuiltin = async (workdir, params) => {
  const p = parseParams("scale", Params, params);
  const repo = await loadRepo(workdir);
  const match = locate(repo, p);
  if (match.instance.source !== "helm") {
    const hpa = findObjects(repo, { kind: "HorizontalPodAutoscaler", namespace: p.namespace }).find((m) => {
      const ref = getValue(m.instance.layers[m.instance.layers.length - 1]!.doc, ["spec", "scaleTargetRef"]) as
        | { kind?: string; name?: string }
        | undefined;
      return ref?.name === match.name && (ref.kind === undefined || ref.kind === match.instance.kind);
    });
    if (hpa)
      throw conflict(
        "gitops.autoscaled",
        `${match.name} is scaled by HorizontalPodAutoscaler ${hpa.name} (${hpa.instance.layers.at(-1)!.file.path}); change its maxReplicas instead`,
      );
  }

  const t = findReplicas(match);
  const wanted =
    p.factor !== undefined ? Math.ceil(Number((t.current * p.factor).toPrecision(12))) : t.current + p.add!;
  const next = Math.min(wanted, p.max);
  if (next <= t.current)
    throw noChange(`${p.namespace}/${match.name} already has ${t.current} replicas (max ${p.max})`);

  setValue(t.doc, t.path, next);
  const files = await repo.save();
  return {
    files,
    summary: `scale ${p.namespace}/${match.name}: replicas ${t.current} → ${next}${next < wanted ? ` (capped at ${p.max})` : ""} in ${t.file.path}`,
    details: {
      namespace: p.namespace,
      workload: match.name,
      kind: match.instance.kind,
      source: match.instance.source,
      file: t.file.path,
      path: t.path.join("."),
      from: t.current,
      to: next,
      capped: next < wanted,
      ...(t.defined ? {} : { note: "replicas were not set (Kubernetes default 1)" }),
    },
  };
};
