import { invalid, notFound } from "../../shared/errors.ts";
import { findWorkload, workloadDocs, type Layer, type Match, type Repo } from "../../gitops/manifests.ts";
import { getValue, type YamlDoc, type YamlPath } from "../../gitops/yaml-file.ts";

// What the workload builtins share: finding the workload from the parameters, the pod template,
// and which container an image edit is about.

export const POD_TEMPLATE: YamlPath = ["spec", "template"];
export const CONTAINERS: YamlPath = ["spec", "template", "spec", "containers"];

export function locate(
  repo: Pick<Repo, "files">,
  p: { namespace: string; deployment?: string | undefined; pod?: string | undefined },
): Match {
  return findWorkload(repo, {
    namespace: p.namespace,
    ...(p.deployment !== undefined ? { name: p.deployment } : {}),
    ...(p.pod !== undefined ? { pod: p.pod } : {}),
  });
}

export function containerNames(doc: YamlDoc): string[] {
  const list = getValue(doc, CONTAINERS);
  return Array.isArray(list)
    ? list
        .map((c) => (c && typeof c === "object" ? (c as { name?: unknown }).name : undefined))
        .filter((n): n is string => typeof n === "string")
    : [];
}

/** Index of container `name` in a workload document's pod template, or -1. */
export function containerIndex(doc: YamlDoc, name: string): number {
  return containerNames(doc).indexOf(name);
}

/**
 * The container an edit is about: the one asked for, the only one, or the one named like the
 * workload. Anything else is a question the skill has to answer with `container`.
 */
export function chooseContainer(match: Match, wanted: string | undefined): string {
  const docs = workloadDocs(match.instance);
  const base = docs[docs.length - 1];
  const names = [...new Set(docs.flatMap((l: Layer) => containerNames(l.doc)))];
  const where = base ? base.file.path : "the workload";
  if (wanted !== undefined) {
    if (!names.includes(wanted))
      throw notFound(
        "gitops.container_not_found",
        `no container ${wanted} in ${match.name} (${where} has ${names.join(", ") || "none"})`,
      );
    return wanted;
  }
  if (names.length === 1) return names[0]!;
  if (names.includes(match.name)) return match.name;
  if (names.length === 0) throw notFound("gitops.container_not_found", `${match.name} in ${where} has no containers`);
  throw invalid(
    "gitops.container_ambiguous",
    `${match.name} has several containers (${names.join(", ")}): say which one with the container parameter`,
  );
}
