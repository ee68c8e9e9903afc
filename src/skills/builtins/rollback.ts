import { z } from "zod";
import { AppError, notFound } from "../../shared/errors.ts";
import { fileHistory, showFile, type FileCommit } from "../../gitops/git.ts";
import { imageVersion, parseImage } from "../../gitops/image.ts";
import { loadRepo, workloadDocs, type Match } from "../../gitops/manifests.ts";
import { objectMeta } from "../../gitops/kustomize.ts";
import {
  deleteValue,
  getText,
  getValue,
  parseYamlFile,
  setValue,
  type YamlDoc,
  type YamlFile,
  type YamlPath,
} from "../../gitops/yaml-file.ts";
import { ContainerName, oneWorkload, oneWorkloadMessage, workloadParams } from "./params.ts";
import { parseParams, type RepoBuiltin } from "./types.ts";
import { CONTAINERS, chooseContainer, containerIndex, locate } from "./workload.ts";

// Put a workload's image back to the previous version in git history. The version lives in one
// place: an overlay's kustomize `images:` entry, a container `image:` in a patch or the base
// manifest, or `image.tag` in Helm values; that file's own history says what came before.
//
// A version something already moved away from is never proposed again: one that a rollback left
// (Pitcrew's commits say so in a `Pitcrew-Rolled-Back-From:` trailer) or that a person reverted
// (a commit that put back a version older than it). Without such a version the rollback fails
// with gitops.no_safe_version, saying which versions were excluded and why.

/** Trailers of Pitcrew's commits; `ROLLED_BACK_FROM` names the version a rollback moved away from. */
export const INCIDENT_TRAILER = "Pitcrew-Incident";
export const ROLLED_BACK_FROM = "Pitcrew-Rolled-Back-From";

const Params = z
  .object({ ...workloadParams, container: ContainerName.optional() })
  .strict()
  .refine(oneWorkload, oneWorkloadMessage);

/** The fields that make up an image version where it is defined, as written. */
type Version = Record<string, string>;

type Target = {
  doc: YamlDoc;
  file: YamlFile;
  where: string;
  /** The version in any revision of the target's file; undefined when it is not there. */
  read(file: YamlFile): Version | undefined;
  write(v: Version): void;
  label(v: Version): string;
};

const HISTORY_LIMIT = 500;

function pick(d: YamlDoc, base: YamlPath, keys: string[]): Version | undefined {
  const v: Version = {};
  for (const k of keys) {
    const t = getText(d, [...base, k]);
    if (t !== undefined && t !== "") v[k] = t;
  }
  return Object.keys(v).length ? v : undefined;
}

function writeFields(d: YamlDoc, base: YamlPath, keys: string[], v: Version) {
  for (const k of keys) {
    if (v[k] !== undefined) setValue(d, [...base, k], v[k]);
    else deleteValue(d, [...base, k]);
  }
}

function kustomizeImage(doc: YamlDoc, file: YamlFile, imageName: string): Target | undefined {
  const index = (d: YamlDoc) => {
    const images = getValue(d, ["images"]);
    return Array.isArray(images)
      ? images.findIndex((i) => i && typeof i === "object" && (i as { name?: unknown }).name === imageName)
      : -1;
  };
  const i = index(doc);
  if (i === -1) return undefined;
  const keys = ["newName", "newTag", "digest"];
  return {
    doc,
    file,
    where: `images[name=${imageName}] in ${file.path}`,
    read: (f) => {
      const d = f.docs[0];
      const j = d ? index(d) : -1;
      return d && j !== -1 ? pick(d, ["images", j], keys) : undefined;
    },
    write: (v) => writeFields(doc, ["images", i], keys, v),
    label: (v) => v.newTag ?? v.digest ?? v.newName ?? "(none)",
  };
}

function containerImage(doc: YamlDoc, file: YamlFile, container: string): Target | undefined {
  const meta = objectMeta(doc);
  const i = containerIndex(doc, container);
  if (!meta || i === -1 || getText(doc, [...CONTAINERS, i, "image"]) === undefined) return undefined;
  const sameObject = (d: YamlDoc) => {
    const m = objectMeta(d);
    return m && m.kind === meta.kind && m.name === meta.name && m.namespace === meta.namespace;
  };
  return {
    doc,
    file,
    where: `container ${container} of ${meta.kind} ${meta.name} in ${file.path}`,
    read: (f) => {
      const d = f.docs.find(sameObject);
      const j = d ? containerIndex(d, container) : -1;
      const image = d && j !== -1 ? getText(d, [...CONTAINERS, j, "image"]) : undefined;
      return image ? { image } : undefined;
    },
    write: (v) => setValue(doc, [...CONTAINERS, i, "image"], v.image!),
    label: (v) => imageVersion(parseImage(v.image ?? "")),
  };
}

