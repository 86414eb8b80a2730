// The one progress bar of every command: on stderr, only when it is a terminal (never in pipes, logs or
// tests), started on the first update so that the total is known.
import { SingleBar } from 'cli-progress';

export interface ProgressBar {
  /** `detail` is shown after the counts, e.g. 'loss 0.1234'. */
  update(done: number, total: number, detail?: string): void;
  stop(): void;
}

const NO_BAR: ProgressBar = { update: () => undefined, stop: () => undefined };

export function progressBar(label: string, enabled: boolean = process.stderr.isTTY === true): ProgressBar {
  if (!enabled) return NO_BAR;
  const bar = new SingleBar({ format: `${label} |{bar}| {value}/{total} {detail} ETA {eta_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: true });
  let started = false;
  return {
    update(done, total, detail = '') {
      if (!started) {
        bar.start(total, 0, { detail });
        started = true;
      }
      bar.setTotal(total);
      bar.update(done, { detail });
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

/** Runs `work` with a bar fed by its (done, total) callback. */
export async function withProgress<T>(label: string, work: (onProgress: (done: number, total: number) => void) => Promise<T>, enabled?: boolean): Promise<T> {
  const bar = progressBar(label, enabled);
  try {
    return await work((done, total) => bar.update(done, total));
  } finally {
    bar.stop();
  }
}
