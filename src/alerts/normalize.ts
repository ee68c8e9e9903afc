import { createHash } from "node:crypto";
import type { Alert, AlertmanagerPayload, Labels } from "./payload.ts";
import { isZeroTime } from "./payload.ts";

export type LabelMapping = {
  /** Label names tried in order for the namespace. */
  namespace: string[];
  /** Label names tried in order for the service (a pod name is reduced to its workload). */
  service: string[];
  severity: string[];
  /** Service-label values that name the exporter that scraped the metric, never the workload. */
  serviceIgnore?: RegExp;
};

/** The defaults of LABEL_NAMESPACE, LABEL_SERVICE, LABEL_SERVICE_IGNORE and LABEL_SEVERITY. */
export const defaultLabelMapping: LabelMapping = {
  namespace: ["namespace", "exported_namespace"],
  service: ["deployment", "statefulset", "daemonset", "horizontalpodautoscaler", "job_name", "pod", "service", "job"],
  severity: ["severity"],
  serviceIgnore:
    /^(kube-state-metrics|kubelet|cadvisor|node-exporter|blackbox-exporter|prometheus|alertmanager|.*-exporter)$/,
};

/**
 * What the intake stores of a value, in characters (UTF-16 units, never more than MySQL counts).
 * Column widths come from the migrations; a longer value is cut and ends with a marker that
 * records its original length. A label set as a whole stays under `setBytes` of JSON so that a
 * row fits MySQL's MEDIUMTEXT and max_allowed_packet.
 */
export const LIMITS = {
  value: 16_384,
  name: 1024,
  setBytes: 2 * 1_048_576,
  generatorURL: 16_384,
  groupKey: 16_384,
  fingerprint: 255,
  alertname: 255,
  receiver: 255,
  severity: 64,
  namespace: 253,
  service: 253,
  title: 1024,
} as const;

/** Cuts `s` to at most `max` characters, ending with a marker that gives the original length. */
export function fitText(s: string, max: number): string {
  if (s.length <= max) return s;
  const marker = `…[truncated, ${s.length} chars]`;
  let keep = Math.max(0, max - marker.length);
  // Never split a surrogate pair: half of one is not storable text.
  const c = s.charCodeAt(keep - 1);
  if (keep > 0 && c >= 0xd800 && c <= 0xdbff) keep--;
  return s.slice(0, keep) + marker;
}

export type NormalizedAlert = {
  fingerprint: string;
  /** False when the payload carried none and we derived it from the labels. */
  fingerprintGiven: boolean;
  status: "firing" | "resolved";
  alertname: string;
  labels: Labels;
  annotations: Labels;
  startsAt: number;
  endsAt: number | null;
  generatorURL: string | null;
  namespace: string | null;
  service: string | null;
  severity: string | null;
  title: string;
  /** What was cut to fit, e.g. `annotations.description (200000 chars)`; empty when nothing. */
  truncated: string[];
};

export type NormalizedPayload = {
  receiver: string;
  groupKey: string;
  /** AlertManager's own count, plus alerts past the intake's cap. */
  truncatedAlerts: number;
  alerts: NormalizedAlert[];
};

/** AlertManager's own fingerprint is a hash of the sorted label set; ours is stable the same way. */
export function labelsFingerprint(labels: Labels): string {
  const h = createHash("sha256");
  for (const k of Object.keys(labels).sort()) h.update(k).update("\xff").update(labels[k]!).update("\xff");
  return h.digest("hex").slice(0, 16);
}

