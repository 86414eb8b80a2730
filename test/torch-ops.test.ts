// Each op family of the tensor engine against known values: hand-computed where that is easy, otherwise
// reference values from PyTorch 1.13 (Debian's python3-torch), pasted below as literal tables.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  F, Generator, Tensor, arange, cat, full, getNumThreads, manualSeed, nn, ones, rand, randint, randn, setNumThreads, stack, tensor, tidy, where, zeros,
} from '../src/torch';
import { Ref, assertClose, assertRef, seq, values } from './torch-helpers';

// These tests run thousands of tiny ops; with two intra-op threads on a loaded 2-core machine every op
// waits for the second thread to be scheduled (measured: 1000 small training steps 10 s instead of 1.3 s).
// One thread keeps the suite fast; the multi-threaded kernels get their own check in torch-ops.
setNumThreads(1);

/*
 * REF was printed by this script under /usr/bin/python3 (torch 1.13.0); `seq` is the twin of test/torch-helpers.ts's seq:
 *
 *   import torch, json; import torch.nn.functional as F
 *   def seq(shape, k=0): n = prod(shape); return torch.tensor([(((i*7+k) % 13) - 6) / 4 for i in range(n)]).reshape(shape)
 *   def out(name, t): print(f"{name}: {{ shape: {list(t.shape)}, values: {[float('%.7g' % v) for v in t.flatten().tolist()]} }},")
 *   x = seq([2,4,5,5]); w = seq([4,4,3,3],3); b = seq([4],5)
 *   out('conv_s2p1', F.conv2d(x, w, b, stride=2, padding=1)); out('conv_d2', F.conv2d(x, w, None, dilation=2, padding=1))
 *   out('conv_g2', F.conv2d(x, seq([4,2,3,3],1), b, groups=2, padding=(1,0), stride=(1,2)))
 *   xt = seq([1,4,3,3],2); out('convT_s2', F.conv_transpose2d(xt, seq([4,3,3,3],4), seq([3],6), stride=2, padding=1, output_padding=1))
 *   out('convT_g2', F.conv_transpose2d(xt, seq([4,2,2,2],5), None, stride=2, groups=2))
 *   xb = seq([3,2,2,3],1); rm = torch.tensor([0.5,-1.]); rv = torch.tensor([2.,0.5]); gw = torch.tensor([1.5,-0.5]); gb = torch.tensor([0.25,1.])
 *   out('bn_train_y', F.batch_norm(xb, rm, rv, gw, gb, training=True, momentum=0.3, eps=1e-5)); out('bn_train_rm', rm); out('bn_train_rv', rv)
 *   out('bn_eval_y', F.batch_norm(xb, rm, rv, gw, gb, training=False, eps=1e-5))
 *   out('gn', F.group_norm(seq([2,6,2,2],3), 3, seq([6],1), seq([6],2), eps=1e-5))
 *   xs = seq([2,5],4); softmax1/logsoftmax1 = F.softmax/F.log_softmax(xs, 1); softmax0 = F.softmax(xs, 0); sigmoid = torch.sigmoid(xs)
 *   xp = seq([1,2,5,5],6); maxpool_k2 = F.max_pool2d(xp, 2); maxpool_k3s2p1 = F.max_pool2d(xp, 3, 2, 1)
 *   adapt2 = F.adaptive_avg_pool2d(xp, 2); adapt_3x2 = F.adaptive_avg_pool2d(xp, (3,2))
 *   xi = torch.tensor([[[[1.,2.],[3.,4.]]]]); bilinear4 = F.interpolate(xi, size=(4,4), mode='bilinear', align_corners=False)
 *   bilinear3x5 / nearest3x5 = F.interpolate(seq([1,1,2,3],1), size=(3,5), mode='bilinear', align_corners=False / mode='nearest')
 *   bilinear_ac = F.interpolate(xi, size=(3,3), mode='bilinear', align_corners=True)
 *   lg = seq([4,3],2); tg = torch.tensor([0,2,1,2]); cw = torch.tensor([0.5,2.,1.])
 *   ce_mean/ce_none/ce_sum = F.cross_entropy(lg, tg, reduction=...); ce_w_mean/ce_w_none: weight=cw
 *   ce_ign_mean/ce_ign_none: target [0,-100,1,2]; ce_ign2_w_mean: weight=cw, ignore_index=2; ce_ls: label_smoothing=0.1
 *   lg4 = seq([2,3,2,2],1); tg4 = torch.tensor([[[0,1],[2,1]],[[2,2],[0,1]]]); ce_spatial_none: reduction='none'; ce_spatial_w_mean: weight=cw
 *   nll_mean = F.nll_loss(F.log_softmax(lg,1), tg); nll_w_sum = F.nll_loss(F.log_softmax(lg,1), tg, weight=cw, reduction='sum')
 *   torch.manual_seed(0); randn_seed0 = torch.randn(5); rand_seed0_after = torch.rand(3)
 *   g = torch.Generator().manual_seed(42); randn_gen42 = torch.randn(4, generator=g); randint_gen42 = torch.randint(0, 10, (6,), generator=g)
 *   torch.manual_seed(3); c = torch.nn.Conv2d(2, 3, 3); conv_init_seed3_w = c.weight; conv_init_seed3_b = c.bias
 *   bmm = torch.matmul(seq([2,2,3],1), seq([3,2],4)); linear = F.linear(seq([3,4],1), seq([2,4],3), seq([2],5))
 */
