// The training settings table: the library's defaults, the CLI's flags and what --resume compares all
// come from it.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Command } from 'commander';
import { UserError } from '../src/errors';
import { registerTrainCommand } from '../src/cli/train';
import { TRAIN_DEFAULTS, TRAINING_SETTINGS, resultShapingSettings } from '../src/train/settings';
import { settingsOf } from '../src/train/fingerprint';

test('the defaults are the table\'s: every setting without one is optional in TrainSettings', () => {
  assert.deepEqual(Object.keys(TRAIN_DEFAULTS).sort(), [
    'augment', 'batchSize', 'device', 'emptySliceRate', 'encoder', 'featureChannels', 'lr', 'method', 'normalization', 'precision', 'resume', 'schedule', 'seed', 'size', 'steps', 'valFraction', 'weightDecay',
  ]);
  for (const s of TRAINING_SETTINGS) assert.equal((TRAIN_DEFAULTS as Record<string, unknown>)[s.key], s.default, s.key);
});

test('each value flag refuses text it cannot read in one line naming the flag', () => {
  const bad: Record<string, string> = { '--size': '33.5', '--batch-size': '0', '--lr': 'fast', '--weight-decay': '-1', '--schedule': 'step', '--steps': '-3', '--encoder': 'vgg', '--seed': 'x', '--val-fraction': '1.5', '--normalization': 'z', '--precision': 'fp16', '--slice-axis': 'w', '--empty-slice-rate': '2', '--device': 'gpu' };
  for (const s of TRAINING_SETTINGS) {
    if (s.cli.form !== 'value' || !(s.flag in bad)) continue;
    const parse = s.cli.parse;
    assert.throws(() => parse(bad[s.flag]), (e: Error) => e instanceof UserError && e.message.startsWith(`${s.flag} `) && !e.message.includes('\n'), s.flag);
  }
  assert.equal(Object.keys(bad).length, TRAINING_SETTINGS.filter((s) => s.cli.form === 'value' && s.key !== 'split' && s.key !== 'method' && s.key !== 'pretrained').length, 'every checked value flag has a bad value here');
});

test('avap train offers exactly the table\'s flags (besides --data, --out, --threads and the methods\' own)', () => {
  const program = new Command();
  registerTrainCommand(program);
  const train = program.commands.find((c) => c.name() === 'train')!;
  const offered = train.options.map((o) => o.long!);
  for (const s of TRAINING_SETTINGS) {
    const expected = s.cli.form === 'none' ? null : s.cli.form === 'negated' ? `--no-${s.flag.slice(2)}` : s.flag;
    if (expected) assert.ok(offered.includes(expected), `${expected} is a flag of avap train`);
    else assert.ok(!offered.includes(s.flag), `${s.flag} is set by the library only`);
  }
});

test('the fingerprint records exactly the result-shaping settings, by flag', () => {
  const flags = resultShapingSettings().map((s) => s.flag);
  assert.ok(flags.includes('--seed') && flags.includes('--augment') && !flags.includes('--resume') && !flags.includes('--feature-channels'));
  const recorded = settingsOf({ ...TRAIN_DEFAULTS, data: 'd', out: 'o', method: 'mv-unet', split: 'train' });
  assert.deepEqual(Object.keys(recorded).sort(), flags.filter((f) => !['--subset', '--pretrained', '--slice-axis'].includes(f)).sort());
  assert.equal(recorded['--augment'], true);
  assert.equal(recorded['--split'], 'train');
});
