// Training budgets count optimiser steps, validated in rounds; a validation set too small to choose
// weights by is not used to choose them.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSynthDataset } from '../src/data/synth';
import { CaseRecord } from '../src/data/dataset';
import { UserError } from '../src/errors';
import { roundEnds, ROUNDS_PER_STAGE } from '../src/train/loop';
import { RunDir } from '../src/train/run';
import { holdOut, validationCount } from '../src/train/setup';
import { train } from '../src/train/trainer';
import { MIN_SELECTION_CASES } from '../src/train/validate';

test('validation cases held out: auto keeps 10% only when that makes enough to choose weights by', () => {
  const table: [number, number | 'auto', number][] = [
    [30, 'auto', 0], [150, 'auto', 0], [190, 'auto', 0], [195, 'auto', 20], [200, 'auto', 20], [655, 'auto', 66],
    [30, 0.1, 3], [30, 0, 0], [1, 0.5, 0], [2, 0.5, 1], [10, 0.95, 9],
  ];
  for (const [n, fraction, expected] of table) assert.equal(validationCount(n, fraction), expected, `${n} cases, --val-fraction ${fraction}`);
  assert.equal(MIN_SELECTION_CASES, 20);
  assert.throws(() => validationCount(10, 1), (e: Error) => e instanceof UserError && /--val-fraction must be 'auto' or a number in \[0, 1\), got 1/.test(e.message));
  const cases = Array.from({ length: 40 }, (_, i) => ({ id: `c${i}` }) as CaseRecord);
  const a = holdOut(cases, 0.25, 7);
  assert.equal(a.val.length, 10);
  assert.equal(a.train.length + a.val.length, 40);
  assert.deepEqual(holdOut(cases, 0.25, 7).val.map((c) => c.id), a.val.map((c) => c.id), 'deterministic under the seed');
  assert.notDeepEqual(holdOut(cases, 0.25, 8).val.map((c) => c.id), a.val.map((c) => c.id));
  assert.equal(holdOut(cases, 'auto', 7).val.length, 0);
});

test('a stage of N steps is validated in evenly spread rounds, the last ending at N', () => {
  assert.deepEqual(roundEnds(1), [1]);
  assert.deepEqual(roundEnds(3), [1, 2, 3]);
  assert.deepEqual(roundEnds(100), Array.from({ length: 20 }, (_, r) => 5 * (r + 1)));
  const ends = roundEnds(333);
  assert.equal(ends.length, ROUNDS_PER_STAGE);
  assert.equal(ends.at(-1), 333);
  assert.ok(ends.every((e, i) => i === 0 || e > ends[i - 1]));
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-budget-'));
const quiet = { method: 'mv-unet', size: 32, batchSize: 4, encoder: 'resnet18', lr: 1e-3, progress: false, print: () => undefined };

test('without enough validation cases the final weights are kept; with enough, the best round', async () => {
  const data = path.join(tmp, 'data');
  await writeSynthDataset({ out: data, cases: 26, train: 25, annotators: 2, size: 32, seed: 1 });
  const notes: string[] = [];
  const few = await train({ ...quiet, data, out: path.join(tmp, 'few'), steps: 3, valFraction: 0.2, onEvent: (e) => e.type === 'note' && notes.push(e.text) });
  assert.equal(few.validationCases, 5);
  assert.deepEqual(few.stages.map((s) => [s.selected, s.selectedStep]), [['last', 3]]);
  assert.ok(few.validation !== null, 'the few validation cases are still scored');
  assert.ok(notes.some((n) => /5 validation cases held out: too few to choose weights by \(fewer than 20\)/.test(n)), notes.join('\n'));

  const none = await train({ ...quiet, data, out: path.join(tmp, 'none'), steps: 2, onEvent: (e) => e.type === 'note' && notes.push(e.text) });
  assert.equal(none.validationCases, 0);
  assert.equal(none.validation, null);
  assert.ok(notes.some((n) => /no validation cases held out: 10% of 25 is fewer than 20.*training on all 25/.test(n)));
  assert.equal(JSON.parse(fs.readFileSync(path.join(tmp, 'none', 'config.json'), 'utf8')).data.trainCases.length, 25);

  const many = await train({ ...quiet, data, out: path.join(tmp, 'many'), steps: 4, valFraction: 0.85 });
  assert.equal(many.validationCases, 21);
  assert.equal(many.stages[0].selected, 'best');
  const log = fs.readFileSync(path.join(tmp, 'many', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'round');
  const best = Math.max(...log.map((e) => (e.val.mean_voting as number)));
  assert.equal(many.stages[0].score, best, 'the kept weights are the best-scoring round');
  assert.equal(many.stages[0].selectedStep, log.find((e) => e.val.mean_voting === best).step);
});

test('a run folder of another config version is refused in one line by every reader of runs', async () => {
  const data = path.join(tmp, 'data');
  const run = path.join(tmp, 'none');
  for (const version of [1, 3, null]) {
    const other = path.join(tmp, `version-${version}`);
    fs.cpSync(run, other, { recursive: true });
    const config = JSON.parse(fs.readFileSync(path.join(other, 'config.json'), 'utf8'));
    config.version = version;
    fs.writeFileSync(path.join(other, 'config.json'), JSON.stringify(config));
    const refused = (e: Error) => e instanceof UserError && !e.message.includes('\n')
      && new RegExp(`config\\.json: a run written by another version of avap \\(run config version ${version}; this avap reads version 2\\)`).test(e.message);
    assert.throws(() => new RunDir(other).readConfig(), refused);
    await assert.rejects(train({ ...quiet, data, out: other, resume: true }), refused);
  }
});