const REF: Record<string, Ref> = {
  conv_s2p1: { shape: [2, 4, 3, 3], values: [-5.8125, -2.8125, -1.125, 9.4375, 8.0, 5.0625, -4.875, -4.6875, -2.9375, 0.5625, -0.6875, -1.875, -0.0625, 2.125, 5.1875, 4.0625, 4.125, 2.125, 4.5, -0.1875, 0.625, 0.1875, -0.5, 3.6875, -2.4375, -5.75, -3.375, -4.5625, -6.1875, -4.1875, -3.625, 1.75, 3.8125, 1.625, 1.4375, -2.375, -3.0625, -2.0, -3.0625, 0.375, 4.875, 1.5625, -1.5625, -3.4375, -1.0625, 4.6875, -2.6875, -4.0625, 0.25, -3.1875, 2.9375, 3.875, 3.375, -1.125, 1.0625, -0.125, 1.4375, 0.9375, 5.8125, 4.3125, 2.8125, -1.1875, -1.1875, 3.9375, 3.25, -0.375, -4.0625, -3.0625, -4.875, 1.75, 0.75, 2.0] },
  conv_d2: { shape: [2, 4, 3, 3], values: [0.625, 2.75, 1.0, -6.125, 3.6875, 5.0, -0.6875, -2.0625, -3.5625, -0.6875, -2.0625, -3.5625, 6.125, 0.9375, -0.625, -2.8125, 2.0625, -0.8125, -2.8125, 2.0625, -0.8125, -5.1875, -0.1875, 2.6875, 3.1875, -4.375, 2.75, 3.1875, -4.375, 2.75, 3.0, -2.9375, -2.125, -2.1875, 2.1875, 0.625, 0.9375, 1.125, -4.1875, 1.0625, 3.0, -0.125, 1.0, 0.0, 1.5625, 1.0, 0.0, 1.5625, -2.5, -1.9375, -0.4375, 1.875, 2.125, -3.25, 1.875, 2.125, -3.25, 3.6875, -2.0, -0.75, -1.3125, 1.0, 3.3125, -1.3125, 1.0, 3.3125, -3.9375, 5.25, -0.25, -5.3125, 2.3125, 0.9375] },
  conv_g2: { shape: [2, 4, 5, 2], values: [-0.25, -0.25, 2.625, 0.5625, -2.9375, -2.5625, 0.4375, 3.25, 2.875, 2.5625, -4.5, -4.25, 5.1875, 0.25, 7.0625, 4.5625, -3.25, -3.3125, 1.3125, 2.0625, -0.3125, 3.4375, -0.6875, -5.25, 3.75, 3.25, 0.0625, -0.4375, -5.3125, -5.9375, -3.1875, -2.4375, -0.9375, 1.375, -0.4375, -0.5625, -4.0, -4.125, 1.0, 0.625, 1.375, -1.875, -3.8125, -1.0, -1.25, -2.5, -0.3125, 0.875, -0.5625, 3.1875, -2.5625, -2.3125, 7.75, 4.4375, -0.125, 6.3125, -2.3125, -4.0, -0.1875, 0.5625, -2.125, -3.25, 6.0, 0.625, 4.75, 2.625, -6.25, -3.5, 0.8125, -0.625, -3.0625, 0.125, -1.5, -3.25, -2.625, 2.125, 0.3125, -3.875, -3.125, -1.0625] },
  convT_s2: { shape: [1, 3, 6, 6], values: [1.625, 1.25, 0.5, -4.25, 1.0, -0.5625, 0.9375, 4.375, -3.75, -1.75, 1.3125, 2.4375, -0.125, 0.1875, -0.4375, 4.4375, -0.75, -2.125, -3.375, -3.4375, 4.9375, -3.0625, -3.0, 1.75, -1.0625, 4.0, -1.375, -1.5, 2.375, 0.375, 2.3125, -2.0625, -1.875, 1.75, -0.375, 0.875, -2.0625, 0.0, -2.625, 0.5, -1.5625, 0.125, -4.0625, 2.6875, -1.9375, -3.625, -3.875, -1.125, -2.125, -2.5625, -0.25, -2.875, -1.625, 0.25, -1.75, -4.0625, 1.1875, -2.25, 0.0625, -4.125, 0.25, -1.875, -1.125, 0.25, -4.125, -2.875, 0.375, -1.4375, 0.0, -1.375, -0.375, 0.875, -0.0625, 2.0, -0.875, 2.0, -0.0625, 1.625, 1.5, 0.1875, -0.125, -0.625, 1.5, -1.4375, -0.875, -0.4375, 2.375, -1.25, -0.875, 1.0, -0.125, 1.0, -2.5625, -0.625, 3.125, -0.25, 2.375, -1.25, -0.875, 2.0, -0.875, 0.375, -1.5625, 1.625, 1.875, -1.25, -0.375, -2.375] },
  convT_g2: { shape: [1, 4, 6, 6], values: [-0.875, -0.375, 0.0, 0.9375, -0.75, -0.1875, -1.5, 2.25, 0.25, -1.25, -1.25, 1.75, 0.125, 1.125, -0.625, 0.0, 0.25, 1.3125, 0.5, -1.75, -1.0, 1.25, 0.75, -2.25, -0.5, 0.1875, 0.375, 1.5, -0.375, 0.375, -0.75, 0.75, 1.0, -2.75, -0.5, 0.25, -2.125, 1.625, 0.5, -1.0, -1.75, 1.25, -2.75, 1.0, 0.75, -0.75, -2.25, 0.75, 0.875, -1.375, -1.375, 0.875, 1.25, -1.75, 1.25, -1.0, -1.75, 0.5, 1.75, -1.25, -1.0, 0.5, 1.625, -2.125, -0.625, 0.125, -1.25, 0.25, 2.25, -1.5, -0.75, 0.0, -2.25, 1.25, 0.75, -1.0, -2.75, 1.625, -1.75, 1.75, 0.5, -1.25, -2.125, 2.25, 0.25, -0.625, 1.625, 1.1875, -0.25, -0.25, 0.125, -0.75, 1.5625, 1.125, -0.25, -0.25, 1.125, 1.5625, -0.75, 0.125, 2.25, -2.125, 1.1875, 1.625, -0.625, 0.25, 1.625, -2.75, -1.25, -0.1875, 0.25, 0.9375, -1.5, -0.375, -0.75, 0.3125, 0.0, 0.6875, -0.875, 0.25, 0.0, 0.75, 1.5, -3.0, -0.25, 0.5625, -0.125, 0.625, 1.4375, -3.0625, -0.25, 0.5625, 1.25, -3.1875, -0.5, 0.375, 1.0, 1.5, 1.3125, -3.125, -0.375, 0.5, 0.375, 0.875] },
  bn_train_y: { shape: [3, 2, 2, 3], values: [-1.482039, 1.54903, -1.049029, 1.982039, -0.6160196, 2.415049, 1.443669, 0.4961724, 1.308312, 0.3608157, 1.172956, 1.985096, 1.11602, -1.482039, 1.54903, -1.049029, 1.982039, -0.6160196, 0.631529, 1.443669, 0.4961724, 1.308312, 0.3608157, 1.172956, -1.915049, 1.11602, -1.482039, 1.54903, -1.049029, 1.982039, 1.579026, 0.631529, 1.443669, 0.4961724, 1.308312, 0.3608157] },
  bn_train_rm: { shape: [2], values: [0.275, -0.6041666] },
  bn_train_rv: { shape: [2], values: [1.638235, 0.6208946] },
  bn_eval_y: { shape: [3, 2, 2, 3], values: [-1.537194, 0.5136843, -1.244211, 0.8066669, -0.9512286, 1.09965, 0.9339024, -0.1765389, 0.7752679, -0.3351734, 0.6166334, 1.56844, 0.2207018, -1.537194, 0.5136843, -1.244211, 0.8066669, -0.9512286, -0.01790446, 0.9339024, -0.1765389, 0.7752679, -0.3351734, 0.6166334, -1.830176, 0.2207018, -1.537194, 0.5136843, -1.244211, 0.8066669, 1.092537, -0.01790446, 0.9339024, -0.1765389, 0.7752679, -0.3351734] },
  gn: { shape: [2, 6, 2, 2], values: [0.06354734, -2.142329, -0.2515778, -2.457454, 0.5766812, 1.459032, 0.7027313, -0.05356908, -1.218518, 0.6555529, -1.530863, 0.3432078, 1.819906, 0.414353, 2.054165, 0.6486118, -1.392365, -0.2651671, -1.580231, -0.4530334, -0.3155527, 1.437866, -0.06506422, 1.688355, 0.7010243, -1.68041, 0.3608194, -2.020615, 0.3417542, 1.294328, 0.4778361, 1.43041, -1.218518, 0.6555529, -1.530863, 0.3432078, 1.819906, 0.414353, 2.054165, 0.6486118, -1.123957, 0.07404074, -1.323624, -0.1256256, 2.614387, 1.017056, -0.5802748, 1.283278] },
  softmax1: { shape: [2, 5], values: [0.05856033, 0.3369915, 0.07519296, 0.4327056, 0.09654967, 0.05856033, 0.3369915, 0.07519296, 0.4327056, 0.09654967] },
  logsoftmax1: { shape: [2, 5], values: [-2.837698, -1.087698, -2.587698, -0.8376977, -2.337698, -2.837698, -1.087698, -2.587698, -0.8376977, -2.337698] },
  softmax0: { shape: [2, 5], values: [0.7310586, 0.7310586, 0.7310586, 0.7310586, 0.7310586, 0.2689414, 0.2689414, 0.2689414, 0.2689414, 0.2689414] },
  sigmoid: { shape: [2, 5], values: [0.3775407, 0.7772999, 0.4378235, 0.8175744, 0.5, 0.1824255, 0.5621765, 0.2227001, 0.6224594, 0.2689414] },
  maxpool_k2: { shape: [1, 2, 2, 2], values: [0.75, 1.0, 1.25, 1.5, 1.5, 0.75, 1.25, 1.5] },
  maxpool_k3s2p1: { shape: [1, 2, 3, 3], values: [0.75, 1.0, 1.0, 1.25, 1.5, 1.0, 1.0, 1.25, 1.25, 1.5, 0.75, 1.0, 1.25, 1.5, 1.5, 0.75, 1.0, 1.25] },
  adapt2: { shape: [1, 2, 2, 2], values: [0.02777778, -0.08333334, 0.1944444, 0.08333334, 0.08333334, -0.02777778, -0.1111111, 0.1388889] },
  adapt_3x2: { shape: [1, 2, 3, 2], values: [-0.375, -0.125, 0.1111111, 0.0, -0.125, 0.125, 0.04166667, -0.25, -0.1944444, 0.05555556, -0.25, 0.0] },
  bilinear4: { shape: [1, 1, 4, 4], values: [1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0] },
  bilinear3x5: { shape: [1, 1, 3, 5], values: [-1.25, -0.55, 0.4999999, -0.4000001, -1.0, -0.25, -0.2, -0.125, -0.04999999, 0.0, 0.75, 0.1499999, -0.7499999, 0.3000001, 1.0] },
  bilinear_ac: { shape: [1, 1, 3, 3], values: [1.0, 1.5, 2.0, 2.0, 2.5, 3.0, 3.0, 3.5, 4.0] },
  nearest3x5: { shape: [1, 1, 3, 5], values: [-1.25, -1.25, 0.5, 0.5, -1.0, -1.25, -1.25, 0.5, 0.5, -1.0, 0.75, 0.75, -0.75, -0.75, 1.0] },
  ce_mean: { shape: [], values: [1.230481] },
  ce_none: { shape: [4], values: [2.084259, 0.6691489, 0.3342585, 1.834259] },
  ce_sum: { shape: [], values: [4.921925] },
  ce_w_mean: { shape: [], values: [0.9364564] },
  ce_w_none: { shape: [4], values: [1.042129, 0.6691489, 0.6685171, 1.834259] },
  ce_ign_mean: { shape: [], values: [1.417592] },
  ce_ign_none: { shape: [4], values: [2.084259, 0.0, 0.3342585, 1.834259] },
  ce_ign2_w_mean: { shape: [], values: [0.6842586] },
  ce_spatial_none: { shape: [2, 2, 2], values: [1.68027, 1.18027, 0.6802697, 0.5130982, 0.6802697, 0.6802697, 1.68027, 1.18027] },
  ce_spatial_w_mean: { shape: [], values: [0.9468354] },
  ce_ls: { shape: [], values: [1.247148] },
  nll_mean: { shape: [], values: [1.230481] },
  nll_w_sum: { shape: [], values: [4.214054] },
  randn_seed0: { shape: [5], values: [1.540996, -0.2934289, -2.178789, 0.5684313, -1.084522] },
  rand_seed0_after: { shape: [3], values: [0.02232575, 0.1688589, 0.2938884] },
  randn_gen42: { shape: [4], values: [0.3366904, 0.1288094, 0.2344624, 0.230333] },
  randint_gen42: { shape: [6], values: [0.0, 3.0, 8.0, 4.0, 0.0, 4.0] },
  conv_init_seed3_w: { shape: [3, 2, 3, 3], values: [-0.2336924, -0.1859364, -0.1009548, -0.2229956, -0.01338112, -0.2073632, 0.1281588, 0.114881, 0.04451058, 0.1828374, -0.02308405, 0.1411812, -0.1650666, -0.04644805, -0.210163, -0.01913655, -0.1529212, 0.2117468, 0.1637276, 0.1767089, 0.06991421, -0.1344645, 0.2118044, -0.2299942, -0.1504359, -0.1472125, -0.09770109, 0.0469984, -0.178542, -0.181587, -0.1127224, 0.1438594, -0.1700063, -0.2114005, -0.2042851, -0.1159856, -0.06193032, -0.2336637, -0.1103529, 0.004534354, 0.03885414, -0.03379003, -0.02672515, -0.1533418, 0.1207517, -0.05678184, -0.1611536, -0.05676284, -0.03292891, 0.2179317, 0.1228381, -0.09517366, -0.03343951, 0.2082829] },
  conv_init_seed3_b: { shape: [3], values: [0.1514238, 0.05876869, -0.08455026] },
  bmm: { shape: [2, 2, 2], values: [0.5, 0.6875, -0.1875, -1.6875, -0.0625, 1.625, -0.75, 4.125] },
  linear: { shape: [3, 2], values: [2.625, 1.4375, 3.125, 1.3125, -0.4375, 6.0625] },
};

