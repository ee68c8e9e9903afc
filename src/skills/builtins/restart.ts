import { z } from "zod";
import { loadRepo, workloadDocs } from "../../gitops/manifests.ts";
import { getValue, setValue, type YamlPath } from "../../gitops/yaml-file.ts";
import { oneWorkload, oneWorkloadMessage, workloadParams } from "./params.ts";
import { noChange, parseParams, type RepoBuiltin } from "./types.ts";
import { POD_TEMPLATE, locate } from "./workload.ts";

// A rolling restart through git: a changed pod-template annotation makes the controller replace
// every pod, the same thing `kubectl rollout restart` does live. It goes on the outermost
// workload document (an overlay's patch before a shared base); for Helm, on `podAnnotations` in
// the most specific values file, which charts made with `helm create` put on the pod template.

export const RESTARTED_AT = "pitcrew.dev/restartedAt";

const Params = z.object(workloadParams).strict().refine(oneWorkload, oneWorkloadMessage);

export const restart: RepoBuiltin = async (workdir, params, ctx) => {
  const p = parseParams("restart", Params, params);
  const repo = await loadRepo(workdir);
  const match = locate(repo, p);
  const inst = match.instance;
  const layer = inst.source === "helm" ? inst.layers[0]! : workloadDocs(inst)[0]!;
  const path: YamlPath =
    inst.source === "helm"
      ? ["podAnnotations", RESTARTED_AT]
      : [...POD_TEMPLATE, "metadata", "annotations", RESTARTED_AT];
  const at = new Date(ctx.now()).toISOString();
  const before = getValue(layer.doc, path);
  if (before === at) throw noChange(`${p.namespace}/${match.name} was already restarted at ${at}`);

  setValue(layer.doc, path, at);
  const files = await repo.save();
  return {
    files,
    summary: `restart ${p.namespace}/${match.name}: ${RESTARTED_AT}=${at} in ${layer.file.path}`,
    details: {
      namespace: p.namespace,
      workload: match.name,
      kind: inst.kind,
      source: inst.source,
      file: layer.file.path,
      path: path.join("."),
      restartedAt: at,
      ...(typeof before === "string" ? { previous: before } : {}),
    },
  };
};
