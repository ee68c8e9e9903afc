import type { Kysely } from "kysely";

// Tokens the Claude planner spent on each incident, summed over its calls.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("incidents")
    .addColumn("llm_calls", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable("incidents")
    .addColumn("llm_input_tokens", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable("incidents")
    .addColumn("llm_output_tokens", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const c of ["llm_output_tokens", "llm_input_tokens", "llm_calls"])
    await db.schema.alterTable("incidents").dropColumn(c).execute();
}