/** Runs a test body inside tidy() so each test leaves no tensors behind. */
const t = (name: string, fn: () => void): void => {
  test(name, () => tidy(fn));
};
const m23 = (): Tensor => tensor([0, 1, 2, 3, 4, 5], [2, 3]);

// ---------------------------------------------------------------- creation
t('zeros, ones and full: shape, dtype and value', () => {
  const cases: [Tensor, number[], string, number][] = [
    [zeros([2, 3]), [2, 3], 'float32', 0],
    [zeros([4], { dtype: 'int64' }), [4], 'int64', 0],
    [ones([3, 1, 2]), [3, 1, 2], 'float32', 1],
    [ones([2], { dtype: 'float64' }), [2], 'float64', 1],
    [full([2, 2], 2.5), [2, 2], 'float32', 2.5],
    [full([3], 7, { dtype: 'int64' }), [3], 'int64', 7],
    [full([2], -1, { dtype: 'int32' }), [2], 'int32', -1],
    [zeros([0, 3]), [0, 3], 'float32', 0],
  ];
  for (const [x, shape, dtype, v] of cases) {
    assert.deepEqual(x.shape, shape);
    assert.equal(x.dtype, dtype);
    assert.equal(x.numel(), shape.reduce((a, b) => a * b, 1));
    assert.ok(values(x).every((y) => y === v), `${dtype} ${shape}: ${values(x)}`);
  }
});

t('arange: integer arguments give int64, fractional ones float32, dtype overrides', () => {
  const cases: [Tensor, string, number[]][] = [
    [arange(0, 5), 'int64', [0, 1, 2, 3, 4]],
    [arange(2, 11, 3), 'int64', [2, 5, 8]],
    [arange(5, 0, -2), 'int64', [5, 3, 1]],
    [arange(-2, 2), 'int64', [-2, -1, 0, 1]],
    [arange(0, 1, 0.25), 'float32', [0, 0.25, 0.5, 0.75]],
    [arange(0.5, 2), 'float32', [0.5, 1.5]],
    [arange(0, 3, 1, { dtype: 'float64' }), 'float64', [0, 1, 2]],
    [arange(0, 3, 1, { dtype: 'float32' }), 'float32', [0, 1, 2]],
  ];
  for (const [x, dtype, expected] of cases) {
    assert.equal(x.dtype, dtype);
    assert.deepEqual(values(x), expected);
  }
  const big = arange(0, 6).data();
  assert.ok(big instanceof BigInt64Array);
  assert.equal(big[5], 5n);
  assert.throws(() => arange(0, 5, 0), /^Error: arange: step must be non-zero/);
});

t('tensor: every typed array kind keeps its dtype and values', () => {
  const cases: [Tensor, string, number[], new (...a: never[]) => unknown][] = [
    [tensor(new Float32Array([1.5, -2, 3])), 'float32', [1.5, -2, 3], Float32Array],
    [tensor(new Float64Array([0.1, 1e300])), 'float64', [0.1, 1e300], Float64Array],
    [tensor(new Int32Array([-7, 2 ** 31 - 1])), 'int32', [-7, 2 ** 31 - 1], Int32Array],
    [tensor(new BigInt64Array([-3n, 2n ** 40n])), 'int64', [-3, 2 ** 40], BigInt64Array],
    [tensor(new Uint8Array([0, 255, 7])), 'uint8', [0, 255, 7], Uint8Array],
    [tensor([1.25, 2, -3]), 'float32', [1.25, 2, -3], Float32Array],
  ];
  for (const [x, dtype, expected, kind] of cases) {
    assert.equal(x.dtype, dtype);
    assert.ok(x.data() instanceof kind, `${dtype} comes back as ${kind.name}`);
    assert.deepEqual(values(x), expected);
  }
  // int64 beyond 2^53 round-trips exactly through BigInt64Array
  assert.equal((tensor(new BigInt64Array([2n ** 62n + 1n])).data() as BigInt64Array)[0], 2n ** 62n + 1n);
  // shape and row-major order
  const m = tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
  assert.deepEqual(m.shape, [2, 3]);
  assert.equal(m.select(0, 1).select(0, 0).item(), 4);
  assert.deepEqual(tensor(new Float32Array([5]), []).shape, []);
  assert.equal(tensor(new Float32Array([5]), []).item(), 5);
  // a subarray view copies only its own window
  const backing = new Float64Array([9, 1, 2, 9]);
  assert.deepEqual(values(tensor(backing.subarray(1, 3))), [1, 2]);
});

