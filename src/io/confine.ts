// Every file a command writes lies inside the folder the user named for it. A path built from names
// (validated where they are read, src/io/names.ts) is checked again where it is written, after '..'
// and after symbolic links: a link already inside the folder must not carry a write out of it.
import * as path from 'node:path';
import { UserError } from '../errors';
import { isInside, resolvesInside } from './paths';

/** Throws one line naming `flag` when `p` lies outside `root`, lexically or through a symbolic link. */
export function checkStaysInside(flag: string, root: string, p: string): void {
  if (!isInside(root, p) || !resolvesInside(root, p)) {
    throw new UserError(`${flag}: ${p} leads outside ${root} (through '..' or a symbolic link); ${flag} writes only inside ${root}`);
  }
}

/** `root`/`parts…`, refused by checkStaysInside when it would leave `root`. */
export function pathInside(flag: string, root: string, ...parts: string[]): string {
  const p = path.join(root, ...parts);
  checkStaysInside(flag, root, p);
  return p;
}
