import { copyFile, lstat, mkdir, rm } from "node:fs/promises";
import { dirname, join, normalize, sep } from "node:path";
import { repoKey } from "../../src/gitops/repo-url.ts";
import { invalid } from "../../src/shared/errors.ts";
import type { AgentRun } from "./agent.ts";
import { proposeChange, type SkillExecutorOptions } from "./skill.ts";

/**
 * Turns an agent's edits into a pull request without trusting the agent's clone: its .git (hooks,
 * filters, config) is never used with credentials. The changed files are copied, as plain files,
 * into a fresh clone, which is committed and pushed by proposeChange.
 */
export function agentPullRequest(opts: SkillExecutorOptions) {
  return async (run: AgentRun): Promise<unknown> => {
    if (!run.cloned || run.changedFiles.length === 0) return { changed: false, summary: "the agent changed no files" };
    const p = run.payload as { incidentId?: string; skill?: string; prompt: string; repoUrl?: string };
    // Files of another repository (a prompt task may name one from ALLOWED_REPOS) never become a
    // change of the GitOps repository.
    if (!p.repoUrl || repoKey(p.repoUrl) !== repoKey(opts.host.cloneUrl())) {
      return {
        changed: false,
        summary: `the agent worked in ${p.repoUrl ?? "an empty folder"}, not the GitOps repository: no pull request`,
      };
    }
    const id = p.incidentId ?? run.task.taskId;
    const skill = p.skill ?? `agent-${run.agent}`;
    return proposeChange(
      opts,
      {
        incidentId: id,
        skill,
        title: `[pitcrew] ${skill}: ${run.agent} change for ${id}`,
        commitMessage: `pitcrew: ${run.agent} change for ${id}`,
        body: (c) =>
          [
            `Pitcrew ran the coding agent \`${run.agent}\` for \`${id}\` and proposes its change.`,
            "",
            "**Prompt:**",
            "",
            ...p.prompt
              .slice(0, 4000)
              .split("\n")
              .map((l) => `> ${l}`),
            "",
            "Files:",
            ...c.files.map((f) => `- \`${f}\``),
          ].join("\n"),
      },
      run.ctx,
      async (fresh) => {
        const files: string[] = [];
        for (const f of run.changedFiles) {
          const rel = normalize(f);
          if (rel.startsWith("..") || rel.startsWith(sep) || rel === ".git" || rel.startsWith(`.git${sep}`))
            throw invalid("agent.bad_path", `the agent changed a path outside the repository: ${f}`);
          const src = join(run.repoDir, rel);
          const dst = join(fresh, rel);
          const st = await lstat(src).catch(() => undefined);
          if (!st) await rm(dst, { force: true });
          else if (st.isFile()) {
            await mkdir(dirname(dst), { recursive: true });
            await copyFile(src, dst);
          } else throw invalid("agent.bad_file", `the agent left ${f} as something other than a regular file`);
          files.push(rel);
        }
        return { files, summary: `${run.agent} changed ${files.length} file(s)`, details: { agent: run.agent } };
      },
    );
  };
}
