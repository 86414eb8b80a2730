// Tensor lifetimes: tidy(), keep(), dispose() and memory(), and a 1000-step training loop whose native
// tensor count, native bytes and process RSS must stay flat.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import {
  F, Generator, Tensor, dispose, keep, manualSeed, memory, nn, noGrad, ones, optim, randint, randn, setNumThreads, tensor, tidy, zeros,
} from '../src/torch';

// These tests run thousands of tiny ops; with two intra-op threads on a loaded 2-core machine every op
// waits for the second thread to be scheduled (measured: 1000 small training steps 10 s instead of 1.3 s).
// One thread keeps the suite fast; the multi-threaded kernels get their own check in torch-ops.
setNumThreads(1);

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

test('tidy disposes intermediates and keeps what it returns, directly or inside arrays and objects', () => {
  const base = memory();
  let inner: Tensor[] = [];
  const out = tidy(() => {
    const a = ones([10]);
    const b = a.mul(2);
    const c = b.add(1);
    inner = [a, b];
    return { single: c, list: [b, [c.mean()]], nested: { deeper: { t: a.neg() } }, map: new Map([['k', a.exp()]]), n: 3 };
  });
  assert.ok(inner[0].isDisposed, 'a intermediate is disposed');
  assert.ok(!inner[1].isDisposed, 'b was returned inside an array, so it lives');
  assert.equal(out.single.isDisposed, false);
  tidy(() => {
    assert.equal((out.list[0] as Tensor).sum().item(), 20);
    assert.equal(((out.list[1] as Tensor[])[0]).item(), 3);
    assert.equal(out.nested.deeper.t.sum().item(), -10);
  });
  assert.equal(out.map.get('k')!.isDisposed, false);
  assert.equal(out.n, 3);
  // live now: the returned c, b, c.mean(), a.neg(), a.exp() (the sums above died with their tidy)
  assert.equal(memory().tensors - base.tensors, 5);
  out.map.get('k')!.dispose(); // dispose() below does not look inside Maps' keys but does their values; check it on its own
  assert.equal(memory().tensors - base.tensors, 4);
  dispose([out, inner]);
  assert.deepEqual(memory(), base);
});

test('nested tidy moves returned tensors to the parent scope, which disposes them unless it returns them too', () => {
  const base = memory();
  let fromInner: Tensor | null = null;
  const kept = tidy(() => {
    fromInner = tidy(() => ones([3]).mul(5));
    assert.equal(fromInner.isDisposed, false, 'alive after the inner scope');
    const survivor = tidy(() => zeros([2]).add(1));
    return survivor;
  });
  assert.equal(fromInner!.isDisposed, true, 'the outer scope disposed what it did not return');
  assert.deepEqual(Array.from(kept.data() as Float32Array), [1, 1]);
  kept.dispose();
  assert.deepEqual(memory(), base);
  // a tensor created outside any tidy is untouched by one that uses it
  const outside = ones([2]);
  tidy(() => void outside.add(1));
  assert.equal(outside.isDisposed, false);
  outside.dispose();
  assert.deepEqual(memory(), base);
});

test('keep() survives every enclosing tidy until disposed explicitly', () => {
  const base = memory();
  const [deep, shallow, loose] = tidy(() => {
    const d = tidy(() => tidy(() => keep(ones([4]).mul(3))));
    const s = keep(ones([1]));
    ones([2]); // neither kept nor returned
    return [d, s, null];
  });
  assert.equal(loose, null);
  assert.equal(deep!.isDisposed, false);
  assert.equal(shallow!.isDisposed, false);
  const inner: Tensor[] = [];
  tidy(() => {
    inner.push(keep(ones([2])), ones([2]));
    return null;
  });
  assert.deepEqual(inner.map((x) => x.isDisposed), [false, true]);
  assert.equal(memory().tensors, base.tensors + 3, 'the three kept tensors live');
  dispose([deep, shallow, inner]);
  assert.deepEqual(memory(), base);
});

test('an exception inside tidy disposes the scope\'s tensors (but not kept ones) and propagates', () => {
  const base = memory();
  const seen: Tensor[] = [];
  assert.throws(() => tidy(() => {
    seen.push(ones([100]), keep(ones([3])));
    seen.push(tidy(() => ones([5])));
    throw new Error('boom');
  }), /^Error: boom$/);
  assert.equal(seen[0].isDisposed, true);
  assert.equal(seen[1].isDisposed, false);
  assert.equal(seen[2].isDisposed, true, 'moved to the failing parent scope, then disposed with it');
  seen[1].dispose();
  assert.deepEqual(memory(), base);
  // an op error inside tidy behaves the same
  assert.throws(() => tidy(() => ones([2, 3]).matmul(ones([2, 3]))), /^Error: matmul: /);
  assert.deepEqual(memory(), base);
  // tidy refuses async functions
  assert.throws(() => tidy(() => Promise.resolve(1)), /^Error: tidy: the function must be synchronous/);
});

