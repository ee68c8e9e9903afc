#!/usr/bin/env node
// Runs the compiled build (dist/, `npm run build`; `npm start` builds it when needed) when it is
// complete and no source is newer; otherwise the TypeScript sources through tsx's loader, so a
// checkout runs as it is and an edit is never shadowed by an old build. PITCREW_FROM_SOURCE=1
// always runs the sources (the test suite sets it).
import { distIsFresh } from "./build.mjs";

if (process.env.PITCREW_FROM_SOURCE !== "1" && distIsFresh()) {
  await import("../dist/src/main/cli.js");
} else {
  let tsx;
  try {
    tsx = await import("tsx/esm/api");
  } catch {
    process.stderr.write(
      "pitcrew: dist/ is missing or older than the sources, and tsx (a development dependency) is not installed: run npm run build\n",
    );
    process.exit(1);
  }
  tsx.register();
  await import("../src/main/cli.ts");
}
