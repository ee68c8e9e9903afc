import { describe, expect, it } from "vitest";
import { labelsFingerprint, normalizeAlert, workloadFromPod } from "./normalize.ts";

describe("normalizeAlert", () => {
  const alert = {
    status: "firing" as const,
    labels: { alertname: "KubePodCrashLooping", namespace: "payments", pod: "checkout-7d9f8b6c5-x2x9k", severity: "warning" },
    annotations: { summary: "Pod is crash looping." },
    startsAt: "2026-11-20T08:14:03.512Z",
    endsAt: "0001-01-01T00:00:00Z",
    generatorURL: "http://prometheus:9090/graph",
    fingerprint: "a1b2c3d4e5f60718",
  };

  it("maps namespace, service (from the pod's workload) and severity from the labels", () => {
    const n = normalizeAlert(alert);
    expect(n).toMatchObject({ namespace: "payments", service: "checkout", severity: "warning", fingerprint: "a1b2c3d4e5f60718", endsAt: null });
    expect(n.startsAt).toBe(Date.parse("2026-11-20T08:14:03.512Z"));
    expect(n.title).toBe("KubePodCrashLooping payments/checkout: Pod is crash looping.");
  });

  it("follows a custom label mapping", () => {
    const n = normalizeAlert({ ...alert, labels: { ...alert.labels, team_ns: "billing", app: "ledger", prio: "P1" } }, { namespace: ["team_ns"], service: ["app"], severity: ["prio"] });
    expect(n).toMatchObject({ namespace: "billing", service: "ledger", severity: "P1" });
  });

  it("derives a stable fingerprint from the labels when none is given", () => {
    const { fingerprint: _f, ...noFp } = alert;
    const n = normalizeAlert(noFp);
    expect(n.fingerprintGiven).toBe(false);
    expect(n.fingerprint).toBe(labelsFingerprint({ severity: "warning", alertname: "KubePodCrashLooping", pod: "checkout-7d9f8b6c5-x2x9k", namespace: "payments" }));
    expect(n.fingerprint).toMatch(/^[0-9a-f]{16}$/);
  });

  it("reduces pod names to their workload", () => {
    expect(workloadFromPod("checkout-7d9f8b6c5-x2x9k")).toBe("checkout");
    expect(workloadFromPod("postgres-0")).toBe("postgres");
    expect(workloadFromPod("standalone")).toBe("standalone");
  });
});
