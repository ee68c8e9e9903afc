import { lstat, readdir, readFile, realpath, writeFile } from "node:fs/promises";
import { join, posix, relative, sep } from "node:path";
import { AppError, invalid, notFound } from "../shared/errors.ts";
import { helmInstances, isValuesFile } from "./helm.ts";
import { KUSTOMIZATION_NAMES, kustomizeInstances, objectMeta } from "./kustomize.ts";
import { isDirty, parseYamlFile, renderYamlFile, type YamlDoc, type YamlFile } from "./yaml-file.ts";

// Finding a workload (or any object) by namespace and name across a GitOps working copy: plain
// manifests (several documents per file), kustomize overlays and Helm values files. Nothing here
// talks to a cluster; edits go through yaml-file.ts and only changed files are written.

export type Repo = {
  dir: string;
  /** Every YAML file, by path relative to `dir` with forward slashes. */
  files: Map<string, YamlFile>;
  /** Writes the files that were edited; returns their paths, sorted. */
  save(): Promise<string[]>;
};

export type Layer = { type: "kustomization" | "patch" | "resource" | "values"; file: YamlFile; doc: YamlDoc };

export type Instance = {
  source: "manifest" | "kustomize" | "helm";
  /** Kubernetes kind, or "HelmValues" for values files (not Flux's HelmRelease kind). */
  kind: string;
  /** The object's name as deployed; a Helm release has several plausible ones. */
  names: string[];
  /** Set explicitly (metadata, kustomization or values key). */
  namespace?: string;
  /** From a `values-<x>.yaml` file name: may be a namespace or an environment. */
  envHint?: string;
  /** Folder names on the way, which often name the namespace when nothing else does. */
  pathHints: string[];
  /** Outermost first: overlay kustomization, its patches, …, the base resource; or values files. */
  layers: Layer[];
};

export type Match = { instance: Instance; name: string; strength: number };

export const WORKLOAD_KINDS = ["Deployment", "StatefulSet", "DaemonSet"] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

const YAML_FILE = /\.ya?ml$/;
const MAX_FILE_BYTES = 2 * 1024 * 1024;
const MAX_FILES = 20_000;

const toPosix = (p: string) => p.split(sep).join("/");

export async function loadRepo(dir: string): Promise<Repo> {
  const paths: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
      // Dot folders (.git, .github) and vendored trees hold no manifests of ours; symlinks could
      // point out of the working copy.
      if (e.name.startsWith(".") || e.name === "node_modules" || e.isSymbolicLink()) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else if (e.isFile() && (YAML_FILE.test(e.name) || KUSTOMIZATION_NAMES.has(e.name))) paths.push(r);
      if (paths.length > MAX_FILES)
        throw invalid("gitops.repo_too_large", `more than ${MAX_FILES} YAML files under ${dir}`);
    }
  };
  await walk("");
  const present = new Set(paths);
  const files = new Map<string, YamlFile>();
  for (const p of paths.sort()) {
    if (isChartTemplate(p, present)) continue;
    const st = await lstat(join(dir, p));
    if (st.size > MAX_FILE_BYTES) continue;
    files.set(p, parseYamlFile(p, await readFile(join(dir, p), "utf8")));
  }
  return { dir, files, save: () => saveFiles(dir, [...files.values()]) };
}

// Chart templates are Go templates, not YAML.
function isChartTemplate(path: string, present: Set<string>): boolean {
  const parts = path.split("/");
  for (let i = parts.length - 2; i >= 0; i--) {
    if (parts[i] === "templates" && present.has([...parts.slice(0, i), "Chart.yaml"].join("/"))) return true;
  }
  return false;
}

export async function saveFiles(dir: string, files: YamlFile[]): Promise<string[]> {
  const written: string[] = [];
  for (const f of files) {
    if (!isDirty(f)) continue;
    await writeFile(join(dir, f.path), renderYamlFile(f), "utf8");
    written.push(f.path);
  }
  return written.sort();
}

/**
 * A path from a skill (rendered from alert labels) resolved inside the working copy, refusing
 * `..`, absolute paths, `.git` and symlinks that lead out.
 */
export async function safeRepoPath(dir: string, file: string): Promise<string> {
  const norm = posix.normalize(file.replaceAll("\\", "/"));
  if (norm.startsWith("/") || norm === ".." || norm.startsWith("../") || norm.split("/").includes(".git")) {
    throw invalid("gitops.bad_path", `${JSON.stringify(file)} is not a path inside the repository`);
  }
  const root = await realpath(dir);
  let real: string;
  try {
    real = await realpath(join(dir, norm));
  } catch {
    throw notFound("gitops.file_not_found", `${norm} does not exist in the repository`);
  }
  const rel = relative(root, real);
  if (rel === "" || rel.startsWith("..") || rel.startsWith(sep) || rel.split(sep).includes(".git")) {
    throw invalid("gitops.bad_path", `${JSON.stringify(file)} is not a path inside the repository`);
  }
  return toPosix(rel);
}

export async function loadYamlFile(dir: string, file: string): Promise<YamlFile> {
  const rel = await safeRepoPath(dir, file);
  return parseYamlFile(rel, await readFile(join(dir, rel), "utf8"));
}

