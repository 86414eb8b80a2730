// The Annotator Preference Modeling (APM) head, section III-D: a controller generates the filters of three
// dynamic convolutions from [GAP(F) ‖ one-hot annotator code] (Eq. 4–5), so one small head mimics each
// annotator (Eq. 6). Following DoDNet, whose head the paper adopts, F is first reduced to 8 channels.
import { F, Tensor, cat, inPrecision, nn, noGrad, tensor, tidy } from '../../torch';

/** What the controller sees (Table IV's ablation): both, only the annotator code, or only the features. */
export type Conditioning = 'both' | 'code' | 'features';

export interface PreferenceHeadOptions {
  inChannels: number;
  annotators: number;
  structures: number;
  hidden?: number;
  conditioning?: Conditioning;
}

export class DynamicHead extends nn.Module {
  readonly reduce: nn.Sequential;
  readonly controller: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly bn2: nn.BatchNorm2d;
  readonly hidden: number;
  readonly conditioning: Conditioning;
  /** Sizes of the generated parameters, in the order the controller emits them. */
  private readonly paramSizes: number[];

  constructor(readonly opts: PreferenceHeadOptions) {
    super();
    const h = (this.hidden = opts.hidden ?? 8);
    const K = opts.structures;
    this.conditioning = opts.conditioning ?? 'both';
    this.reduce = this.registerModule('reduce', new nn.Sequential(new nn.BatchNorm2d(opts.inChannels), new nn.ReLU(), new nn.Conv2d(opts.inChannels, h, 1)));
    // w1 (h×h×3×3), b1, w2 (h×h×3×3), b2, w3 (K×h×1×1), b3.
    this.paramSizes = [h * h * 9, h, h * h * 9, h, K * h, K];
    const controllerInputs = (this.conditioning === 'code' ? 0 : opts.inChannels) + (this.conditioning === 'features' ? 0 : opts.annotators);
    this.controller = this.registerModule('controller', new nn.Conv2d(controllerInputs, this.paramSizes.reduce((a, b) => a + b, 0), 1));
    // The last layer's generated filters start at zero, so every annotator's departure from the
    // consensus (see AVAP.forward) starts at none and grows only where the annotations show one.
    const lastLayer = this.paramSizes[0] + this.paramSizes[1] + this.paramSizes[2] + this.paramSizes[3];
    noGrad(() => tidy(() => {
      this.controller.weight.narrow(0, lastLayer, K * h + K).zero_();
      this.controller.bias!.narrow(0, lastLayer, K * h + K).zero_();
    }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(h));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm2d(h));
  }

  /** Number of generated parameters per (image, annotator): the controller's output width. */
  get generatedParameters(): number {
    return this.paramSizes.reduce((a, b) => a + b, 0);
  }

  /**
   * features: F_img [B, C, H, W]; annotators: for each image, the annotator indices (0-based) to predict —
   * the same number A for every image. Returns logits [B, A, K, H, W] (in AVAP, offsets from the consensus).
   * All B·A dynamic networks run as grouped convolutions (layer 1: groups = B, as an image's annotators share
   * its input; layers 2–3: groups = B·A), so predicting all M annotators costs one backbone pass plus this head.
   */
  forward(features: Tensor, annotators: number[][]): Tensor {
    return tidy(() => inPrecision(this.precision, () => {
      const [B, C, H, W] = features.shape;
      const A = annotators[0]?.length ?? 0;
      if (annotators.length !== B || A === 0 || annotators.some((a) => a.length !== A)) {
        throw new Error(`DynamicHead: annotators must list the same non-zero number of annotator indices for each of the ${B} images`);
      }
      const N = B * A;
      const h = this.hidden;
      const K = this.opts.structures;

      // Controller input per (image, annotator): [GAP(F) ‖ V], shape [N, C + M, 1, 1].
      const parts: Tensor[] = [];
      if (this.conditioning !== 'code') {
        const pooled = F.adaptiveAvgPool2d(features, 1); // [B, C, 1, 1]
        parts.push(pooled.unsqueeze(1).expand([B, A, C, 1, 1]).reshape([N, C, 1, 1]));
      }
      if (this.conditioning !== 'features') {
        parts.push(oneHotCodes(annotators.flat(), this.opts.annotators, features.device).view([N, this.opts.annotators, 1, 1]));
      }
      const params = this.controller.forward(parts.length === 1 ? parts[0] : cat(parts, 1)).reshape([N, this.generatedParameters]);
      const [w1, b1, w2, b2, w3, b3] = split(params, this.paramSizes);

      // The dynamic layers run in NCHW: there libtorch's grouped convolutions of 8 channels per group and
      // the per-group batch norms were faster than in channels-last at M = 32 (bench:avap).
      const reduced = this.reduce.forward(features).contiguous(); // [B, h, H, W]
      // Layer 1: all A annotators of an image read the same input, so one group per image (groups = B,
      // A·h filters each) computes it without copying the features A times: 17% of the head at M = 32.
      let x = F.conv2d(reduced.reshape([1, B * h, H, W]), w1.reshape([N * h, h, 3, 3]), b1.reshape([N * h]), { padding: 1, groups: B });
      x = this.bn1.forward(F.relu_(x).view([N, h, H, W])).view([1, N * h, H, W]);
      x = F.conv2d(x, w2.reshape([N * h, h, 3, 3]), b2.reshape([N * h]), { padding: 1, groups: N });
      x = this.bn2.forward(F.relu_(x).view([N, h, H, W])).view([1, N * h, H, W]);
      x = F.conv2d(x, w3.reshape([N * K, h, 1, 1]), b3.reshape([N * K]), { groups: N });
      return x.reshape([B, A, K, H, W]);
    }, features.device));
  }
}

function split(params: Tensor, sizes: number[]): Tensor[] {
  let offset = 0;
  return sizes.map((n) => {
    const part = params.narrow(1, offset, n);
    offset += n;
    return part;
  });
}

/** One-hot annotator codes V (Eq. 4) for a list of 0-based annotator indices: [N, M] float32. */
export function oneHotCodes(indices: number[], annotators: number, device: string): Tensor {
  const codes = new Float32Array(indices.length * annotators);
  indices.forEach((k, i) => {
    if (!Number.isInteger(k) || k < 0 || k >= annotators) throw new Error(`annotator index ${k} is out of range 0..${annotators - 1}`);
    codes[i * annotators + k] = 1;
  });
  const t = tensor(codes, [indices.length, annotators]);
  return device === 'cpu' ? t : t.to(device);
}
