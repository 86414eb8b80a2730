// Containment: paths taken from files and names the user does not fully control (CSV rows, image
// file names, symbolic links) must stay inside the folder they belong to.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileNameProblem } from './names';

/** True when `p` is `root` or lies below it, after resolving '.' and '..' (lexically: links are not followed). */
export function isInside(root: string, p: string): boolean {
  const rel = path.relative(path.resolve(root), path.resolve(p));
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/**
 * The real location of `p` with every symbolic link resolved; for a path that does not exist yet,
 * its nearest existing ancestor's real location plus the rest.
 */
export function realLocation(p: string): string {
  let head = path.resolve(p);
  const tail: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(head), ...tail);
    } catch {
      const parent = path.dirname(head);
      if (parent === head) return path.join(head, ...tail);
      tail.unshift(path.basename(head));
      head = parent;
    }
  }
}

/** True when `p`, with symbolic links followed, is inside `root` (itself resolved the same way). */
export function resolvesInside(root: string, p: string): boolean {
  return isInside(realLocation(root), realLocation(p));
}

/** A name usable as one path component (the rule of src/io/names.ts). */
/** A folder, a link to one included; false for anything else, or nothing. */
export function isFolder(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function isSafePathComponent(name: string): boolean {
  return fileNameProblem(name) === null;
}