t('tensor and to(): dtype conversions', () => {
  const cases: [Tensor, string, number[]][] = [
    [tensor(new Float32Array([1.7, -2.2, 0.5]), [3], 'int64'), 'int64', [1, -2, 0]],
    [tensor(new Int32Array([3, -4]), [2], 'float64'), 'float64', [3, -4]],
    [tensor(new Uint8Array([0, 2, 1]), [3], 'bool'), 'bool', [0, 1, 1]],
    [tensor(new BigInt64Array([5n, 6n]), [2], 'float32'), 'float32', [5, 6]],
    [tensor([1.5, 2.5]).to('float64'), 'float64', [1.5, 2.5]],
    [tensor([1.9, -1.9]).long(), 'int64', [1, -1]],
    [tensor([0, 3]).to('bool'), 'bool', [0, 1]],
    [arange(0, 3).float(), 'float32', [0, 1, 2]],
    [arange(0, 3).double(), 'float64', [0, 1, 2]],
    [tensor([300, -1]).to('int32'), 'int32', [300, -1]],
  ];
  for (const [x, dtype, expected] of cases) {
    assert.equal(x.dtype, dtype);
    assert.deepEqual(values(x), expected);
  }
  // a float64 value that float32 cannot hold is rounded by the conversion
  assert.equal(tensor(new Float64Array([0.1])).float().item(), Math.fround(0.1));
  assert.equal(arange(0, 3).to('cpu').device, 'cpu');
});

t('randn, rand, randint with a Generator: same seed gives the same stream, and PyTorch\'s numbers', () => {
  const g1 = new Generator(42);
  const g2 = new Generator(42);
  const a = randn([4], { generator: g1 });
  const b = randn([4], { generator: g2 });
  assert.deepEqual(values(a), values(b));
  assertRef(a, REF.randn_gen42, 1e-6, 'randn(generator 42)');
  const ia = randint(0, 10, [6], { generator: g1 });
  assert.equal(ia.dtype, 'int64');
  assertRef(ia, REF.randint_gen42, 0, 'randint(generator 42)');
  assert.deepEqual(values(randint(0, 10, [6], { generator: g2 })), values(ia));
  // the streams stay in step, and a third generator with another seed differs
  assert.deepEqual(values(rand([5], { generator: g1 })), values(rand([5], { generator: g2 })));
  assert.notDeepEqual(values(randn([4], { generator: new Generator(43) })), values(randn([4], { generator: new Generator(42) })));
  // manualSeed on a generator restarts its stream
  g1.manualSeed(42);
  assertRef(randn([4], { generator: g1 }), REF.randn_gen42, 1e-6, 'after g.manualSeed(42)');
  // ranges and dtypes
  const u = rand([2000], { generator: g1 });
  assert.ok(values(u).every((v) => v >= 0 && v < 1));
  const r = values(randint(-3, 4, [2000], { generator: g1 }));
  assert.ok(r.every((v) => Number.isInteger(v) && v >= -3 && v < 4));
  assert.equal(new Set(r).size, 7);
  assert.equal(randn([3], { generator: g1, dtype: 'float64' }).dtype, 'float64');
  assert.equal(randint(0, 5, [3], { generator: g1, dtype: 'int32' }).dtype, 'int32');
  const n = values(randn([20000], { generator: g1 }));
  const mean = n.reduce((s, v) => s + v, 0) / n.length;
  const std = Math.sqrt(n.reduce((s, v) => s + (v - mean) ** 2, 0) / n.length);
  assert.ok(Math.abs(mean) < 0.05 && Math.abs(std - 1) < 0.05, `mean ${mean}, std ${std}`);
});

t('manualSeed makes the global stream reproducible and equal to torch.manual_seed', () => {
  manualSeed(0);
  const a = randn([5]);
  const a2 = rand([3]);
  manualSeed(0);
  const b = randn([5]);
  assert.deepEqual(values(a), values(b));
  assertRef(a, REF.randn_seed0, 1e-6, 'randn after manualSeed(0)');
  assertRef(a2, REF.rand_seed0_after, 1e-7, 'rand after randn(5)');
  manualSeed(1);
  assert.notDeepEqual(values(randn([5])), values(a));
  // a layer built after the same seed holds PyTorch's numbers (default init draws in PyTorch's order)
  manualSeed(3);
  const conv = new nn.Conv2d(2, 3, 3);
  assertRef(conv.weight, REF.conv_init_seed3_w, 1e-6, 'Conv2d weight after manual_seed(3)');
  assertRef(conv.bias!, REF.conv_init_seed3_b, 1e-6, 'Conv2d bias');
  conv.dispose();
});

// ---------------------------------------------------------------- shape ops
t('reshape, view, flatten, squeeze, unsqueeze: shapes and row-major values', () => {
  const x = arange(0, 24).float().reshape([2, 3, 4]);
  const cases: [Tensor, number[]][] = [
    [x.reshape([4, 6]), [4, 6]],
    [x.reshape([-1, 8]), [3, 8]],
    [x.view([6, 4]), [6, 4]],
    [x.view([-1]), [24]],
    [x.flatten(), [24]],
    [x.flatten(1), [2, 12]],
    [x.flatten(0, 1), [6, 4]],
    [x.unsqueeze(0), [1, 2, 3, 4]],
    [x.unsqueeze(-1), [2, 3, 4, 1]],
    [x.unsqueeze(1), [2, 1, 3, 4]],
    [x.reshape([1, 2, 1, 12]).squeeze(), [2, 12]],
    [x.reshape([1, 2, 1, 12]).squeeze(2), [1, 2, 12]],
    [x.reshape([1, 2, 1, 12]).squeeze(1), [1, 2, 1, 12]],
  ];
  const expected = Array.from({ length: 24 }, (_, i) => i);
  for (const [y, shape] of cases) {
    assert.deepEqual(y.shape, shape);
    assert.deepEqual(values(y), expected);
  }
  assert.throws(() => x.reshape([5, 5]), /^Error: reshape: /);
  assert.throws(() => x.transpose(0, 2).view([24]), /^Error: view: /);
});

t('permute, transpose and contiguous reorder the values', () => {
  assert.deepEqual(values(m23().transpose(0, 1).contiguous()), [0, 3, 1, 4, 2, 5]);
  assert.deepEqual(values(m23().permute([1, 0])), [0, 3, 1, 4, 2, 5]);
  const x = arange(0, 24).reshape([2, 3, 4]);
  const p = x.permute([2, 0, 1]);
  assert.deepEqual(p.shape, [4, 2, 3]);
  const pv = values(p.contiguous());
  // p[k, i, j] = x[i, j, k] = 12i + 4j + k
  for (const [k, i, j] of [[0, 0, 0], [3, 1, 2], [1, 0, 2], [2, 1, 0]]) assert.equal(pv[k * 6 + i * 3 + j], 12 * i + 4 * j + k);
  assert.deepEqual(pv.slice(0, 6), [0, 4, 8, 12, 16, 20]);
});

t('cat and stack along each dim', () => {
  const a = m23();
  const b = m23().mul(10);
  const cases: [Tensor, number[], number[]][] = [
    [cat([a, b], 0), [4, 3], [0, 1, 2, 3, 4, 5, 0, 10, 20, 30, 40, 50]],
    [cat([a, b], 1), [2, 6], [0, 1, 2, 0, 10, 20, 3, 4, 5, 30, 40, 50]],
    [cat([a, b], -1), [2, 6], [0, 1, 2, 0, 10, 20, 3, 4, 5, 30, 40, 50]],
    [cat([a, a.narrow(0, 0, 1)], 0), [3, 3], [0, 1, 2, 3, 4, 5, 0, 1, 2]],
    [stack([a, b], 0), [2, 2, 3], [0, 1, 2, 3, 4, 5, 0, 10, 20, 30, 40, 50]],
    [stack([a, b], 1), [2, 2, 3], [0, 1, 2, 0, 10, 20, 3, 4, 5, 30, 40, 50]],
    [stack([a, b], 2), [2, 3, 2], [0, 0, 1, 10, 2, 20, 3, 30, 4, 40, 5, 50]],
    [stack([a, b], -1), [2, 3, 2], [0, 0, 1, 10, 2, 20, 3, 30, 4, 40, 5, 50]],
  ];
  for (const [y, shape, v] of cases) {
    assert.deepEqual(y.shape, shape);
    assert.deepEqual(values(y), v);
  }
});

