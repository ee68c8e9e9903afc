import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { Skill } from "./schema.ts";

export type SkillProblem = { file: string; line: number; message: string };
/** `unreadableFolder`: the folder itself could not be listed, so `skills` says nothing about it. */
export type LoadedSkills = { skills: Skill[]; problems: SkillProblem[]; unreadableFolder?: boolean };

/**
 * Loads every *.yaml / *.yml in `dir`. A bad file is reported with its path, line and message and
 * skipped; the others still load. Two skills with one name: the second is a problem.
 */
export function loadSkills(dir: string): LoadedSkills {
  const skills: Skill[] = [];
  const problems: SkillProblem[] = [];
  let names: string[];
  try {
    names = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { skills, problems: [{ file: dir, line: 0, message: code === "ENOENT" ? "skills folder not found" : `skills folder cannot be read (${code ?? "error"})` }], unreadableFolder: true };
  }
  for (const name of names) {
    const file = join(dir, name);
    const rel = relative(process.cwd(), file);
    const shown = rel && !rel.startsWith("..") ? rel : file;
    // One file that cannot be read (a dangling link, no permission, removed meanwhile) is a problem
    // of that file only: the others still load.
    let text: string;
    try {
      if (!statSync(file).isFile()) continue;
      text = readFileSync(file, "utf8");
    } catch (err) {
      problems.push({ file: shown, line: 0, message: `cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})` });
      continue;
    }
    const lc = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
    if (doc.errors.length > 0) {
      const e = doc.errors[0]!;
      problems.push({ file: shown, line: lc.linePos(e.pos[0]).line, message: e.message.split("\n")[0]! });
      continue;
    }
    const parsed = Skill.safeParse(doc.toJS());
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        // Point at the deepest node of the path that exists in the file.
        let line = 1;
        for (let n = issue.path.length; n >= 0; n--) {
          const node = doc.getIn(issue.path as (string | number)[], true) as { range?: [number, number, number] } | undefined;
          const p = n === issue.path.length ? node : (doc.getIn(issue.path.slice(0, n) as (string | number)[], true) as typeof node);
          if (p?.range) {
            line = lc.linePos(p.range[0]).line;
            break;
          }
        }
        const where = issue.path.length ? `${issue.path.join(".")}: ` : "";
        problems.push({ file: shown, line, message: `${where}${issue.message}` });
      }
      continue;
    }
    if (skills.some((s) => s.name === parsed.data.name)) {
      problems.push({ file: shown, line: 1, message: `skill "${parsed.data.name}" is defined twice` });
      continue;
    }
    skills.push(parsed.data);
  }
  return { skills, problems };
}

export function formatProblem(p: SkillProblem): string {
  return `${p.file}:${p.line}: ${p.message}`;
}
