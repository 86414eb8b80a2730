// File-system failures (a full disk, a folder without write permission, a file where a folder
// should be) as one line that names the path and the cause, for people rather than for debuggers.

const CAUSES: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for the file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EEXIST: 'a file or folder of that name already exists',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'is a folder, not a file',
  ENOENT: 'no such file or folder',
  ENOTEMPTY: 'folder is not empty',
  ENAMETOOLONG: 'file name too long',
  ELOOP: 'too many levels of symbolic links',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files',
  EIO: 'input/output error',
  EBUSY: 'resource busy',
  EXDEV: 'cannot rename across file systems',
};

/** What the failed call was doing, by Node's `syscall` name. */
const ACTIONS: Record<string, string> = {
  open: 'opening', write: 'writing', fsync: 'writing', close: 'writing', read: 'reading', mkdir: 'creating folder',
  rename: 'renaming', unlink: 'removing', rmdir: 'removing', rm: 'removing', scandir: 'listing', opendir: 'listing',
  stat: 'reading', lstat: 'reading', access: 'accessing', copyfile: 'copying', realpath: 'resolving', chmod: 'changing', utime: 'changing',
};

/** A Node file-system error (it has an errno code such as 'ENOSPC'), as opposed to any other failure. */
export function isFsError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && (err as NodeJS.ErrnoException).code! in CAUSES;
}

/**
 * "no space left on device writing RUN/model.safetensors". `file` and `action` override what the
 * error says (an atomic write fails on its temporary name, but the user asked for the final one).
 */
export function describeFsError(err: NodeJS.ErrnoException, file?: string, action?: string): string {
  const code = err.code ?? '';
  const cause = CAUSES[code] ?? firstLine(err.message);
  const verb = action ?? ACTIONS[err.syscall ?? ''] ?? err.syscall ?? 'accessing';
  const where = file ?? err.path;
  const dest = (err as { dest?: string }).dest;
  const target = where === undefined ? '' : ` ${where}${dest && file === undefined ? ` to ${dest}` : ''}`;
  return `${cause} ${verb}${target}${code && CAUSES[code] ? ` (${code})` : ''}`;
}

function firstLine(text: string): string {
  return text.split('\n')[0].trim();
}
