/**
 * An error caused by what the user passed in (a file, a flag, a shape), as opposed to a bug.
 * The CLI prints its message as one line and exits non-zero, without a stack trace, so the
 * message must name the file or flag and say what is wrong with it.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
