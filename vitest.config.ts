import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    reporters: ["default", "./test/helpers/summary-reporter.ts"],
    // Integration suites spawn processes and talk to real servers: two at a time on two cores.
    maxWorkers: 2,
    pool: "forks",
    projects: [
      {
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "runner/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // expect.poll waits for an outcome (a page updated live, a row written): 1 s, the default,
          // is too short on a loaded 2-core machine; a poll still ends as soon as it passes.
          expect: { poll: { timeout: 15_000, interval: 50 } },
        },
      },
    ],
  },
});