function helmImage(doc: YamlDoc, file: YamlFile, base: YamlPath): Target | undefined {
  if (getText(doc, [...base, "tag"]) === undefined) return undefined;
  const keys = ["tag", "digest"];
  return {
    doc,
    file,
    where: `${[...base, "tag"].join(".")} in ${file.path}`,
    read: (f) => (f.docs[0] ? pick(f.docs[0], base, keys) : undefined),
    write: (v) => writeFields(doc, base, keys, v),
    label: (v) => v.tag ?? v.digest ?? "(none)",
  };
}

/** Where this workload's image version is defined: the outermost layer that sets it. */
function findTarget(match: Match, wanted: string | undefined): { target: Target; container: string } {
  const inst = match.instance;
  if (inst.source === "helm") {
    for (const layer of inst.layers) {
      const base: YamlPath =
        wanted !== undefined && getValue(layer.doc, [wanted, "image"]) ? [wanted, "image"] : ["image"];
      const target = helmImage(layer.doc, layer.file, base);
      if (target) return { target, container: wanted ?? match.name };
    }
    throw notFound(
      "gitops.image_not_found",
      `no image.tag in ${inst.layers.map((l) => l.file.path).join(", ")}: the chart's appVersion decides the image, and git has nothing to roll back`,
    );
  }
  const container = chooseContainer(match, wanted);
  const docs = workloadDocs(inst);
  const defining = docs.find((l) => containerImage(l.doc, l.file, container));
  const image = defining
    ? getText(defining.doc, [...CONTAINERS, containerIndex(defining.doc, container), "image"])
    : undefined;
  if (!image) throw notFound("gitops.image_not_found", `container ${container} of ${match.name} has no image`);
  const imageName = parseImage(image).name;
  for (const layer of inst.layers) {
    const target =
      layer.type === "kustomization"
        ? kustomizeImage(layer.doc, layer.file, imageName)
        : containerImage(layer.doc, layer.file, container);
    if (target) return { target, container };
  }
  throw notFound("gitops.image_not_found", `container ${container} of ${match.name} has no image`);
}

/** A version that history moved away from, and the commit that did. */
type Excluded = { label: string; key: string; commit: FileCommit; how: "rollback" | "revert"; incident?: string };

/** The file's version at each commit of its history (newest first); undefined where the target is absent. */
async function versionsOf(workdir: string, target: Target, history: FileCommit[]): Promise<Array<Version | undefined>> {
  const versions: Array<Version | undefined> = [];
  for (const commit of history) {
    const text = await showFile(workdir, commit.commit, commit.path);
    versions.push(text === undefined ? undefined : target.read(parseYamlFile(commit.path, text)));
  }
  return versions;
}

/**
 * Versions that a commit moved away from: with a `Pitcrew-Rolled-Back-From` trailer naming the
 * version it replaced, or by going back to an older version (a revert, by anyone). A version's age
 * is when it first appeared, except that one a rollback brought in is older than the version it
 * replaced. Deploying a newer version again, even one that was reverted once, moves away from
 * nothing.
 */
export function excludedVersions(
  history: FileCommit[],
  versions: Array<Version | undefined>,
  label: (v: Version) => string,
): Map<string, Excluded> {
  const excluded = new Map<string, Excluded>();
  /** Version → its age: lower is older. */
  const age = new Map<string, number>();
  let next = 0;
  for (let i = history.length - 1; i >= 0; i--) {
    const cur = versions[i];
    const before = versions[i + 1];
    const commit = history[i]!;
    if (cur && before && key(cur) !== key(before)) {
      const from = label(before);
      const rolledBack = commit.trailers.some(
        (t) => t.key.toLowerCase() === ROLLED_BACK_FROM.toLowerCase() && t.value === from,
      );
      if (rolledBack && !age.has(key(cur))) age.set(key(cur), age.get(key(before))! - 0.5);
      const older = age.get(key(cur)) !== undefined && age.get(key(cur))! < age.get(key(before))!;
      const how = rolledBack ? "rollback" : older ? "revert" : undefined;
      if (how && !excluded.has(key(before))) {
        const incident = commit.trailers.find((t) => t.key.toLowerCase() === INCIDENT_TRAILER.toLowerCase())?.value;
        excluded.set(key(before), { label: from, key: key(before), commit, how, ...(incident ? { incident } : {}) });
      }
    }
    if (cur && !age.has(key(cur))) age.set(key(cur), next++);
  }
  return excluded;
}