t('narrow, slice, select, indexSelect, gather', () => {
  const a = m23();
  const idx = (v: number[], shape?: number[]): Tensor => tensor(BigInt64Array.from(v, BigInt), shape);
  const cases: [string, Tensor, number[], number[]][] = [
    ['narrow(1, 1, 2)', a.narrow(1, 1, 2), [2, 2], [1, 2, 4, 5]],
    ['narrow(0, 1, 1)', a.narrow(0, 1, 1), [1, 3], [3, 4, 5]],
    ['slice(1, 0, 3, 2)', a.slice(1, 0, 3, 2), [2, 2], [0, 2, 3, 5]],
    ['arange slice step 3', arange(0, 10).slice(0, 1, 8, 3), [3], [1, 4, 7]],
    ['slice end clamps', arange(0, 5).slice(0, 3, 100), [2], [3, 4]],
    ['select(0, 1)', a.select(0, 1), [3], [3, 4, 5]],
    ['select(1, -1)', a.select(1, -1), [2], [2, 5]],
    ['indexSelect(1, [2, 0, 2])', a.indexSelect(1, idx([2, 0, 2])), [2, 3], [2, 0, 2, 5, 3, 5]],
    ['indexSelect(0, [1])', a.indexSelect(0, idx([1])), [1, 3], [3, 4, 5]],
    ['gather(1, [[0, 0], [2, 1]])', a.gather(1, idx([0, 0, 2, 1], [2, 2])), [2, 2], [0, 0, 5, 4]],
    ['gather(0, [[1, 0, 1]])', a.gather(0, idx([1, 0, 1], [1, 3])), [1, 3], [3, 1, 5]],
  ];
  for (const [what, y, shape, v] of cases) {
    assert.deepEqual(y.shape, shape, what);
    assert.deepEqual(values(y), v, what);
  }
});

t('expand, flip, repeat', () => {
  const col = tensor([1, 2, 3], [3, 1]);
  const cases: [string, Tensor, number[], number[]][] = [
    ['expand [3, 4]', col.expand([3, 4]), [3, 4], [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]],
    ['expand -1', col.expand([2, -1, 2]), [2, 3, 2], [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3]],
    ['flip [1]', m23().flip([1]), [2, 3], [2, 1, 0, 5, 4, 3]],
    ['flip [0]', m23().flip([0]), [2, 3], [3, 4, 5, 0, 1, 2]],
    ['flip [0, 1]', m23().flip([0, 1]), [2, 3], [5, 4, 3, 2, 1, 0]],
    ['repeat [2, 2]', tensor([1, 2]).repeat([2, 2]), [2, 4], [1, 2, 1, 2, 1, 2, 1, 2]],
    ['repeat [1, 2]', m23().repeat([1, 2]), [2, 6], [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]],
    ['repeat [2, 1]', m23().repeat([2, 1]), [4, 3], [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]],
  ];
  for (const [what, y, shape, v] of cases) {
    assert.deepEqual(y.shape, shape, what);
    assert.deepEqual(values(y), v, what);
  }
});

// ---------------------------------------------------------------- elementwise
t('arithmetic with tensor and scalar operands, with broadcasting', () => {
  const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const row = tensor([10, 20, 30]);
  const colv = tensor([1, 2], [2, 1]);
  const cases: [string, Tensor, number[], number[]][] = [
    ['a + row', a.add(row), [2, 3], [11, 22, 33, 14, 25, 36]],
    ['a + 2', a.add(2), [2, 3], [3, 4, 5, 6, 7, 8]],
    ['a - row', a.sub(row), [2, 3], [-9, -18, -27, -6, -15, -24]],
    ['a - 0.5', a.sub(0.5), [2, 3], [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]],
    ['10 - a', a.rsub(10), [2, 3], [9, 8, 7, 6, 5, 4]],
    ['a * row', a.mul(row), [2, 3], [10, 40, 90, 40, 100, 180]],
    ['a * -1', a.mul(-1), [2, 3], [-1, -2, -3, -4, -5, -6]],
    ['a / 2', a.div(2), [2, 3], [0.5, 1, 1.5, 2, 2.5, 3]],
    ['a / col', a.div(colv), [2, 3], [1, 2, 3, 2, 2.5, 3]],
    ['col + row', colv.add(row), [2, 3], [11, 21, 31, 12, 22, 32]],
    ['a ** 2', a.pow(2), [2, 3], [1, 4, 9, 16, 25, 36]],
    ['a ** col', a.pow(colv), [2, 3], [1, 2, 3, 16, 25, 36]],
    ['a ** 0.5', tensor([4, 9]).pow(0.5), [2], [2, 3]],
    ['maximum(a, 3.5)', a.maximum(3.5), [2, 3], [3.5, 3.5, 3.5, 4, 5, 6]],
    ['minimum(a, row/5)', a.minimum(row.div(5)), [2, 3], [1, 2, 3, 2, 4, 6]],
    ['remainder(a, 4)', a.remainder(4), [2, 3], [1, 2, 3, 0, 1, 2]],
    ['remainder(-3, 2) (Python sign)', tensor([-3, 3]).remainder(2), [2], [1, 1]],
    ['neg', a.neg(), [2, 3], [-1, -2, -3, -4, -5, -6]],
    ['abs', tensor([-1.5, 2]).abs(), [2], [1.5, 2]],
    ['square', tensor([-3, 2]).square(), [2], [9, 4]],
    ['sign', tensor([-3, 0, 2]).sign(), [3], [-1, 0, 1]],
    ['floor/ceil/round', cat([tensor([-1.5, 1.5, 2.5]).floor(), tensor([-1.5, 1.5]).ceil(), tensor([0.5, 1.5, 2.4]).round()]), [8], [-2, 1, 2, -1, 2, 0, 2, 2]],
  ];
  for (const [what, y, shape, v] of cases) {
    assert.deepEqual(y.shape, shape, what);
    assertClose(y, v, 1e-6, 1e-6, what);
  }
});

t('scalar operands keep integer dtypes as PyTorch does', () => {
  const i = arange(0, 3);
  const cases: [string, Tensor, string, number[]][] = [
    ['int64 + 2', i.add(2), 'int64', [2, 3, 4]],
    ['int64 * 3', i.mul(3), 'int64', [0, 3, 6]],
    ['int64 + 0.5', i.add(0.5), 'float32', [0.5, 1.5, 2.5]],
    ['int64 / 2', i.div(2), 'float32', [0, 0.5, 1]],
    ['int64 ** 2', i.pow(2), 'int64', [0, 1, 4]],
    ['5 - int64', i.rsub(5), 'int64', [5, 4, 3]],
    ['clamp int64', i.clamp(1, 1), 'int64', [1, 1, 1]],
    ['uint8 * 3', tensor(new Uint8Array([1, 2])).mul(3), 'uint8', [3, 6]],
    ['int64 + int64 tensor', i.add(i), 'int64', [0, 2, 4]],
    ['int64 + float32 tensor', i.add(tensor([0.5, 0.5, 0.5])), 'float32', [0.5, 1.5, 2.5]],
    ['float64 * 2', tensor(new Float64Array([0.1])).mul(2), 'float64', [0.2]],
  ];
  for (const [what, y, dtype, v] of cases) {
    assert.equal(y.dtype, dtype, what);
    assertClose(y, v, 0, 1e-7, what);
  }
});

