import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import { createMetrics } from "../../src/shared/metrics.ts";
import { hasTool } from "../helpers/services.ts";

// deploy/: the kustomize base renders and its manifests fit together; the Grafana dashboard and
// the Prometheus rules use only metrics Pitcrew exposes, and their PromQL is valid.

const ROOT = new URL("../../", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "pitcrew-deploy-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const read = (p: string) => readFileSync(join(ROOT, p), "utf8");

type Labels = Record<string, string>;
type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Labels };
  spec?: any;
  data?: any;
};
const matches = (selector: Labels, labels: Labels | undefined) =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** Names a scrape of a control plane can carry: Pitcrew's metrics, the process and Node.js ones, `up`. */
async function exposedSeries(): Promise<Set<string>> {
  const names = new Set(["up"]);
  for (const m of await createMetrics().registry.getMetricsAsJSON()) {
    names.add(m.name);
    const type = String(m.type);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(`${m.name}${s}`);
    if (type === "summary") for (const s of ["_sum", "_count"]) names.add(`${m.name}${s}`);
  }
  return names;
}

/** Every `name{matchers}` selector in a PromQL expression, and every pitcrew_/process_/nodejs_ name. */
function selectors(expr: string): { name: string; matchers: string }[] {
  const found = [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)].map((m) => ({
    name: m[1]!,
    matchers: m[2]!,
  }));
  // A metric written without matchers would escape the check above: there must be none.
  const bare = [...expr.matchAll(/\b(?:pitcrew|process|nodejs)_[a-z0-9_]+\b(?!\{)/g)].map((m) => m[0]);
  expect(bare, `metrics without a job matcher in ${expr}`).toEqual([]);
  return found;
}

const dashboard = JSON.parse(read("deploy/grafana/pitcrew.json")) as {
  uid: string;
  panels: { id: number; type: string; title: string; targets?: { expr: string; refId: string }[] }[];
};
const dashboardQueries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, ...t })));
const rules = parse(read("deploy/prometheus/pitcrew-rules.yml")) as {
  groups: { name: string; rules: { alert?: string; expr: string; labels?: Labels }[] }[];
};
const alertRules = rules.groups.flatMap((g) => g.rules);

describe("Grafana dashboard", () => {
  it("queries only metrics a control plane exposes, each filtered by the dashboard's job", async () => {
    const exposed = await exposedSeries();
    expect(dashboardQueries.length).toBeGreaterThan(30);
    const used = new Set<string>();
    for (const q of dashboardQueries)
      for (const s of selectors(q.expr)) {
        expect(exposed, `${q.panel.title}: ${s.name}`).toContain(s.name);
        expect(s.matchers, `${q.panel.title}: ${q.expr}`).toContain('job=~"$job"');
        used.add(s.name);
      }
    // The subjects each have a panel.
    for (const name of [
      "pitcrew_outbox_lag_seconds",
      "pitcrew_dead_letters_total",
      "pitcrew_runners",
      "pitcrew_incidents_stuck",
      "pitcrew_queue_depth",
      "pitcrew_alerts_received_total",
      "pitcrew_approvals_total",
      "pitcrew_deliveries_total",
      "pitcrew_task_duration_seconds_bucket",
      "process_resident_memory_bytes",
    ])
      expect(used).toContain(name);
  });

  it("has unique panel ids and refIds, and a query in every panel that is not a row", () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      if (p.type === "row") continue;
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refs = p.targets!.map((t) => t.refId);
      expect(new Set(refs).size, p.title).toBe(refs.length);
    }
  });
});