// <deployment>-<replicaset hash>-<pod suffix>, e.g. checkout-7d9f8b6c5-x2x9k → checkout.
const DEPLOYMENT_POD = /^(.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$/;
// <statefulset>-<ordinal>, e.g. postgres-0 → postgres.
const STATEFUL_POD = /^(.+)-\d+$/;

export function workloadFromPod(pod: string, container?: string): string {
  // A pod of a DaemonSet or Job whose container is named after it (fluentd-x7k2p, container fluentd).
  if (container && pod.startsWith(`${container}-`) && !DEPLOYMENT_POD.test(pod) && !STATEFUL_POD.test(pod))
    return container;
  return DEPLOYMENT_POD.exec(pod)?.[1] ?? STATEFUL_POD.exec(pod)?.[1] ?? pod;
}

function first(labels: Labels, names: string[]): string | undefined {
  for (const name of names) {
    if (!Object.hasOwn(labels, name)) continue;
    const value = labels[name];
    if (value) return value;
  }
  return undefined;
}

/**
 * The workload an alert is about. kube-state-metrics and other exporters put their own identity
 * in `job`, `service`, `pod` and `container`; a value that names an exporter is skipped, so a
 * KubeDeploymentReplicasMismatch is about its `deployment`, never about `kube-state-metrics`.
 */
export function serviceOf(labels: Labels, mapping: LabelMapping): string | null {
  const skip = (v: string) => mapping.serviceIgnore?.test(v) ?? false;
  for (const name of mapping.service) {
    if (!Object.hasOwn(labels, name) || !labels[name]) continue;
    const value = labels[name]!;
    if (name === "pod") {
      const container = Object.hasOwn(labels, "container") ? labels.container : undefined;
      const workload = workloadFromPod(value, container);
      // The exporter's own pod (kube-state-metrics-6f8c9b7d44-vq2lm, container kube-state-metrics).
      if (
        skip(workload) ||
        skip(value) ||
        (container !== undefined && skip(container) && value.startsWith(`${container}-`))
      )
        continue;
      return workload;
    }
    if (skip(value)) continue;
    return value;
  }
  return null;
}

function fitSet(set: Labels, kind: "labels" | "annotations", truncated: string[]): Labels {
  const out: Labels = Object.create(null);
  let bytes = 2;
  let dropped = 0;
  for (const rawName of Object.keys(set)) {
    const rawValue = set[rawName]!;
    const name = fitText(rawName, LIMITS.name);
    const value = fitText(rawValue, LIMITS.value);
    const size = Buffer.byteLength(JSON.stringify(name)) + Buffer.byteLength(JSON.stringify(value)) + 2;
    // Past the budget (or a name that collides once cut), the entry is left out and counted.
    if (bytes + size > LIMITS.setBytes || Object.hasOwn(out, name)) {
      dropped++;
      continue;
    }
    bytes += size;
    if (name !== rawName) truncated.push(`${kind} name ${name.slice(0, 40)}… (${rawName.length} chars)`);
    if (value !== rawValue) truncated.push(`${kind}.${name.slice(0, 64)} (${rawValue.length} chars)`);
    out[name] = value;
  }
  if (dropped > 0) truncated.push(`${kind}: ${dropped} entries left out past ${LIMITS.setBytes} bytes`);
  return out;
}

function fitFingerprint(fp: string): string {
  if (fp.length <= LIMITS.fingerprint) return fp;
  // Cutting could make two fingerprints one; a hash of a long one stays unique.
  return `sha256:${createHash("sha256").update(fp).digest("hex")}`;
}

export function normalizeAlert(a: Alert, mapping: LabelMapping = defaultLabelMapping): NormalizedAlert {
  const truncated: string[] = [];
  const labels = fitSet(a.labels, "labels", truncated);
  const annotations = fitSet(a.annotations ?? Object.create(null), "annotations", truncated);
  const alertname = fitText(a.labels.alertname!, LIMITS.alertname);
  const namespace = first(labels, mapping.namespace) ?? null;
  const service = serviceOf(labels, mapping);
  const severity = first(labels, mapping.severity) ?? null;
  const summary = annotations.summary ?? annotations.message ?? annotations.description;
  const where = [namespace, service].filter(Boolean).join("/");
  const generatorURL = a.generatorURL ? fitText(a.generatorURL, LIMITS.generatorURL) : null;
  if (generatorURL !== null && generatorURL !== a.generatorURL)
    truncated.push(`generatorURL (${a.generatorURL!.length} chars)`);
  return {
    fingerprint: fitFingerprint(a.fingerprint || labelsFingerprint(a.labels)),
    fingerprintGiven: !!a.fingerprint,
    status: a.status,
    alertname,
    labels,
    annotations,
    startsAt: Date.parse(a.startsAt),
    endsAt: isZeroTime(a.endsAt) ? null : Date.parse(a.endsAt!),
    generatorURL,
    namespace: namespace === null ? null : fitText(namespace, LIMITS.namespace),
    service: service === null ? null : fitText(service, LIMITS.service),
    severity: severity === null ? null : fitText(severity, LIMITS.severity),
    title: fitText(`${alertname}${where ? ` ${where}` : ""}${summary ? `: ${summary}` : ""}`, LIMITS.title),
    truncated,
  };
}

/**
 * A validated payload as the intake stores it: every value fitted to its column, and at most
 * `maxAlerts` alerts (the rest are counted as truncated, as AlertManager's own `max_alerts` does).
 */
export function normalizePayload(
  payload: AlertmanagerPayload,
  mapping: LabelMapping = defaultLabelMapping,
  maxAlerts = Infinity,
): NormalizedPayload {
  const kept = payload.alerts.length > maxAlerts ? payload.alerts.slice(0, maxAlerts) : payload.alerts;
  return {
    receiver: fitText(payload.receiver, LIMITS.receiver),
    groupKey: fitText(payload.groupKey, LIMITS.groupKey),
    truncatedAlerts: payload.truncatedAlerts + (payload.alerts.length - kept.length),
    alerts: kept.map((a) => normalizeAlert(a, mapping)),
  };
}
