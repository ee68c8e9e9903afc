import { formatProblem, loadYamlFolder, type FileProblem } from "../shared/yaml-folder.ts";
import { Skill } from "./schema.ts";

export type SkillProblem = FileProblem;
/** `unreadableFolder`: the folder itself could not be listed, so `skills` says nothing about it. */
export type LoadedSkills = { skills: Skill[]; problems: SkillProblem[]; unreadableFolder?: boolean };

/**
 * Loads every *.yaml / *.yml in `dir`. A bad file is reported with its path, line and message and
 * skipped; the others still load. Two skills with one name: the second is a problem.
 */
export function loadSkills(dir: string): LoadedSkills {
  const loaded = loadYamlFolder(dir, Skill, { what: "skill", nameOf: (s) => s.name });
  return {
    skills: loaded.items.map((i) => i.item),
    problems: loaded.problems,
    ...(loaded.unreadableFolder && { unreadableFolder: true }),
  };
}

export { formatProblem };