/** Every object the repository defines, through kustomizations, as plain files, and Helm values. */
export function listInstances(repo: Pick<Repo, "files">): Instance[] {
  const { instances, claimed } = kustomizeInstances(repo.files);
  const out = [...instances];
  for (const f of repo.files.values()) {
    const base = posix.basename(f.path);
    if (claimed.has(f.path) || KUSTOMIZATION_NAMES.has(base) || isValuesFile(f.path) || base === "Chart.yaml") continue;
    const dir = posix.dirname(f.path);
    for (const d of f.docs) {
      const meta = objectMeta(d);
      if (!meta) continue;
      out.push({
        source: "manifest",
        kind: meta.kind,
        names: [meta.name],
        ...(meta.namespace ? { namespace: meta.namespace } : {}),
        pathHints: dir === "." ? [] : dir.split("/"),
        layers: [{ type: "resource", file: f, doc: d }],
      });
    }
  }
  return [...out, ...helmInstances(repo.files)];
}

/**
 * How well `inst` is placed in namespace `ns`: 3 stated, 2 a folder of that name, 1 unknown (a
 * Helm chart, whose namespace is chosen at install), undefined when it is elsewhere.
 */
function namespaceStrength(inst: Instance, ns: string): number | undefined {
  if (inst.namespace !== undefined) return inst.namespace === ns ? 3 : undefined;
  if (inst.envHint !== undefined) return inst.envHint === ns ? 3 : undefined;
  if (inst.pathHints.includes(ns)) return 2;
  return inst.source === "helm" ? 1 : undefined;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Whether `pod` is a pod of workload `name`: <deployment>-<hash>-<id>, <statefulset>-<n>, <daemonset>-<id>. */
export function podBelongsTo(pod: string, name: string, kind: string): boolean {
  const n = escapeRegex(name);
  const patterns: Record<string, RegExp> = {
    Deployment: new RegExp(`^${n}-[a-z0-9]{5,10}-[a-z0-9]{5}$`),
    StatefulSet: new RegExp(`^${n}-\\d+$`),
    DaemonSet: new RegExp(`^${n}-[a-z0-9]{5}$`),
  };
  const p = patterns[kind];
  return p ? p.test(pod) : Object.values(patterns).some((re) => re.test(pod));
}

export const describeInstance = (i: Instance) => [...new Set(i.layers.map((l) => l.file.path))].join(" → ");

/** The best-placed instances: the highest strength, and of nested layer sets the most specific. */
function best(matches: Match[]): Match[] {
  const top = Math.max(...matches.map((m) => m.strength));
  const strongest = matches.filter((m) => m.strength === top);
  return strongest.filter(
    (m) =>
      !strongest.some(
        (o) =>
          o !== m &&
          o.instance.layers.length > m.instance.layers.length &&
          m.instance.layers.every((l) => o.instance.layers.some((x) => x.doc === l.doc)),
      ),
  );
}

export type WorkloadQuery = { namespace: string; name?: string; pod?: string };

export function findWorkload(repo: Pick<Repo, "files">, q: WorkloadQuery): Match {
  const kinds = new Set<string>(WORKLOAD_KINDS);
  const wanted = q.name ?? q.pod ?? "";
  let matches: Match[] = [];
  for (const inst of listInstances(repo)) {
    if (inst.source !== "helm" && !kinds.has(inst.kind)) continue;
    const strength = namespaceStrength(inst, q.namespace);
    if (strength === undefined) continue;
    const name = inst.names.find((n) => (q.name !== undefined ? n === q.name : podBelongsTo(wanted, n, inst.kind)));
    if (name !== undefined) matches.push({ instance: inst, name, strength });
  }
  if (q.name === undefined && matches.length) {
    // checkout-api-7d9f8b6c5-x2x9k belongs to checkout-api before checkout.
    const longest = Math.max(...matches.map((m) => m.name.length));
    matches = matches.filter((m) => m.name.length === longest);
  }
  if (matches.length === 0) {
    throw notFound(
      "gitops.workload_not_found",
      `no Deployment, StatefulSet, DaemonSet or Helm release ${q.namespace}/${wanted} in the repository (${repo.files.size} YAML files searched)`,
    );
  }
  const chosen = best(matches);
  if (chosen.length > 1) {
    throw new AppError(
      "conflict",
      "gitops.workload_ambiguous",
      `${q.namespace}/${wanted} is defined in several places: ${chosen.map((m) => describeInstance(m.instance)).join("; ")}`,
    );
  }
  return chosen[0]!;
}

/** Objects of `kind` in namespace `ns` (optionally named), best placed only. */
export function findObjects(repo: Pick<Repo, "files">, q: { kind: string; namespace: string; name?: string }): Match[] {
  const matches: Match[] = [];
  for (const inst of listInstances(repo)) {
    if (inst.kind !== q.kind || inst.source === "helm") continue;
    const strength = namespaceStrength(inst, q.namespace);
    const name = inst.names[0]!;
    if (strength !== undefined && (q.name === undefined || name === q.name))
      matches.push({ instance: inst, name, strength });
  }
  return matches.length ? best(matches) : [];
}

/** The workload document an edit of the pod template goes to: an overlay's patch before the base. */
export function workloadDocs(inst: Instance): Layer[] {
  return inst.layers.filter((l) => l.type === "patch" || l.type === "resource");
}
