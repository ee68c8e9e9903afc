import type { Migration } from "kysely";
import * as m0001 from "./0001_init.ts";
import * as m0002 from "./0002_intake.ts";
import * as m0003 from "./0003_llm_usage.ts";
import * as m0004 from "./0004_intake.ts";
import * as m0005 from "./0005_approvals.ts";
import * as m0006 from "./0006_lifecycle.ts";
import * as m0007 from "./0007_tasks.ts";
import * as m0008 from "./0008_notices.ts";
import * as m0009 from "./0009_approval_binding.ts";
import * as m0010 from "./0010_telegram.ts";
import * as m0011 from "./0011_console.ts";
import * as m0012 from "./0012_webhooks.ts";
import * as m0013 from "./0013_claims.ts";
import * as m0014 from "./0014_schedules.ts";

// Listed explicitly (not read from the folder) so the set is the same under tsx, a bundle or a
// Docker image, whatever the working directory.
export const migrations: Record<string, Migration> = {
  "0001_init": m0001,
  "0002_intake": m0002,
  "0003_llm_usage": m0003,
  "0004_intake": m0004,
  "0005_approvals": m0005,
  "0006_lifecycle": m0006,
  "0007_tasks": m0007,
  "0008_notices": m0008,
  "0009_approval_binding": m0009,
  "0010_telegram": m0010,
  "0011_console": m0011,
  "0012_webhooks": m0012,
  "0013_claims": m0013,
  "0014_schedules": m0014,
};
