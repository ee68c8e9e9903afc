import { describe, expect, it } from "vitest";
import { parseYamlFile } from "./yaml-file.ts";
import { formatYamlPath, parseYamlPath, resolveYamlPath } from "./yaml-path.ts";

describe("parseYamlPath", () => {
  it("reads keys, indexes and key=value selectors", () => {
    expect(parseYamlPath("spec.template.spec.containers[name=api].resources.limits.cpu")).toEqual([
      { key: "spec" },
      { key: "template" },
      { key: "spec" },
      { key: "containers" },
      { match: { key: "name", value: "api" } },
      { key: "resources" },
      { key: "limits" },
      { key: "cpu" },
    ]);
    expect(parseYamlPath("items[0][1].x")).toEqual([{ key: "items" }, { index: 0 }, { index: 1 }, { key: "x" }]);
  });

  it("reads quoted keys with dots and slashes, and quoted selector values", () => {
    expect(parseYamlPath('metadata.annotations["pitcrew.dev/restartedAt"]')).toEqual([
      { key: "metadata" },
      { key: "annotations" },
      { key: "pitcrew.dev/restartedAt" },
    ]);
    expect(parseYamlPath("env[name='A.B]']")).toEqual([{ key: "env" }, { match: { key: "name", value: "A.B]" } }]);
  });

  it.each(["", ".a", "a.", "a..b", "a[", "a[]", "a[x]", "a[=1]", "a]b", "a[0]b"])("rejects %j", (p) => {
    expect(() => parseYamlPath(p)).toThrow(expect.objectContaining({ kind: "invalid", code: "patch.bad_path" }));
  });

  it("formats back to an equivalent path", () => {
    const p = 'spec.containers[name=api].env[0]["a.b"]';
    expect(parseYamlPath(formatYamlPath(parseYamlPath(p)))).toEqual(parseYamlPath(p));
  });
});

describe("resolveYamlPath", () => {
  const file = parseYamlFile(
    "d.yaml",
    [
      "kind: Deployment",
      "spec:",
      "  template:",
      "    spec:",
      "      containers:",
      "        - name: sidecar",
      "          image: envoy",
      "        - name: api",
      "          image: api:v1",
      "          resources: {}",
      "  80: http",
      "",
    ].join("\n"),
  );
  const doc = file.docs[0]!;

  it("turns selectors into list indexes", () => {
    const r = resolveYamlPath(doc, parseYamlPath("spec.template.spec.containers[name=api].image"));
    expect(r).toMatchObject({
      complete: true,
      resolved: 6,
      path: ["spec", "template", "spec", "containers", 1, "image"],
    });
  });

  it("reports how far a missing path resolves and whether its tail can be created", () => {
    const r = resolveYamlPath(doc, parseYamlPath("spec.template.spec.containers[name=api].resources.limits.cpu"));
    expect(r).toMatchObject({
      complete: false,
      resolved: 6,
      creatable: ["spec", "template", "spec", "containers", 1, "resources", "limits", "cpu"],
    });
    const s = resolveYamlPath(doc, parseYamlPath("spec.template.spec.containers[name=web].image"));
    expect(s).toMatchObject({ complete: false, resolved: 4, creatable: undefined });
  });

  it("matches numeric map keys by their text", () => {
    expect(resolveYamlPath(doc, parseYamlPath("spec.80"))).toMatchObject({ complete: true, path: ["spec", 80] });
  });
});
