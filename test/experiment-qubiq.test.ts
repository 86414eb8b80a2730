// `avap experiment` on QUBIQ data reports the challenge's score beside the paper's tables.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeQubiqSynth } from '../src/data/synthQubiq';
import { runExperiment } from '../src/experiment/experiment';
import { tmpDir } from './data-fixtures';

test('an experiment on a QUBIQ dataset writes qubiq.md and a qubiq entry per method, equal to scoring its submission', async () => {
  const root = tmpDir('experiment-qubiq');
  const synth = await writeQubiqSynth({ out: path.join(root, 'data'), variant: 'mr', cases: 8, train: 6, annotators: 3, size: 32, seed: 1 });
  const data = path.join(synth.out, synth.dataset);
  const out = path.join(root, 'out');
  const lines: string[] = [];
  const r = await runExperiment({
    data, out, methods: ['avap', 'mv-unet'], profile: 'quick', steps: 1, size: 32, encoder: 'resnet18', seed: 0, ablations: false,
    trainSplit: 'Training', testSplit: 'Validation', print: (l) => lines.push(l),
  });
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  assert.deepEqual(summary.methods.map((m: { id: string }) => m.id).sort(), ['avap', 'mv-unet']);
  for (const m of summary.methods) {
    assert.ok(m.qubiq.overall >= 0 && m.qubiq.overall <= 1, JSON.stringify(m.qubiq));
    assert.deepEqual(Object.keys(m.qubiq.per_task), ['task01', 'task02']);
    // The entry is the evaluation's own score of the run's submission, which lies beside it.
    const evaluated = JSON.parse(fs.readFileSync(path.join(m.evaluation, 'qubiq.json'), 'utf8'));
    assert.equal(m.qubiq.overall, evaluated.qubiq.overall);
    assert.equal(evaluated.cases, 2);
    assert.ok(fs.existsSync(path.join(m.evaluation, 'submission', synth.dataset, 'case02', 'task02.nii.gz')));
  }
  assert.ok(summary.tables.includes('qubiq.md'));
  const table = fs.readFileSync(path.join(out, 'qubiq.md'), 'utf8');
  assert.match(table, /\| method \| task01 \| task02 \| QUBIQ \| task01 Mean Voting \| task02 Mean Voting \|/);
  assert.equal(table.split('\n').filter((l) => /^\| (AVAP|MV-UNet)/i.test(l)).length, 2, table);
  assert.equal(r.methods.length, 2);
});
