import { describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.ts";
import {
  defaultLabelMapping,
  fitText,
  labelsFingerprint,
  LIMITS,
  normalizeAlert,
  normalizePayload,
  serviceOf,
  workloadFromPod,
} from "./normalize.ts";

describe("normalizeAlert", () => {
  const alert = {
    status: "firing" as const,
    labels: {
      alertname: "KubePodCrashLooping",
      namespace: "payments",
      pod: "checkout-7d9f8b6c5-x2x9k",
      severity: "warning",
    },
    annotations: { summary: "Pod is crash looping." },
    startsAt: "2026-11-20T08:14:03.512Z",
    endsAt: "0001-01-01T00:00:00Z",
    generatorURL: "http://prometheus:9090/graph",
    fingerprint: "a1b2c3d4e5f60718",
  };

  it("maps namespace, service (from the pod's workload) and severity from the labels", () => {
    const n = normalizeAlert(alert);
    expect(n).toMatchObject({
      namespace: "payments",
      service: "checkout",
      severity: "warning",
      fingerprint: "a1b2c3d4e5f60718",
      endsAt: null,
    });
    expect(n.startsAt).toBe(Date.parse("2026-11-20T08:14:03.512Z"));
    expect(n.title).toBe("KubePodCrashLooping payments/checkout: Pod is crash looping.");
  });

  it("follows a custom label mapping", () => {
    const n = normalizeAlert(
      { ...alert, labels: { ...alert.labels, team_ns: "billing", app: "ledger", prio: "P1" } },
      { namespace: ["team_ns"], service: ["app"], severity: ["prio"] },
    );
    expect(n).toMatchObject({ namespace: "billing", service: "ledger", severity: "P1" });
  });

  it("derives a stable fingerprint from the labels when none is given", () => {
    const { fingerprint: _f, ...noFp } = alert;
    const n = normalizeAlert(noFp);
    expect(n.fingerprintGiven).toBe(false);
    expect(n.fingerprint).toBe(
      labelsFingerprint({
        severity: "warning",
        alertname: "KubePodCrashLooping",
        pod: "checkout-7d9f8b6c5-x2x9k",
        namespace: "payments",
      }),
    );
    expect(n.fingerprint).toMatch(/^[0-9a-f]{16}$/);
  });

  it("reduces pod names to their workload", () => {
    expect(workloadFromPod("checkout-7d9f8b6c5-x2x9k")).toBe("checkout");
    expect(workloadFromPod("postgres-0")).toBe("postgres");
    expect(workloadFromPod("standalone")).toBe("standalone");
  });
});

describe("fitting values to their columns", () => {
  it("cuts a long value with a marker that records its original length", () => {
    const cut = fitText("x".repeat(20_000), LIMITS.value);
    expect(cut.length).toBeLessThanOrEqual(LIMITS.value);
    expect(cut).toMatch(/^x+…\[truncated, 20000 chars\]$/);
    expect(fitText("short", 10)).toBe("short");
  });

  it("never splits a surrogate pair", () => {
    const s = "a".repeat(20) + "😀".repeat(20);
    for (let max = 30; max < 60; max++) expect(fitText(s, max)).not.toMatch(/\p{Cs}/u);
  });

  it("fits receiver, alertname, severity, namespace and service to their MySQL columns", () => {
    const long = (n: number) => "v".repeat(n);
    const n = normalizeAlert({
      status: "firing",
      labels: { alertname: long(300), namespace: long(300), deployment: long(300), severity: long(100) },
      annotations: { summary: long(2000) },
      startsAt: "2026-11-20T08:14:03Z",
    });
    expect(n.alertname.length).toBeLessThanOrEqual(255);
    expect(n.namespace!.length).toBeLessThanOrEqual(253);
    expect(n.service!.length).toBeLessThanOrEqual(253);
    expect(n.severity!.length).toBeLessThanOrEqual(64);
    expect(n.title.length).toBeLessThanOrEqual(1024);
    // The label set itself keeps the whole value (it is under the 16 KiB value cap).
    expect(n.labels.alertname).toBe(long(300));
    expect(n.truncated).toEqual([]);
  });

  it("keeps every label of a large set, cutting long values, and says what it cut", () => {
    const labels: Record<string, string> = Object.create(null);
    labels.alertname = "Many";
    for (let i = 0; i < 300; i++) labels[`l${i}`] = `v${i}`;
    labels.big = "b".repeat(50_000);
    const n = normalizeAlert({
      status: "firing",
      labels,
      annotations: {},
      startsAt: "2026-11-20T08:14:03Z",
      generatorURL: "u".repeat(20_000),
    });
    expect(Object.keys(n.labels)).toHaveLength(302);
    expect(n.labels.big).toMatch(/…\[truncated, 50000 chars\]$/);
    expect(n.generatorURL).toMatch(/…\[truncated, 20000 chars\]$/);
    expect(n.truncated).toEqual(["labels.big (50000 chars)", "generatorURL (20000 chars)"]);
  });

  it("caps the number of alerts taken from one payload and counts the rest as truncated", () => {
    const alerts = Array.from({ length: 8 }, (_, i) => ({
      status: "firing" as const,
      labels: { alertname: `A${i}` },
      annotations: {},
      startsAt: "2026-11-20T08:14:03Z",
    }));
    const p = normalizePayload(
      {
        version: "4",
        groupKey: "g",
        truncatedAlerts: 2,
        status: "firing",
        receiver: "r".repeat(300),
        groupLabels: {},
        commonLabels: {},
        commonAnnotations: {},
        externalURL: "",
        alerts,
      },
      defaultLabelMapping,
      5,
    );
    expect(p.alerts.map((a) => a.alertname)).toEqual(["A0", "A1", "A2", "A3", "A4"]);
    expect(p.truncatedAlerts).toBe(5);
    expect(p.receiver.length).toBeLessThanOrEqual(255);
  });
});

describe("the service of an alert", () => {
  const ksm = {
    alertname: "X",
    job: "kube-state-metrics",
    service: "kube-state-metrics",
    pod: "kube-state-metrics-6f8c9b7d44-vq2lm",
    container: "kube-state-metrics",
    namespace: "shop",
  };

  it("is the workload kube-state-metrics reports, never kube-state-metrics itself", () => {
    expect(serviceOf({ ...ksm, deployment: "cart" }, defaultLabelMapping)).toBe("cart");
    expect(serviceOf({ ...ksm, statefulset: "db" }, defaultLabelMapping)).toBe("db");
    expect(serviceOf({ ...ksm, daemonset: "log-shipper" }, defaultLabelMapping)).toBe("log-shipper");
    expect(serviceOf({ ...ksm, horizontalpodautoscaler: "web" }, defaultLabelMapping)).toBe("web");
    expect(serviceOf({ ...ksm, job_name: "nightly-report-29180160" }, defaultLabelMapping)).toBe(
      "nightly-report-29180160",
    );
    expect(serviceOf(ksm, defaultLabelMapping)).toBeNull();
  });

  it("is the pod's workload for pod alerts, using the container for pods named after it", () => {
    expect(serviceOf({ ...ksm, pod: "checkout-7d9f8b6c5-x2x9k", container: "checkout" }, defaultLabelMapping)).toBe(
      "checkout",
    );
    expect(serviceOf({ alertname: "X", pod: "fluentd-x7k2p", container: "fluentd" }, defaultLabelMapping)).toBe(
      "fluentd",
    );
  });

  it("skips any exporter's own identity", () => {
    expect(
      serviceOf(
        {
          alertname: "Lag",
          job: "kafka-exporter",
          service: "kafka-exporter",
          pod: "kafka-exporter-7c9d8f6b5-k2m4p",
          container: "kafka-exporter",
        },
        defaultLabelMapping,
      ),
    ).toBeNull();
    expect(serviceOf({ alertname: "Down", job: "payments-api" }, defaultLabelMapping)).toBe("payments-api");
  });

  it("uses the same defaults as the configuration (LABEL_SERVICE, LABEL_SERVICE_IGNORE)", () => {
    const { labels } = loadConfig({});
    expect(defaultLabelMapping.service).toEqual(labels.service);
    expect(defaultLabelMapping.namespace).toEqual(labels.namespace);
    expect(defaultLabelMapping.severity).toEqual(labels.severity);
    expect(defaultLabelMapping.serviceIgnore!.source).toBe(labels.serviceIgnore.source);
  });
});
