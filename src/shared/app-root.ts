import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The installation's root folder (package.json, bin/, skills/): the nearest folder above this file
 * that holds a package.json, so it is the same from the sources (src/shared/) and from the build
 * (dist/src/shared/).
 */
export const APP_ROOT: string = findRoot(dirname(fileURLToPath(import.meta.url)));

function findRoot(dir: string): string {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, "package.json"))) return d;
    if (dirname(d) === d) throw new Error(`no package.json above ${dir}`);
  }
}
