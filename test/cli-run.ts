// The CLI as a user runs it: a child process on one torch thread, its exit status and output.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');

export interface CliRun { code: number | null; stdout: string; stderr: string }

export function avap(...args: string[]): CliRun {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, AVAP_NUM_THREADS: '1' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The command's stdout, after asserting it succeeded. */
export function ok(r: CliRun): string {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}
