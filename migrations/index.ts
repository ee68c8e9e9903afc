import type { Migration } from "kysely";
import * as m0001 from "./0001_init.ts";
import * as m0002 from "./0002_intake.ts";
import * as m0003 from "./0003_llm_usage.ts";

// Listed explicitly (not read from the folder) so the set is the same under tsx, a bundle or a
// Docker image, whatever the working directory.
export const migrations: Record<string, Migration> = {
  "0001_init": m0001,
  "0002_intake": m0002,
  "0003_llm_usage": m0003,
};
