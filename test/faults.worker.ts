/**
 * The CLI's main() in a worker thread, for the fault tables: one engine load for many commands, and
 * what a command writes to stdout and stderr is captured here, away from the test runner's own output.
 * Loaded by faults.helpers.ts; as a test file on its own (the runner loads every file in test/) it does nothing.
 */
import { parentPort } from 'node:worker_threads';

if (parentPort) {
  const port = parentPort;
  port.on('message', async (request: { id: number; argv: string[] }) => {
    const captured = { stdout: '', stderr: '' };
    const originals = { stdout: process.stdout.write, stderr: process.stderr.write };
    for (const name of ['stdout', 'stderr'] as const) {
      (process[name] as unknown as { write: (...a: unknown[]) => boolean }).write = (chunk: unknown, ...rest: unknown[]) => {
        captured[name] += typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
        (rest.find((x) => typeof x === 'function') as (() => void) | undefined)?.();
        return true;
      };
    }
    let code: number;
    try {
      const { main } = await import('../src/cli/main');
      code = await main(request.argv);
    } catch (err) {
      captured.stderr += `uncaught: ${(err as Error).stack}\n`;
      code = 70;
    } finally {
      process.stdout.write = originals.stdout;
      process.stderr.write = originals.stderr;
    }
    port.postMessage({ id: request.id, code, ...captured });
  });
}