const key = (v: Version) => JSON.stringify(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)));

function why(e: Excluded): string {
  const by = `${e.commit.commit.slice(0, 7)} "${e.commit.subject}"`;
  return e.how === "rollback"
    ? `${e.label} (rolled back by ${by}${e.incident ? ` for ${e.incident}` : ""})`
    : `${e.label} (reverted by ${by})`;
}

export const rollback: RepoBuiltin = async (workdir, params) => {
  const p = parseParams("rollback", Params, params);
  const repo = await loadRepo(workdir);
  const match = locate(repo, p);
  const { target, container } = findTarget(match, p.container);
  const current = target.read(target.file)!;

  const history = await fileHistory(workdir, target.file.path, { limit: HISTORY_LIMIT });
  const versions = await versionsOf(workdir, target, history);
  const excluded = excludedVersions(history, versions, target.label);
  let previous: { version: Version; commit: FileCommit } | undefined;
  const skipped = new Map<string, Excluded>();
  for (const [i, version] of versions.entries()) {
    if (!version || key(version) === key(current)) continue;
    const bad = excluded.get(key(version));
    if (bad) {
      skipped.set(bad.key, bad);
      continue;
    }
    previous = { version, commit: history[i]! };
    break;
  }
  if (!previous && skipped.size > 0) {
    const list = [...skipped.values()].map(why).join("; ");
    throw new AppError(
      "not_found",
      "gitops.no_safe_version",
      `${target.where}: no safe version to roll back to from ${target.label(current)}: every earlier version in git history was moved away from before: ${list}`,
      {
        retryable: false,
        details: {
          current: target.label(current),
          excluded: [...skipped.values()].map((e) => ({
            version: e.label,
            how: e.how,
            commit: e.commit.commit,
            incident: e.incident,
          })),
        },
      },
    );
  }
  if (!previous) {
    throw notFound(
      "gitops.no_previous_version",
      history.length === 0
        ? `${target.file.path} has no git history: no previous image to roll back to`
        : `${target.where}: none of the ${history.length} commits of ${target.file.path} has an image other than ${target.label(current)}; no previous image to roll back to`,
    );
  }

  target.write(previous.version);
  const files = await repo.save();
  const from = target.label(current);
  const to = target.label(previous.version);
  const image = current.image ? { fromImage: current.image, toImage: previous.version.image } : {};
  const skipping = skipped.size ? `; skipped ${[...skipped.values()].map(why).join("; ")}` : "";
  return {
    files,
    summary:
      `rollback ${p.namespace}/${match.name}: ${container} ${from} → ${to} in ${target.file.path} (as of ${previous.commit.commit.slice(0, 7)} ${previous.commit.subject}${skipping})`.trim(),
    details: {
      namespace: p.namespace,
      workload: match.name,
      kind: match.instance.kind,
      source: match.instance.source,
      container,
      file: target.file.path,
      where: target.where,
      from,
      to,
      ...image,
      commit: previous.commit.commit,
      committedAt: new Date(previous.commit.time).toISOString(),
      ...(skipped.size
        ? { skipped: [...skipped.values()].map((e) => ({ version: e.label, how: e.how, commit: e.commit.commit })) }
        : {}),
      // The runner writes it as the commit's Pitcrew-Rolled-Back-From trailer.
      rolledBackFrom: from,
    },
  };
};

/** The trailers of the commit that proposes a change: the rollback's own, when it is one. */
export function changeTrailers(details: Record<string, unknown>): Array<[string, string]> {
  return typeof details.rolledBackFrom === "string" ? [[ROLLED_BACK_FROM, details.rolledBackFrom]] : [];
}