describe("Prometheus alert rules", () => {
  it("alert on the process, readiness, outbox lag, dead letters, runners and stuck incidents, using exposed metrics", async () => {
    const exposed = await exposedSeries();
    const names = alertRules.map((r) => r.alert);
    for (const a of [
      "PitcrewDown",
      "PitcrewAbsent",
      "PitcrewNotReady",
      "PitcrewOutboxLagging",
      "PitcrewDeadLetters",
      "PitcrewRunnersStale",
      "PitcrewNoLiveRunners",
      "PitcrewIncidentsStuck",
    ])
      expect(names).toContain(a);
    for (const r of alertRules) {
      expect(["critical", "warning"], r.alert).toContain(r.labels?.severity);
      for (const s of selectors(r.expr)) {
        expect(exposed, `${r.alert}: ${s.name}`).toContain(s.name);
        expect(s.matchers, `${r.alert}: ${r.expr}`).toContain('job="pitcrew"');
      }
    }
  });

  const promtool = hasTool("promtool");

  it.skipIf(!promtool)("pass promtool check rules and their unit tests (promtool test rules)", () => {
    const run = (...args: string[]) =>
      execFileSync("promtool", args, { cwd: join(ROOT, "deploy/prometheus") }).toString();
    expect(run("check", "rules", "pitcrew-rules.yml")).toContain(`SUCCESS: ${alertRules.length} rules found`);
    expect(run("test", "rules", "pitcrew-rules.test.yml")).toContain("SUCCESS");
  });

  it.skipIf(!promtool)(
    "every dashboard query is valid PromQL (promtool check rules on them as recording rules)",
    () => {
      const file = join(dir, "dashboard-queries.yml");
      const records = dashboardQueries.map((q) => ({
        record: `dashboard:panel_${q.panel.id}_${q.refId}`,
        expr: q.expr.replaceAll("$job", "pitcrew").replaceAll("$__rate_interval", "5m").replaceAll("$__interval", "1m"),
      }));
      writeFileSync(file, stringify({ groups: [{ name: "dashboard", rules: records }] }));
      expect(execFileSync("promtool", ["check", "rules", file]).toString()).toContain(
        `SUCCESS: ${records.length} rules found`,
      );
    },
  );
});

