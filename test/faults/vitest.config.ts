import { join } from "node:path";
import { defineConfig } from "vitest/config";

// The fault suite (`npm run test:faults`): real processes killed, servers stopped, connections
// cut, thousands of payloads. Not part of `npm test`; .ci/run runs it after the tests. One file at
// a time: each one loads the machine on its own, and its counts must not depend on a neighbour.
export default defineConfig({
  root: join(import.meta.dirname, "..", ".."),
  test: {
    name: "faults",
    include: ["test/faults/**/*.test.ts"],
    environment: "node",
    pool: "forks",
    fileParallelism: false,
    reporters: ["default", "./test/helpers/summary-reporter.ts"],
    testTimeout: 180_000,
    hookTimeout: 90_000,
  },
});