t('comparisons return bool tensors', () => {
  const a = tensor([1, 2, 3]);
  const b = tensor([3, 2, 1]);
  const cases: [string, Tensor, number[]][] = [
    ['eq', a.eq(b), [0, 1, 0]],
    ['ne', a.ne(b), [1, 0, 1]],
    ['lt', a.lt(b), [1, 0, 0]],
    ['le', a.le(b), [1, 1, 0]],
    ['gt', a.gt(b), [0, 0, 1]],
    ['ge', a.ge(b), [0, 1, 1]],
    ['eq scalar', a.eq(2), [0, 1, 0]],
    ['gt scalar', a.gt(1.5), [0, 1, 1]],
    ['broadcast lt', tensor([1, 2], [2, 1]).lt(tensor([0, 1.5, 3])), [0, 1, 1, 0, 0, 1]],
    ['and', a.gt(1).logicalAnd(a.lt(3)), [0, 1, 0]],
    ['or', a.lt(2).logicalOr(a.gt(2)), [1, 0, 1]],
    ['not', a.eq(2).logicalNot(), [1, 0, 1]],
    ['isnan', tensor([0, NaN, 1]).isnan(), [0, 1, 0]],
    ['isfinite', tensor([Infinity, 1, NaN]).isfinite(), [0, 1, 0]],
  ];
  for (const [what, y, v] of cases) {
    assert.equal(y.dtype, 'bool', what);
    assert.ok(y.data() instanceof Uint8Array, what);
    assert.deepEqual(values(y), v, what);
  }
});

t('where and clamp', () => {
  const c = tensor(new Uint8Array([1, 0, 1]), [3], 'bool');
  assert.deepEqual(values(where(c, tensor([1, 2, 3]), tensor([-1, -2, -3]))), [1, -2, 3]);
  // where broadcasts its operands
  assert.deepEqual(values(where(tensor([1, 2, 3, 4], [2, 2]).gt(2), tensor([9, 8]), zeros([2, 1]))), [0, 0, 9, 8]);
  const x = tensor([-2, -0.5, 0.5, 2]);
  assert.deepEqual(values(x.clamp(-1, 1)), [-1, -0.5, 0.5, 1]);
  assert.deepEqual(values(x.clamp(0)), [0, 0, 0.5, 2]);
  assert.deepEqual(values(x.clamp(undefined, 0)), [-2, -0.5, 0, 0]);
});

t('exp, log, sqrt, rsqrt, pow, tanh, sigmoid', () => {
  const x = tensor(new Float64Array([0.25, 1, 2, 9]));
  const cases: [string, Tensor, (v: number) => number][] = [
    ['exp', x.exp(), Math.exp],
    ['log', x.log(), Math.log],
    ['sqrt', x.sqrt(), Math.sqrt],
    ['rsqrt', x.rsqrt(), (v) => 1 / Math.sqrt(v)],
    ['pow 3', x.pow(3), (v) => v ** 3],
    ['pow -1.5', x.pow(-1.5), (v) => v ** -1.5],
    ['tanh', x.tanh(), Math.tanh],
    ['sigmoid', x.sigmoid(), (v) => 1 / (1 + Math.exp(-v))],
  ];
  for (const [what, y, f] of cases) {
    assert.equal(y.dtype, 'float64', what);
    assertClose(y, [0.25, 1, 2, 9].map(f), 0, 1e-14, what);
  }
  assert.deepEqual(values(tensor([0, -1]).log()), [-Infinity, NaN]);
  assert.deepEqual(values(tensor([-1]).sqrt()), [NaN]);
});

// ---------------------------------------------------------------- reductions
t('sum, mean, amax, amin over dims with keepdim', () => {
  const x = tensor([1, 5, 3, 4, 2, 6], [2, 3]);
  const cases: [string, Tensor, number[], number[]][] = [
    ['sum()', x.sum(), [], [21]],
    ['sum(keepdim)', x.sum(undefined, true), [1, 1], [21]],
    ['sum(0)', x.sum(0), [3], [5, 7, 9]],
    ['sum(1, keep)', x.sum(1, true), [2, 1], [9, 12]],
    ['sum(-1)', x.sum(-1), [2], [9, 12]],
    ['sum([0, 1])', x.sum([0, 1]), [], [21]],
    ['mean()', x.mean(), [], [3.5]],
    ['mean(0)', x.mean(0), [3], [2.5, 3.5, 4.5]],
    ['mean(1, keep)', x.mean(1, true), [2, 1], [3, 4]],
    ['amax()', x.amax(), [], [6]],
    ['amax(0)', x.amax(0), [3], [4, 5, 6]],
    ['amax(1, keep)', x.amax(1, true), [2, 1], [5, 6]],
    ['amin()', x.amin(), [], [1]],
    ['amin(1)', x.amin(1), [2], [1, 2]],
    ['amin(0, keep)', x.amin(0, true), [1, 3], [1, 2, 3]],
    ['logsumexp(1)', tensor([0, 0, Math.log(2), Math.log(2)], [2, 2]).logsumexp(1), [2], [Math.log(2), Math.log(4)]],
    ['var(1) unbiased', x.var(1), [2], [4, 4]],
    ['var(1) biased', x.var(1, false), [2], [8 / 3, 8 / 3]],
  ];
  for (const [what, y, shape, v] of cases) {
    assert.deepEqual(y.shape, shape, what);
    assertClose(y, v, 1e-6, 1e-6, what);
  }
  // sum over an int64 tensor stays int64
  assert.equal(arange(0, 4).sum().dtype, 'int64');
  assert.equal(arange(0, 4).sum().item(), 6);
  // 3-D reduction over two dims
  const y = arange(0, 24).float().reshape([2, 3, 4]);
  assert.deepEqual(values(y.sum([0, 2])), [0 + 1 + 2 + 3 + 12 + 13 + 14 + 15, 4 + 5 + 6 + 7 + 16 + 17 + 18 + 19, 8 + 9 + 10 + 11 + 20 + 21 + 22 + 23]);
  assert.deepEqual(y.sum([0, 2], true).shape, [1, 3, 1]);
});

t('max(dim) gives values and indices; argmax over all and over a dim', () => {
  const x = tensor([1, 5, 3, 7, 2, 6], [2, 3]);
  const m1 = x.max(1);
  assert.deepEqual(values(m1.values), [5, 7]);
  assert.deepEqual(values(m1.indices), [1, 0]);
  assert.equal(m1.indices.dtype, 'int64');
  const m0 = x.max(0, true);
  assert.deepEqual(m0.values.shape, [1, 3]);
  assert.deepEqual(values(m0.values), [7, 5, 6]);
  assert.deepEqual(values(m0.indices), [1, 0, 1]);
  assert.equal(x.argmax().item(), 3);
  assert.deepEqual(x.argmax().shape, []);
  assert.deepEqual(values(x.argmax(1)), [1, 0]);
  assert.deepEqual(x.argmax(1, true).shape, [2, 1]);
  assert.deepEqual(values(x.argmax(0)), [1, 0, 1]);
});

// ---------------------------------------------------------------- linear algebra
t('matmul: 2-D, vector, batched with broadcasting; linear with and without bias', () => {
  const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = tensor([1, 0, 0, 1, 1, 1], [3, 2]);
  assert.deepEqual(values(a.matmul(b)), [4, 5, 10, 11]);
  assert.deepEqual(a.matmul(tensor([1, 1, 1])).shape, [2]);
  assert.deepEqual(values(a.matmul(tensor([1, 1, 1]))), [6, 15]);
  assertRef(seq([2, 2, 3], 1).matmul(seq([3, 2], 4)), REF.bmm, 1e-6, 'batched matmul');
  assertRef(F.linear(seq([3, 4], 1), seq([2, 4], 3), seq([2], 5)), REF.linear, 1e-6, 'linear');
  // linear without bias is x·Wᵀ, also over leading batch dims
  const w = tensor([1, 2, 3, 0, 0, 1], [2, 3]);
  assert.deepEqual(values(F.linear(a, w)), [14, 3, 32, 6]);
  const lin3 = F.linear(a.reshape([1, 2, 3]), w, tensor([1, -1]));
  assert.deepEqual(lin3.shape, [1, 2, 2]);
  assert.deepEqual(values(lin3), [15, 2, 33, 5]);
});

