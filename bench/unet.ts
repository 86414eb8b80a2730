// The benchmark network: the paper's ResNet34 U-Net backbone plus a 1×1 classifier, identical
// (names, shapes, initialisation order) to bench/torch_unet.py.
import { Tensor, nn } from '../src/torch';
import { UnetBackbone, DEFAULT_BACKBONE } from '../src/models/backbone';

export class BenchUnet extends nn.Module {
  readonly backbone: UnetBackbone;
  readonly head: nn.Conv2d;
  constructor(classes = 2) {
    super();
    // Registered flat (encoder.*, decoder.*) like the Python twin, so state dicts compare key by key.
    this.backbone = new UnetBackbone(DEFAULT_BACKBONE);
    this.registerModule('encoder', this.backbone.encoder);
    this.registerModule('decoder', this.backbone.decoder);
    this.head = this.registerModule('head', new nn.Conv2d(DEFAULT_BACKBONE.featureChannels, classes, 1));
  }
  forward(x: Tensor): Tensor {
    return this.head.forward(this.backbone.forward(x));
  }
}
