import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { UserError } from '../src/errors';
import { LRSchedule, cosineLR, learningRateAt, polyLR, stepLR } from '../src/train/schedule';

function close(actual: number, expected: number, tol = 1e-15, what = ''): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} (tolerance ${tol})`);
}

test('polyLR matches hand-computed values (nnU-Net poly, clamped at the end)', () => {
  assert.equal(polyLR(0.01, 0, 100), 0.01);
  close(polyLR(0.01, 50, 100), 0.01 * Math.pow(0.5, 0.9));
  close(polyLR(1, 25, 100, 1), 0.75);
  close(polyLR(2, 50, 100, 2), 0.5);
  assert.equal(polyLR(0.01, 100, 100), 0);
  assert.equal(polyLR(0.01, 150, 100), 0, 'past the end stays at 0 instead of NaN');
  assert.equal(polyLR(0.01, 7, 100, 0), 0.01, 'power 0 is a constant rate');
});

test('cosineLR matches hand-computed values', () => {
  assert.equal(cosineLR(0.1, 0, 10), 0.1);
  close(cosineLR(0.1, 5, 10), 0.05);
  close(cosineLR(0.1, 5, 10, 0.02), 0.06);
  close(cosineLR(1, 1, 3), 0.75); // (1 + cos(pi/3)) / 2
  close(cosineLR(1, 2, 3), 0.25);
  close(cosineLR(0.1, 10, 10, 0.01), 0.01);
  close(cosineLR(0.1, 20, 10, 0.01), 0.1, 1e-15, 'periodic like torch: back at the base after 2 * T_max');
});

test('stepLR matches hand-computed values', () => {
  assert.equal(stepLR(1, 0, 2, 0.5), 1);
  assert.equal(stepLR(1, 1, 2, 0.5), 1);
  assert.equal(stepLR(1, 2, 2, 0.5), 0.5);
  assert.equal(stepLR(1, 5, 2, 0.5), 0.25);
  close(stepLR(0.1, 9, 3), 1e-4, 1e-18); // default gamma 0.1
});

/*
 * Reference values from PyTorch 1.13 (Debian python3-torch), produced by:
 *
 *   p = torch.nn.Parameter(torch.zeros(1)); opt = torch.optim.SGD([p], lr=BASE); s = SCHEDULER(opt)
 *   for _ in range(N + 1): record(opt.param_groups[0]['lr']); opt.step(); s.step()
 *
 * so entry k is the rate after k scheduler steps. torch updates these recursively (chained form),
 * which differs from the closed form by rounding only, hence the small tolerance.
 */
const TORCH_TABLES: { what: string; schedule: LRSchedule; baseLr: number; totalSteps: number; lrs: number[] }[] = [
  {
    what: 'PolynomialLR(total_iters=10, power=0.9), lr=0.01',
    schedule: { kind: 'poly', power: 0.9 },
    baseLr: 0.01,
    totalSteps: 10,
    lrs: [
      0.01, 0.009095325760829623, 0.008180521460508584, 0.007254178469372199, 0.006314458674893553, 0.0053588673126814665,
      0.00438383290554087, 0.003383834619016499, 0.002349237886176038, 0.0012589254117941673, 0.0, 0.0, 0.0,
    ],
  },
  {
    what: 'CosineAnnealingLR(T_max=10, eta_min=0.001), lr=0.01, run past T_max',
    schedule: { kind: 'cosine', minLr: 0.001 },
    baseLr: 0.01,
    totalSteps: 10,
    lrs: [
      0.01, 0.009779754323328192, 0.009140576474687263, 0.008145033635316129, 0.006890576474687263, 0.0055, 0.004109423525312737,
      0.0028549663646838712, 0.001859423525312737, 0.001220245676671809, 0.001, 0.001220245676671809, 0.0018594235253127397,
      0.002854966364683878, 0.004109423525312749, 0.005500000000000018, 0.006890576474687287, 0.008145033635316157,
      0.009140576474687297, 0.009779754323328227, 0.010000000000000037, 0.009779754323328227, 0.009140576474687297,
      0.008145033635316157, 0.006890576474687286, 0.005500000000000017,
    ],
  },
  {
    what: 'CosineAnnealingLR(T_max=7), lr=0.1',
    schedule: { kind: 'cosine' },
    baseLr: 0.1,
    totalSteps: 7,
    lrs: [
      0.1, 0.09504844339512096, 0.08117449009293669, 0.061126046697815725, 0.03887395330218429, 0.018825509907063328,
      0.004951556604879048, 0.0, 0.004951556604879043,
    ],
  },
  {
    what: 'StepLR(step_size=3, gamma=0.5), lr=0.1',
    schedule: { kind: 'step', stepSize: 3, gamma: 0.5 },
    baseLr: 0.1,
    totalSteps: 10,
    lrs: [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125],
  },
  {
    what: 'StepLR(step_size=2), lr=1e-4',
    schedule: { kind: 'step', stepSize: 2 },
    baseLr: 1e-4,
    totalSteps: 7,
    lrs: [0.0001, 0.0001, 1e-5, 1e-5, 1.0000000000000002e-6, 1.0000000000000002e-6, 1.0000000000000002e-7, 1.0000000000000002e-7],
  },
];

test('learningRateAt reproduces torch.optim.lr_scheduler step by step', () => {
  for (const { what, schedule, baseLr, totalSteps, lrs } of TORCH_TABLES) {
    lrs.forEach((expected, step) => close(learningRateAt(schedule, baseLr, step, totalSteps), expected, 1e-12 * baseLr, `${what} step ${step}`));
  }
});

test('learningRateAt dispatches with the documented defaults', () => {
  assert.equal(learningRateAt({ kind: 'constant' }, 3e-4, 12345, 10), 3e-4);
  assert.equal(learningRateAt({ kind: 'poly' }, 0.01, 30, 100), polyLR(0.01, 30, 100, 0.9));
  assert.equal(learningRateAt({ kind: 'cosine' }, 0.01, 30, 100), cosineLR(0.01, 30, 100, 0));
  assert.equal(learningRateAt({ kind: 'step', stepSize: 10 }, 0.01, 30, 100), stepLR(0.01, 30, 10, 0.1));
  close(learningRateAt({ kind: 'poly' }, 0.01, 2.5, 10), 0.01 * Math.pow(0.75, 0.9), 1e-15, 'fractional steps (epoch fractions) are fine');
});

test('bad settings are UserErrors naming the schedule; bad steps are RangeErrors', () => {
  const userError = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, (err: unknown) => err instanceof UserError && pattern.test(err.message) && !err.message.includes('\n'));
  userError(() => polyLR(0.01, 0, 0), /'poly': total steps must be a positive integer, got 0/);
  userError(() => cosineLR(0.01, 0, 2.5), /'cosine': total steps must be a positive integer, got 2.5/);
  userError(() => polyLR(0.01, 0, 10, -1), /'poly': power must be >= 0/);
  userError(() => cosineLR(0.01, 0, 10, NaN), /'cosine': minLr must be a finite number/);
  userError(() => stepLR(0.01, 0, 0), /'step': stepSize must be a positive integer, got 0/);
  userError(() => stepLR(0.01, 0, 3, 0), /'step': gamma must be > 0/);
  userError(() => learningRateAt({ kind: 'linear' } as unknown as LRSchedule, 0.01, 0, 10), /unknown kind "linear"/);
  assert.throws(() => polyLR(0.01, -1, 10), RangeError);
  assert.throws(() => learningRateAt({ kind: 'constant' }, 0.01, NaN, 10), RangeError);
});
