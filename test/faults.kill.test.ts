/**
 * Fault injection, part 3: `kill -9` at random moments of training, half of them while a weights,
 * optimiser or state file is being written, each followed by `--resume`, until the run completes.
 * The result must be bit-identical to an uninterrupted run, with no temp file left, a checkpoint
 * folder holding only what its state.json names, and a log that holds every round once plus one
 * 'resume' event per restart.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../src/util/random';
import { CLI, avapInProcess, canMountTmpfs, mountTmpfs, ok, sandbox, tempFiles } from './faults.helpers';

const root = sandbox('kill');
const data = path.join(root, 'data');
// Step 2 trains only the small preference head, so its checkpoints (optimiser state) are cheap to write.
const VARIATION_STEPS = 2;
const PREFERENCE_STEPS = 5;
const args = (out: string) => ['train', '--data', data, '--out', out, '--size', '32', '--encoder', 'resnet18', '--batch-size', '4', '--seed', '3', '--lr', '1e-3',
  '--threads', '1', '--steps', String(VARIATION_STEPS), '--preference-steps', String(PREFERENCE_STEPS)];
const KILLS = 10;

interface Kill {
  /** What the run was doing: the temp file being written, or 'training' for a random moment. */
  during: string;
  /** The checkpoint it resumes from. */
  checkpoint: string;
}

interface KillPlan {
  /** Wait until the process has committed a checkpoint of its own (so that the chain makes progress). */
  afterProgress: boolean;
  /** Kill while weights, optimiser state or state.json are being written; otherwise `delayMs` after progress. */
  atWrite: boolean;
  delayMs: number;
}

/** Runs `train` (resuming after the first time) and kills it as `plan` says; resolves with the kill, or null when it finished. */
function runAndMaybeKill(out: string, resume: boolean, plan: KillPlan): Promise<Kill | null> {
  const state = path.join(out, 'checkpoint', 'state.json');
  const mtime = () => (fs.existsSync(state) ? fs.statSync(state).mtimeMs : 0);
  const startedAt = mtime();
  const child = spawn(process.execPath, [CLI, ...args(out), ...(resume ? ['--resume'] : [])], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, AVAP_NUM_THREADS: '1', AVAP_CHECKPOINT_SECONDS: '0' } });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    let kill: Kill | null = null;
    let progressAt = 0;
    const timer = setInterval(() => {
      if (kill) return;
      if (!progressAt && (!plan.afterProgress || mtime() !== startedAt)) progressAt = Date.now();
      if (!progressAt) return;
      // This process's writes only (a temp name holds the writer's pid; a killed one's may still lie there).
      const writing = plan.atWrite ? tempFiles(out).filter((f) => f.includes(`.${child.pid}-`) && !path.basename(f).startsWith('.log.jsonl.')) : [];
      if ((plan.atWrite && writing.length > 0) || (!plan.atWrite && Date.now() - progressAt >= plan.delayMs)) {
        kill = { during: writing[0] ?? 'training', checkpoint: fs.existsSync(state) ? fs.readFileSync(state, 'utf8').replace(/\s+/g, ' ').slice(0, 40) : 'none' };
        child.kill('SIGKILL');
      }
    }, 1);
    child.on('exit', (code, signal) => {
      clearInterval(timer);
      if (kill && signal === 'SIGKILL') resolve(kill);
      else if (code === 0) resolve(null);
      else reject(new Error(`train exited ${code} (${signal}): ${stderr}`));
    });
  });
}

test(`kill -9 ${KILLS} times during training and checkpoint writing: every resume ends bit-identical`, async (t) => {
  ok(await avapInProcess(['synth', '--out', data, '--cases', '6', '--size', '32', '--annotators', '3', '--seed', '5']), 'synth');
  const reference = path.join(root, 'reference');
  // The uninterrupted run trains in this process's worker, alongside the killed chain (one thread each).
  const uninterrupted = avapInProcess(args(reference));

  // Checkpoints are written often: a tmpfs (when we may mount one) keeps the many fsyncs cheap.
  const disk = canMountTmpfs() === null ? mountTmpfs(root, 'fast', '1g') : null;
  try {
    const killed = path.join(disk?.dir ?? root, 'killed');
    const rng = Rng.from(20240601, 'kills');
    const kills: Kill[] = [];
    let resumedStarts = 0;
    // In turn: the first checkpoint or weights write of the restart (before it commits anything); a
    // random moment after a commit; the first write again; the next write after a commit. Then one
    // last run to the end.
    for (let attempt = 0; ; attempt++) {
      const plan: KillPlan = attempt >= KILLS ? { afterProgress: true, atWrite: false, delayMs: Infinity }
        : { afterProgress: attempt % 2 === 1, atWrite: attempt % 4 !== 1, delayMs: rng.int(300) };
      // Killed before its config.json was written, a run has nothing to resume: it is started again.
      const resume = fs.existsSync(path.join(killed, 'config.json'));
      if (resume) resumedStarts++;
      const kill = await runAndMaybeKill(killed, resume, plan);
      if (!kill) break;
      kills.push(kill);
    }
    ok(await uninterrupted, 'uninterrupted run');
    t.diagnostic(`${kills.length} kills: ${kills.map((k) => path.basename(k.during)).join(', ')}`);
    assert.equal(kills.length, KILLS, `only ${kills.length} kills before the run finished`);
    assert.ok(kills.filter((k) => k.during !== 'training').length >= KILLS / 2, 'most kills hit a file being written');

    assert.ok(fs.readFileSync(path.join(killed, 'model.safetensors')).equals(fs.readFileSync(path.join(reference, 'model.safetensors'))), 'model.safetensors is bit-identical to the uninterrupted run');
    const summary = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8'));
    assert.deepEqual(summary(killed).stages, summary(reference).stages);
    assert.deepEqual(summary(killed).validation, summary(reference).validation);
    assert.deepEqual(tempFiles(killed), [], 'no temp file left');
    const state = JSON.parse(fs.readFileSync(path.join(killed, 'checkpoint', 'state.json'), 'utf8'));
    assert.deepEqual(fs.readdirSync(path.join(killed, 'checkpoint')).sort(), ['state.json', state.weights, state.optimizer].filter(Boolean).sort(), 'the checkpoint holds only what state.json names');

    const log = fs.readFileSync(path.join(killed, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const rounds = log.filter((e) => e.event === 'round').map((e) => `${e.stage}${e.step}`);
    // Step 2 is cross-fitted over two folds before the final training (AVAP's preference gate).
    const stepsOf = (stage: string, steps: number) => Array.from({ length: steps }, (_, i) => `${stage}${i + 1}`);
    const expected = [...stepsOf('variation', VARIATION_STEPS), ...['preference-fold1', 'preference-fold2', 'preference'].flatMap((s) => stepsOf(s, PREFERENCE_STEPS))];
    assert.deepEqual(rounds, expected, 'every round logged once, in order');
    // Every kill comes after the restart logged its resumption (no kill targets the log's own rewrite).
    assert.equal(log.filter((e) => e.event === 'resume').length, resumedStarts, "one 'resume' event per restart");
    assert.deepEqual(log.filter((e) => e.event !== 'round' && e.event !== 'resume').map((e) => e.event), ['start', 'stageEnd', 'done']);
  } finally {
    disk?.unmount();
  }
});
