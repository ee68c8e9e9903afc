// Types of bin/build.mjs, for TypeScript callers (bench/startup.ts).
export const ROOT: string;
export const DIST: string;
/** `root`: the installation to look at (default: this one). */
export function distIsFresh(root?: string): boolean;
export function build(): Promise<void>;