// ---------------------------------------------------------------- convolutions
t('conv2d: a hand-computed 3×3 case with padding', () => {
  // all-ones 3×3 kernel over a 3×3 input of 1..9 with padding 1: each output sums its neighbourhood
  const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
  const y = F.conv2d(x, ones([1, 1, 3, 3]), tensor([0.5]), { padding: 1 });
  assert.deepEqual(y.shape, [1, 1, 3, 3]);
  assert.deepEqual(values(y), [12, 21, 16, 27, 45, 33, 24, 39, 28].map((v) => v + 0.5));
  // stride 2 with no padding on a 5×5 input picks windows at 0 and 2
  const x5 = arange(0, 25).float().reshape([1, 1, 5, 5]);
  const y5 = F.conv2d(x5, ones([1, 1, 3, 3]), null, { stride: 2 });
  assert.deepEqual(values(y5), [54, 72, 144, 162]);
});

t('conv2d with stride, padding, dilation and groups matches PyTorch', () => {
  const x = seq([2, 4, 5, 5]);
  const w = seq([4, 4, 3, 3], 3);
  const b = seq([4], 5);
  assertRef(F.conv2d(x, w, b, { stride: 2, padding: 1 }), REF.conv_s2p1, 1e-4, 'stride 2 padding 1');
  assertRef(F.conv2d(x, w, null, { dilation: 2, padding: 1 }), REF.conv_d2, 1e-4, 'dilation 2');
  assertRef(F.conv2d(x, seq([4, 2, 3, 3], 1), b, { groups: 2, padding: [1, 0], stride: [1, 2] }), REF.conv_g2, 1e-4, 'groups 2');
  // the same numbers in float64
  assertRef(F.conv2d(seq([2, 4, 5, 5], 0, 'float64'), seq([4, 4, 3, 3], 3, 'float64'), seq([4], 5, 'float64'), { stride: 2, padding: 1 }),
    REF.conv_s2p1, 1e-10, 'float64');
  // and through the nn.Conv2d layer
  const conv = new nn.Conv2d(4, 4, 3, { stride: 2, padding: 1 });
  conv.loadStateDict({ weight: w, bias: b });
  assertRef(conv.forward(x), REF.conv_s2p1, 1e-4, 'nn.Conv2d');
  conv.dispose();
});

t('convTranspose2d with stride, padding, outputPadding and groups matches PyTorch', () => {
  const x = seq([1, 4, 3, 3], 2);
  assertRef(F.convTranspose2d(x, seq([4, 3, 3, 3], 4), seq([3], 6), { stride: 2, padding: 1, outputPadding: 1 }), REF.convT_s2, 1e-4, 'stride 2');
  assertRef(F.convTranspose2d(x, seq([4, 2, 2, 2], 5), null, { stride: 2, groups: 2 }), REF.convT_g2, 1e-4, 'groups 2');
  // output size (H-1)·s - 2p + d·(k-1) + op + 1
  const y = F.convTranspose2d(zeros([1, 2, 4, 5]), zeros([2, 3, 3, 3]), null, { stride: 3, padding: 1, outputPadding: 2 });
  assert.deepEqual(y.shape, [1, 3, (4 - 1) * 3 - 2 + 2 + 2 + 1, (5 - 1) * 3 - 2 + 2 + 2 + 1]);
  // a 1×1 input through a stride-2 transposed conv copies the kernel
  const k = arange(0, 4).float().reshape([1, 1, 2, 2]);
  assert.deepEqual(values(F.convTranspose2d(full([1, 1, 1, 1], 2), k, null, { stride: 2 })), [0, 2, 4, 6]);
});

// ---------------------------------------------------------------- normalisation
t('batchNorm in training mode normalises per channel and updates running stats with momentum', () => {
  const x = seq([3, 2, 2, 3], 1);
  const runningMean = tensor([0.5, -1]);
  const runningVar = tensor([2, 0.5]);
  const opts = { weight: tensor([1.5, -0.5]), bias: tensor([0.25, 1]), runningMean, runningVar, momentum: 0.3, eps: 1e-5 };
  const y = F.batchNorm(x, { ...opts, training: true });
  assertRef(y, REF.bn_train_y, 1e-5, 'output');
  // running_mean = (1-m)·old + m·batch mean; running_var uses the unbiased batch variance
  assertRef(runningMean, REF.bn_train_rm, 1e-6, 'running_mean');
  assertRef(runningVar, REF.bn_train_rv, 1e-6, 'running_var');
  // eval mode uses (and leaves alone) the running statistics
  const before = values(runningMean);
  assertRef(F.batchNorm(x, { ...opts, training: false }), REF.bn_eval_y, 1e-5, 'eval output');
  assert.deepEqual(values(runningMean), before);
  // without affine parameters, training output has per-channel mean 0 and biased variance 1
  const z = F.batchNorm(x, { training: true });
  assertClose(z.mean([0, 2, 3]), [0, 0], 1e-6);
  assertClose(z.var([0, 2, 3], false), [1, 1], 1e-4);
});

t('groupNorm matches PyTorch', () => {
  assertRef(F.groupNorm(seq([2, 6, 2, 2], 3), 3, seq([6], 1), seq([6], 2)), REF.gn, 1e-5);
  // without affine parameters each group of each sample has mean 0
  const g = F.groupNorm(seq([2, 6, 2, 2], 3), 2).reshape([2, 2, 12]);
  assertClose(g.mean(2), [0, 0, 0, 0], 1e-6);
});

// ---------------------------------------------------------------- activations and pooling
t('relu, sigmoid, softmax, logSoftmax', () => {
  assert.deepEqual(values(F.relu(tensor([-1, 0, 2]))), [0, 0, 2]);
  assert.deepEqual(values(tensor([-1, 0, 2]).relu()), [0, 0, 2]);
  const inPlace = tensor([-1, 3]);
  assert.equal(F.relu_(inPlace), inPlace);
  assert.deepEqual(values(inPlace), [0, 3]);
  assertClose(F.leakyRelu(tensor([-2, 2]), 0.1), [-0.2, 2], 1e-7);
  const x = seq([2, 5], 4);
  assertRef(F.sigmoid(x), REF.sigmoid, 1e-6, 'sigmoid');
  assertRef(F.softmax(x, 1), REF.softmax1, 1e-6, 'softmax dim 1');
  assertRef(x.softmax(-1), REF.softmax1, 1e-6, 'softmax dim -1');
  assertRef(F.softmax(x, 0), REF.softmax0, 1e-6, 'softmax dim 0');
  assertRef(F.logSoftmax(x, 1), REF.logsoftmax1, 1e-5, 'logSoftmax');
  // softmax is stable for large logits
  assertClose(F.softmax(tensor([1000, 1000]), 0), [0.5, 0.5], 1e-7);
});

t('maxPool2d and adaptiveAvgPool2d match PyTorch', () => {
  const x = seq([1, 2, 5, 5], 6);
  assertRef(F.maxPool2d(x, 2), REF.maxpool_k2, 1e-7, 'kernel 2');
  assertRef(F.maxPool2d(x, 3, { stride: 2, padding: 1 }), REF.maxpool_k3s2p1, 1e-7, 'kernel 3 stride 2 padding 1');
  assert.deepEqual(F.maxPool2d(x, 2, { ceilMode: true }).shape, [1, 2, 3, 3]);
  assertRef(F.adaptiveAvgPool2d(x, 2), REF.adapt2, 1e-6, 'adaptive 2');
  assertRef(F.adaptiveAvgPool2d(x, [3, 2]), REF.adapt_3x2, 1e-6, 'adaptive 3×2');
  assertClose(F.adaptiveAvgPool2d(x, 1).flatten(), values(x.mean([2, 3])), 1e-6);
  assert.deepEqual(values(F.avgPool2d(arange(0, 16).float().reshape([1, 1, 4, 4]), 2)), [2.5, 4.5, 10.5, 12.5]);
});