test('memory() counts live tensors and the bytes they own; views and disposal are accounted for', () => {
  const base = memory();
  const a = zeros([1000]);
  assert.deepEqual(memory(), { tensors: base.tensors + 1, bytes: base.bytes + 4000 });
  const d = zeros([10, 10], { dtype: 'float64' });
  assert.equal(memory().bytes, base.bytes + 4000 + 800);
  const view = a.reshape([10, 100]); // a view: shares a's storage, counted once
  assert.deepEqual(memory(), { tensors: base.tensors + 3, bytes: base.bytes + 4800 });
  view.dispose();
  view.dispose(); // a second dispose is a no-op
  d.dispose();
  assert.deepEqual(memory(), { tensors: base.tensors + 1, bytes: base.bytes + 4000 });
  a.dispose();
  assert.deepEqual(memory(), base);
  // reading .grad hands out a handle that tidy collects
  const p = keep(tensor([1, 2]).requiresGrad_());
  tidy(() => p.mul(p).sum().backward());
  const afterBackward = memory();
  tidy(() => void p.grad!.sum().item());
  assert.deepEqual(memory(), afterBackward);
  p.dispose();
  assert.equal(memory().tensors, base.tensors);
});

test('modules survive tidy(); dispose() frees every parameter and buffer', () => {
  const base = memory();
  const net = tidy(() => new nn.Sequential(new nn.Conv2d(3, 4, 3), new nn.BatchNorm2d(4)));
  assert.equal(memory().tensors, base.tensors + 7);
  tidy(() => void net.forward(ones([1, 3, 5, 5])));
  assert.equal(memory().tensors, base.tensors + 7);
  net.dispose();
  assert.deepEqual(memory(), base);
});

test('1000 training steps inside tidy: tensor count and bytes constant, RSS flat', (ctx) => {
  manualSeed(0);
  const g = new Generator(1);
  const net = new nn.Sequential(
    new nn.Conv2d(3, 8, 3, { padding: 1 }), new nn.BatchNorm2d(8), new nn.ReLU(), new nn.Conv2d(8, 3, 3, { padding: 1 }),
  );
  const x = keep(randn([4, 3, 16, 16], { generator: g }));
  const target = keep(randint(0, 3, [4, 16, 16], { generator: g }));
  const opt = new optim.Adam(net.parameters(), { lr: 1e-3 });
  const counts: Record<number, { tensors: number; bytes: number }> = {};
  const rss: Record<number, number> = {};
  let firstLoss = 0;
  let lastLoss = 0;
  const started = Date.now();
  for (let step = 1; step <= 1000; step++) {
    const loss = tidy(() => {
      opt.zeroGrad();
      const l = F.crossEntropy(net.forward(x), target);
      l.backward();
      opt.step();
      return l.item();
    });
    if (step === 1) firstLoss = loss;
    lastLoss = loss;
    if (step === 100 || step === 1000) counts[step] = memory();
    if (step === 200 || step === 1000) {
      gc();
      rss[step] = process.memoryUsage().rss;
    }
  }
  assert.deepEqual(counts[1000], counts[100], `native tensors/bytes at step 100 ${JSON.stringify(counts[100])}, at 1000 ${JSON.stringify(counts[1000])}`);
  const growthMb = (rss[1000] - rss[200]) / 2 ** 20;
  assert.ok(growthMb < 30, `RSS grew ${growthMb.toFixed(1)} MB between step 200 and 1000`);
  assert.ok(lastLoss < firstLoss, `the loop trained: ${firstLoss} → ${lastLoss}`);
  // evaluation in noGrad + tidy leaks nothing either
  net.eval();
  const before = memory();
  for (let i = 0; i < 50; i++) noGrad(() => tidy(() => void net.forward(x).argmax(1).sum().item()));
  assert.deepEqual(memory(), before);
  net.dispose();
  dispose([x, target]);
  ctx.diagnostic(`1000 steps in ${Date.now() - started} ms, RSS growth ${growthMb.toFixed(1)} MB`);
});
