import { createHash } from "node:crypto";
import type { Alert } from "./payload.ts";
import { isZeroTime } from "./payload.ts";

export type LabelMapping = {
  /** Label names tried in order for the namespace. */
  namespace: string[];
  /** Label names tried in order for the service (a pod name is reduced to its workload). */
  service: string[];
  severity: string[];
};

export const defaultLabelMapping: LabelMapping = {
  namespace: ["namespace", "exported_namespace"],
  service: ["deployment", "statefulset", "daemonset", "pod", "service", "job"],
  severity: ["severity"],
};

export type NormalizedAlert = {
  fingerprint: string;
  /** False when the payload carried none and we derived it from the labels. */
  fingerprintGiven: boolean;
  status: "firing" | "resolved";
  alertname: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: number;
  endsAt: number | null;
  generatorURL: string | null;
  namespace: string | null;
  service: string | null;
  severity: string | null;
  title: string;
};

/** AlertManager's own fingerprint is a hash of the sorted label set; ours is stable the same way. */
export function labelsFingerprint(labels: Record<string, string>): string {
  const h = createHash("sha256");
  for (const k of Object.keys(labels).sort()) h.update(k).update("\xff").update(labels[k]!).update("\xff");
  return h.digest("hex").slice(0, 16);
}

// <deployment>-<replicaset hash>-<pod suffix>, e.g. checkout-7d9f8b6c5-x2x9k → checkout.
const DEPLOYMENT_POD = /^(.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$/;
// <statefulset>-<ordinal>, e.g. postgres-0 → postgres.
const STATEFUL_POD = /^(.+)-\d+$/;

export function workloadFromPod(pod: string): string {
  return DEPLOYMENT_POD.exec(pod)?.[1] ?? STATEFUL_POD.exec(pod)?.[1] ?? pod;
}

function first(labels: Record<string, string>, names: string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = labels[name];
    if (value) return { name, value };
  }
  return undefined;
}

export function normalizeAlert(a: Alert, mapping: LabelMapping = defaultLabelMapping): NormalizedAlert {
  const labels = a.labels;
  const annotations = a.annotations ?? {};
  const service = first(labels, mapping.service);
  const alertname = labels.alertname!;
  const namespace = first(labels, mapping.namespace)?.value ?? null;
  const summary = annotations.summary ?? annotations.message ?? annotations.description;
  const where = [namespace, service ? (service.name === "pod" ? workloadFromPod(service.value) : service.value) : null].filter(Boolean).join("/");
  return {
    fingerprint: a.fingerprint || labelsFingerprint(labels),
    fingerprintGiven: !!a.fingerprint,
    status: a.status,
    alertname,
    labels,
    annotations,
    startsAt: Date.parse(a.startsAt),
    endsAt: isZeroTime(a.endsAt) ? null : Date.parse(a.endsAt!),
    generatorURL: a.generatorURL || null,
    namespace,
    service: service ? (service.name === "pod" ? workloadFromPod(service.value) : service.value) : null,
    severity: first(labels, mapping.severity)?.value ?? null,
    title: `${alertname}${where ? ` ${where}` : ""}${summary ? `: ${summary}` : ""}`.slice(0, 1000),
  };
}