t('interpolate: bilinear (align corners false and true) and nearest match PyTorch', () => {
  const x = tensor([1, 2, 3, 4], [1, 1, 2, 2]);
  assertRef(F.interpolate(x, 4, 'bilinear'), REF.bilinear4, 1e-6, 'bilinear 2→4');
  assertRef(F.interpolate(x, 3, 'bilinear', true), REF.bilinear_ac, 1e-6, 'bilinear align corners');
  assertRef(F.interpolate(seq([1, 1, 2, 3], 1), [3, 5], 'bilinear'), REF.bilinear3x5, 1e-6, 'bilinear 2×3→3×5');
  assertRef(F.interpolate(seq([1, 1, 2, 3], 1), [3, 5], 'nearest'), REF.nearest3x5, 0, 'nearest 2×3→3×5');
  assert.deepEqual(values(F.interpolate(x, 4)), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
});

t('dropout: p=0 and eval are the identity; training zeroes about p and scales by 1/(1-p)', () => {
  const x = seq([4, 5], 1);
  assert.deepEqual(values(F.dropout(x, 0)), values(x));
  assert.deepEqual(values(F.dropout(x, 0.5, false)), values(x));
  const layer = new nn.Dropout(0.9).eval();
  assert.deepEqual(values(layer.forward(x)), values(x));
  manualSeed(7);
  const n = 100_000;
  const y = values(F.dropout(ones([n]), 0.3));
  const zeroFraction = y.filter((v) => v === 0).length / n;
  assert.ok(Math.abs(zeroFraction - 0.3) < 0.01, `zero fraction ${zeroFraction}`);
  const kept = y.filter((v) => v !== 0);
  assert.ok(kept.every((v) => Math.abs(v - 1 / 0.7) < 1e-6), 'kept values are scaled by 1/(1-p)');
  assert.ok(values(F.dropout(ones([100]), 1)).every((v) => v === 0));
});

// ---------------------------------------------------------------- losses and encodings
const longs = (v: number[], shape?: number[]): Tensor => tensor(BigInt64Array.from(v, BigInt), shape);

t('crossEntropy: reductions, class weights, ignoreIndex, spatial targets, label smoothing match PyTorch', () => {
  const lg = seq([4, 3], 2);
  const tg = longs([0, 2, 1, 2]);
  const cw = tensor([0.5, 2, 1]);
  const cases: [string, Tensor, Ref][] = [
    ['mean', F.crossEntropy(lg, tg), REF.ce_mean],
    ['none', F.crossEntropy(lg, tg, { reduction: 'none' }), REF.ce_none],
    ['sum', F.crossEntropy(lg, tg, { reduction: 'sum' }), REF.ce_sum],
    ['weighted mean', F.crossEntropy(lg, tg, { weight: cw }), REF.ce_w_mean],
    ['weighted none', F.crossEntropy(lg, tg, { weight: cw, reduction: 'none' }), REF.ce_w_none],
    ['ignore -100 mean', F.crossEntropy(lg, longs([0, -100, 1, 2])), REF.ce_ign_mean],
    ['ignore -100 none', F.crossEntropy(lg, longs([0, -100, 1, 2]), { reduction: 'none' }), REF.ce_ign_none],
    ['ignoreIndex 2 weighted', F.crossEntropy(lg, tg, { weight: cw, ignoreIndex: 2 }), REF.ce_ign2_w_mean],
    ['spatial none', F.crossEntropy(seq([2, 3, 2, 2], 1), longs([0, 1, 2, 1, 2, 2, 0, 1], [2, 2, 2]), { reduction: 'none' }), REF.ce_spatial_none],
    ['spatial weighted', F.crossEntropy(seq([2, 3, 2, 2], 1), longs([0, 1, 2, 1, 2, 2, 0, 1], [2, 2, 2]), { weight: cw }), REF.ce_spatial_w_mean],
    ['label smoothing', F.crossEntropy(lg, tg, { labelSmoothing: 0.1 }), REF.ce_ls],
  ];
  for (const [what, y, ref] of cases) assertRef(y, ref, 1e-5, what);
});

t('nllLoss over logSoftmax equals crossEntropy and matches PyTorch', () => {
  const lg = seq([4, 3], 2);
  const tg = longs([0, 2, 1, 2]);
  assertRef(F.nllLoss(F.logSoftmax(lg, 1), tg), REF.nll_mean, 1e-5, 'mean');
  assertRef(F.nllLoss(F.logSoftmax(lg, 1), tg, { weight: tensor([0.5, 2, 1]), reduction: 'sum' }), REF.nll_w_sum, 1e-5, 'weighted sum');
  // by hand: nll picks -input[i, target[i]]
  assert.deepEqual(values(F.nllLoss(tensor([1, 2, 3, 4], [2, 2]), longs([1, 0]), { reduction: 'none' })), [-2, -3]);
  assert.equal(F.nllLoss(tensor([1, 2, 3, 4], [2, 2]), longs([1, -100])).item(), -2);
});

t('binaryCrossEntropyWithLogits and mseLoss by hand', () => {
  const z = tensor(new Float64Array([0, 2, -1]));
  const y = tensor(new Float64Array([1, 0, 1]));
  const bce = (zi: number, yi: number): number => -(yi * Math.log(1 / (1 + Math.exp(-zi))) + (1 - yi) * Math.log(1 - 1 / (1 + Math.exp(-zi))));
  const expected = [bce(0, 1), bce(2, 0), bce(-1, 1)];
  assertClose(F.binaryCrossEntropyWithLogits(z, y, null, 'none'), expected, 1e-12);
  assertClose([F.binaryCrossEntropyWithLogits(z, y).item()], [expected.reduce((a, b) => a + b) / 3], 1e-12);
  assert.equal(F.mseLoss(tensor([1, 2, 3]), tensor([1, 4, 0])).item(), Math.fround((0 + 4 + 9) / 3));
  assert.deepEqual(values(F.mseLoss(tensor([1, 2]), tensor([0, 0]), 'none')), [1, 4]);
});

t('oneHot: int64 output with a trailing class dim', () => {
  const y = F.oneHot(longs([0, 2, 1]), 3);
  assert.equal(y.dtype, 'int64');
  assert.deepEqual(y.shape, [3, 3]);
  assert.deepEqual(values(y), [1, 0, 0, 0, 0, 1, 0, 1, 0]);
  const y2 = F.oneHot(longs([1, 0, 3, 3], [2, 2]), 4);
  assert.deepEqual(y2.shape, [2, 2, 4]);
  assert.deepEqual(values(y2.argmax(-1)), [1, 0, 3, 3]);
  assert.deepEqual(values(y2.sum(-1)), [1, 1, 1, 1]);
  assert.throws(() => F.oneHot(longs([3]), 3), /^Error: oneHot: /);
});

t('kernels give the same results with one and two intra-op threads', () => {
  // sizes above libtorch's parallel grain (32768 elements) so that the threaded paths really run
  const x = seq([2, 8, 48, 48], 3).requiresGrad_();
  const w = seq([8, 8, 3, 3], 5).mul(0.1).requiresGrad_();
  const run = (threads: number): number[][] => {
    const previous = getNumThreads();
    setNumThreads(threads);
    try {
      return tidy(() => {
        x.clearGrad();
        w.clearGrad();
        const y = F.batchNorm(F.conv2d(x, w, null, { padding: 1 }), { training: true });
        const loss = F.crossEntropy(F.softmax(y, 1).log(), F.relu(y).argmax(1));
        loss.backward();
        return [values(y.sum([0, 2, 3])), [loss.item()], values(w.grad!), values(x.grad!.flatten().slice(0, 0, 36864, 97)),
          values(F.interpolate(y, [96, 96], 'bilinear').mean([2, 3])), values(F.maxPool2d(y, 2).amax([0, 2, 3]))];
      });
    } finally {
      setNumThreads(previous);
    }
  };
  const one = run(1);
  const two = run(2);
  assert.equal(getNumThreads(), 1);
  one.forEach((v, i) => assertClose(two[i], v, 1e-4, 1e-4, `output ${i}`));
});
