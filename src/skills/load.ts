import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { Skill } from "./schema.ts";

export type SkillProblem = { file: string; line: number; message: string };
export type LoadedSkills = { skills: Skill[]; problems: SkillProblem[] };

/**
 * Loads every *.yaml / *.yml in `dir`. A bad file is reported with its path, line and message and
 * skipped; the others still load. Two skills with one name: the second is a problem.
 */
export function loadSkills(dir: string): LoadedSkills {
  const skills: Skill[] = [];
  const problems: SkillProblem[] = [];
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .sort()
      .map((f) => join(dir, f))
      .filter((f) => statSync(f).isFile());
  } catch {
    return { skills, problems: [{ file: dir, line: 0, message: "skills folder not found" }] };
  }
  for (const file of files) {
    const rel = relative(process.cwd(), file);
    const shown = rel && !rel.startsWith("..") ? rel : file;
    const text = readFileSync(file, "utf8");
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