describe("kustomize base (deploy/kubernetes/base)", () => {
  const kubectl = hasTool("kubectl");

  it.skipIf(!kubectl)("renders, and its manifests fit together: selectors, probes, ports, config and secrets", () => {
    const out = execFileSync("kubectl", ["kustomize", join(ROOT, "deploy/kubernetes/base")]).toString();
    const docs = parseAllDocuments(out);
    for (const d of docs) expect(d.errors).toEqual([]);
    const all = docs.map((d) => d.toJS() as Manifest);
    for (const m of all) {
      expect(m.apiVersion, JSON.stringify(m)).toBeTruthy();
      expect(m.metadata?.name, m.kind).toBeTruthy();
    }
    const kinds = all.map((m) => m.kind).sort();
    expect(kinds).toEqual([
      "ConfigMap",
      "Deployment",
      "Deployment",
      "NetworkPolicy",
      "NetworkPolicy",
      "PodDisruptionBudget",
      "PodDisruptionBudget",
      "Service",
      "ServiceMonitor",
    ]);
    // No Secret is rendered: its values never live in the repository.
    const one = (kind: string, name: string) => {
      const m = all.find((x) => x.kind === kind && x.metadata.name === name);
      expect(m, `${kind}/${name}`).toBeDefined();
      return m!;
    };
    const config = all.find((m) => m.kind === "ConfigMap")!;
    const cp = one("Deployment", "pitcrew");
    const runner = one("Deployment", "pitcrew-runner");
    const service = one("Service", "pitcrew");
    const podLabels = (d: Manifest): Labels => d.spec.template.metadata.labels;

    for (const d of [cp, runner]) {
      expect(matches(d.spec.selector.matchLabels, podLabels(d)), d.metadata.name).toBe(true);
      const c = d.spec.template.spec.containers[0];
      // Both read the generated ConfigMap (by its hashed name) and only the Secret "pitcrew".
      expect(c.envFrom.find((e: any) => e.configMapRef)?.configMapRef.name).toBe(config.metadata.name);
      const secretNames = [
        ...(c.envFrom ?? []).filter((e: any) => e.secretRef).map((e: any) => e.secretRef.name),
        ...(c.env ?? []).filter((e: any) => e.valueFrom?.secretKeyRef).map((e: any) => e.valueFrom.secretKeyRef.name),
      ];
      expect(secretNames.length, d.metadata.name).toBeGreaterThan(0);
      expect(new Set(secretNames)).toEqual(new Set(["pitcrew"]));
      // No credential written into a manifest: secret-like variables come from the Secret.
      for (const e of c.env ?? [])
        if (/TOKEN|SECRET|PASSWORD|PRIVATE_KEY|API_KEY|DATABASE_URL/.test(e.name))
          expect(e.valueFrom?.secretKeyRef?.name, e.name).toBe("pitcrew");
      expect(d.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    }
    expect(Object.keys(config.data)).not.toContain("DATABASE_URL");
    for (const k of Object.keys(config.data)) expect(k).not.toMatch(/TOKEN|SECRET|PASSWORD|PRIVATE_KEY/);

    // The control plane: serve on the named port, readiness on /readyz, liveness on /healthz.
    const c = cp.spec.template.spec.containers[0];
    expect(c.image).toBe("pitcrew:latest");
    expect(c.args).toEqual(["serve"]);
    expect(c.ports).toEqual([{ name: "http", containerPort: 18088, protocol: "TCP" }]);
    expect(c.env.find((e: any) => e.name === "PORT")?.value).toBe("18088");
    expect(c.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });
    expect(c.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(c.envFrom.find((e: any) => e.secretRef)?.secretRef.name).toBe("pitcrew");

    // The runner: no ports, no database, its own image.
    const r = runner.spec.template.spec.containers[0];
    expect(r.image).toBe("pitcrew-runner:latest");
    expect(r.args).toEqual(["runner"]);
    expect(r.ports).toBeUndefined();
    expect(r.envFrom.some((e: any) => e.secretRef)).toBe(false);
    expect(r.env.map((e: any) => e.name)).not.toContain("DATABASE_URL");

    // The Service reaches the control planes only, on the container's named port.
    expect(matches(service.spec.selector, podLabels(cp))).toBe(true);
    expect(matches(service.spec.selector, podLabels(runner))).toBe(false);
    expect(service.spec.ports).toEqual([{ name: "http", port: 18088, targetPort: "http", protocol: "TCP" }]);

    // Each PodDisruptionBudget and NetworkPolicy selects exactly one Deployment's pods.
    for (const kind of ["PodDisruptionBudget", "NetworkPolicy"]) {
      const selected = all
        .filter((m) => m.kind === kind)
        .map((m) => {
          const sel = kind === "NetworkPolicy" ? m.spec.podSelector.matchLabels : m.spec.selector.matchLabels;
          const hits = [cp, runner].filter((d) => matches(sel, podLabels(d)));
          expect(hits, `${kind}/${m.metadata.name}`).toHaveLength(1);
          return hits[0]!.metadata.name;
        });
      expect(selected.sort()).toEqual(["pitcrew", "pitcrew-runner"]);
    }
    const cpPolicy = one("NetworkPolicy", "pitcrew");
    expect(cpPolicy.spec.ingress).toEqual([{ ports: [{ port: "http", protocol: "TCP" }] }]);
    expect(one("NetworkPolicy", "pitcrew-runner").spec.ingress).toEqual([]);

    // The ServiceMonitor scrapes the Service's port at /metrics; its job is the Service's name,
    // which the alert rules expect.
    const monitor = one("ServiceMonitor", "pitcrew");
    expect(matches(monitor.spec.selector.matchLabels, service.metadata.labels)).toBe(true);
    expect(monitor.spec.endpoints).toEqual([{ port: "http", path: "/metrics", interval: "30s" }]);
    expect(service.metadata.name).toBe("pitcrew");
  });

  it("ships a Secret example with placeholders only, for every key the manifests read", () => {
    const example = parse(read("deploy/kubernetes/secret.example.yaml")) as Manifest & { stringData: Labels };
    expect(example.kind).toBe("Secret");
    expect(example.metadata.name).toBe("pitcrew");
    for (const [k, v] of Object.entries(example.stringData)) expect(v, k).toContain("CHANGE-ME");
    const runnerKeys = read("deploy/kubernetes/base/runner.yaml").matchAll(/key: ([A-Z_]+)/g);
    const optional = new Set(["GITHUB_APP_PRIVATE_KEY", "ANTHROPIC_API_KEY"]);
    for (const [, key] of runnerKeys) if (!optional.has(key!)) expect(Object.keys(example.stringData)).toContain(key);
  });
});

describe("Dockerfile", () => {
  const dockerfile = read("Dockerfile");

  it("copies files that exist, and runs the build output its build stage makes", () => {
    const copies = [...dockerfile.matchAll(/^COPY (?!--from)(.+)$/gm)].flatMap((m) =>
      m[1]!.trim().split(/\s+/).slice(0, -1),
    );
    expect(copies.length).toBeGreaterThan(5);
    for (const src of copies) expect(existsSync(join(ROOT, src)), src).toBe(true);
    expect(dockerfile).toMatch(/^RUN node bin\/build\.mjs$/m);
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/dist\/ \.\/dist\/$/m);
    // The runtime stages start the compiled CLI, whose source is src/main/cli.ts.
    expect(dockerfile).toContain('ENTRYPOINT ["node", "dist/src/main/cli.js"]');
    expect(existsSync(join(ROOT, "src/main/cli.ts"))).toBe(true);
    // Production dependencies only, and no sources in the runtime stages.
    expect(dockerfile).toContain("npm ci --omit=dev");
    const runtime = dockerfile.slice(dockerfile.indexOf("AS runtime"));
    expect(runtime).not.toMatch(/^COPY (src|runner|migrations)\//m);
  });
});
