import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  appendValue,
  getText,
  getValue,
  parseYamlFile,
  renderYamlFile,
  setValue,
  stringifyOptions,
} from "./yaml-file.ts";

const multi = [
  "# header comment",
  "apiVersion: v1",
  "kind: ConfigMap   # aligned comment",
  "metadata: {name: cfg}",
  "---",
  "# the app",
  "apiVersion: apps/v1",
  "kind: Deployment",
  "spec:",
  "  replicas: 3        # keep odd",
  "  template:",
  "    spec:",
  "      containers:",
  "      - name: api",
  '        image: "registry/api:v2"   # pinned',
  "---",
  "kind: Service",
  "spec:",
  "  ports: [ 80, 443 ]",
  "",
].join("\n");

describe("YAML file edits", () => {
  it("replaces a scalar in place and leaves every other byte alone", () => {
    const f = parseYamlFile("m.yaml", multi);
    expect(f.docs.map((d) => f.text.slice(d.start, d.end)).join("")).toBe(multi);
    setValue(f.docs[1]!, ["spec", "replicas"], 5);
    setValue(f.docs[1]!, ["spec", "template", "spec", "containers", 0, "image"], "registry/api:v1");
    expect(renderYamlFile(f)).toBe(
      multi.replace("replicas: 3 ", "replicas: 5 ").replace('"registry/api:v2"', '"registry/api:v1"'),
    );
  });

  it("quotes what a YAML 1.1 reader would not take as a string", () => {
    const f = parseYamlFile("v.yaml", "image:\n  tag: v2 # current\n");
    setValue(f.docs[0]!, ["image", "tag"], "1.10");
    expect(renderYamlFile(f)).toBe('image:\n  tag: "1.10" # current\n');
    setValue(f.docs[0]!, ["image", "tag"], "yes");
    expect(renderYamlFile(f)).toBe('image:\n  tag: "yes" # current\n');
  });

  it("reads a plain scalar as written", () => {
    const f = parseYamlFile("v.yaml", "tag: 1.10\n");
    expect(getText(f.docs[0]!, ["tag"])).toBe("1.10");
    expect(getValue(f.docs[0]!, ["tag"])).toBe(1.1);
  });

  it("adds new keys as lines under the deepest existing map", () => {
    const f = parseYamlFile("m.yaml", multi);
    setValue(
      f.docs[1]!,
      ["spec", "template", "metadata", "annotations", "pitcrew.dev/restartedAt"],
      "2025-01-02T03:04:05.000Z",
    );
    expect(renderYamlFile(f)).toBe(
      multi.replace(
        "# pinned\n",
        '# pinned\n    metadata:\n      annotations:\n        pitcrew.dev/restartedAt: "2025-01-02T03:04:05.000Z"\n',
      ),
    );
  });

  it("re-stringifies only the document whose structure changed when lines can't be added, in the file's list style", () => {
    const f = parseYamlFile("m.yaml", multi);
    setValue(f.docs[1]!, ["spec", "template", "spec", "containers", 0, "ports"], [8080]);
    setValue(f.docs[0]!, ["metadata", "labels"], { app: "x" });
    const out = renderYamlFile(f);
    const [first, second, third] = out.split(/^---$/m);
    const [, o2, o3] = multi.split(/^---$/m);
    expect(first).toBe(
      "# header comment\napiVersion: v1\nkind: ConfigMap # aligned comment\nmetadata: {name: cfg, labels: {app: x}}\n",
    );
    expect(second).toBe(
      o2!.replace('"registry/api:v2"   # pinned', '"registry/api:v2"   # pinned\n        ports:\n        - 8080'),
    );
    expect(third).toBe(o3);
  });

  it("keeps an aligned comment's column when a value gets longer or shorter", () => {
    const f = parseYamlFile("a.yaml", "a: 1     # one\nb: 22 # two\n");
    setValue(f.docs[0]!, ["a"], 1000);
    setValue(f.docs[0]!, ["b"], 3);
    expect(renderYamlFile(f)).toBe("a: 1000  # one\nb: 3 # two\n");
  });

  it("creates a map under an empty key", () => {
    const f = parseYamlFile("a.yaml", "metadata:\n  annotations:\n  name: x\n");
    setValue(f.docs[0]!, ["metadata", "annotations", "a"], "b");
    expect(parse(renderYamlFile(f))).toEqual({ metadata: { annotations: { a: "b" }, name: "x" } });
  });

  it("appends to a list, creating it when absent", () => {
    const f = parseYamlFile("a.yaml", "args:\n  - --a\n");
    appendValue(f.docs[0]!, ["args"], "--b");
    appendValue(f.docs[0]!, ["env"], { name: "X", value: "on" });
    const out = renderYamlFile(f);
    expect(parse(out)).toEqual({ args: ["--a", "--b"], env: [{ name: "X", value: "on" }] });
    expect(out).toContain('value: "on"');
  });

  it("keeps trailing blank lines and a missing final newline", () => {
    const f = parseYamlFile("a.yaml", "a: 1\n---\nb: 2");
    setValue(f.docs[1]!, ["c"], 3);
    expect(renderYamlFile(f)).toBe("a: 1\n---\nb: 2\nc: 3");
  });
});

describe("stringifyOptions", () => {
  it("detects indentation and whether list items are indented under their key", () => {
    expect(stringifyOptions("a:\n    b:\n    - x\n")).toMatchObject({ indent: 4, indentSeq: false });
    expect(stringifyOptions("a:\n  b:\n    - x\n")).toMatchObject({ indent: 2, indentSeq: true });
    expect(stringifyOptions("a: {b: 1}\n")).toMatchObject({ flowCollectionPadding: false });
    expect(stringifyOptions("a: { b: 1 }\n")).toMatchObject({ flowCollectionPadding: true });
  });
});
