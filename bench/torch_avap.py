#!/usr/bin/env python3
"""PyTorch twin of avap's whole AVAP model (backbone + AVM + APM), for bench/avap.ts.

The backbone is torch_unet.py's ResNet34 U-Net; the heads mirror src/models/heads/variation.ts,
preference.ts and src/models/avap.ts: the same state_dict names and shapes and the same construction
order, so torch.manual_seed(s) gives the TypeScript model's initial weights under the same seed
(bench/avap.ts checks it). The losses mirror src/train/losses.ts. The model runs as a plain PyTorch
port does: one forward for both heads, frozen modules in eval mode with requires_grad off. Options
give the configurations PyTorch users reach for: channels-last memory, CPU bf16 autocast, and glibc's
mmap threshold raised (the setting avap's addon makes at load; without it every large activation is
page-faulted and zeroed afresh each step).

  /usr/bin/python3 bench/torch_avap.py --task step1|step2|infer|names [--annotators 6] [--batch 8]
      [--size 256] [--threads 2] [--steps 3] [--warmup 1] [--seed 0] [--channels-last] [--bf16]
      [--keep-freed-memory] [--state-dict-out FILE.safetensors]

Prints one JSON line on stdout: {"ms": [...], "peak_rss_mb": float, "params": int, ...}.
"""
import argparse
import contextlib
import ctypes
import json
import os
import resource
import sys

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before torch loads, as in torch_unet.py

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet import Decoder, ResNet34Encoder, save_safetensors, timed  # noqa: E402

EPS = 1e-5
CONSENSUS_EPS = 1e-4


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = ResNet34Encoder()
        self.decoder = Decoder()

    def forward(self, x):
        return self.decoder(*self.encoder(x))


def variation_branch(channels, hidden, annotators):
    """Two blocks of (conv 3x3 -> ReLU -> BN) x 2, then a 1x1 conv to M + 1 agreement classes.

    The classifier is built first, as in variation.ts, so it draws its initial weights first."""
    classifier = nn.Conv2d(hidden, annotators + 1, 1)
    layers = []
    for i in range(4):
        layers += [nn.Conv2d(channels if i == 0 else hidden, hidden, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(hidden)]
    return nn.Sequential(*layers, classifier)


class VariationHead(nn.Module):
    def __init__(self, channels, structures, annotators, hidden=32):
        super().__init__()
        self.branches = nn.ModuleList([variation_branch(channels, hidden, annotators) for _ in range(structures)])

    def forward(self, features):
        return [b(features) for b in self.branches]


class DynamicHead(nn.Module):
    """A controller generates three dynamic convolutions per (image, annotator), run as grouped convolutions."""

    def __init__(self, channels, annotators, structures, hidden=8):
        super().__init__()
        h = hidden
        self.h, self.K, self.M = h, structures, annotators
        self.reduce = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, h, 1))
        self.sizes = [h * h * 9, h, h * h * 9, h, structures * h, structures]
        self.controller = nn.Conv2d(channels + annotators, sum(self.sizes), 1)
        last = sum(self.sizes[:4])
        with torch.no_grad():
            self.controller.weight[last:].zero_()
            self.controller.bias[last:].zero_()
        self.bn1 = nn.BatchNorm2d(h)
        self.bn2 = nn.BatchNorm2d(h)

    def forward(self, features, annotators):
        B, C, H, W = features.shape
        A = annotators.shape[1]
        N, h, K = B * A, self.h, self.K
        pooled = F.adaptive_avg_pool2d(features, 1).unsqueeze(1).expand(B, A, C, 1, 1).reshape(N, C, 1, 1)
        codes = F.one_hot(annotators.reshape(-1), self.M).to(pooled.dtype).view(N, self.M, 1, 1)
        params = self.controller(torch.cat([pooled, codes], 1)).view(N, -1)
        w1, b1, w2, b2, w3, b3 = torch.split(params, self.sizes, 1)
        reduced = self.reduce(features)
        x = F.conv2d(reduced.reshape(1, B * h, H, W), w1.reshape(N * h, h, 3, 3), b1.reshape(N * h), padding=1, groups=B)
        x = self.bn1(F.relu(x).reshape(N, h, H, W)).reshape(1, N * h, H, W)
        x = F.conv2d(x, w2.reshape(N * h, h, 3, 3), b2.reshape(N * h), padding=1, groups=N)
        x = self.bn2(F.relu(x).reshape(N, h, H, W)).reshape(1, N * h, H, W)
        x = F.conv2d(x, w3.reshape(N * K, h, 1, 1), b3.reshape(N * K), groups=N)
        return x.reshape(B, A, K, H, W)


def expected_agreement(logits, M):
    counts = torch.arange(M + 1, dtype=logits.dtype, device=logits.device).view(1, M + 1, 1, 1)
    return (F.softmax(logits, 1) * counts).sum(1) / M


class PreferenceGate(nn.Module):
    """The gate's buffers (src/models/heads/preferenceGate.ts); at identity it leaves the APM's output as it is."""

    def __init__(self, annotators, structures, candidates=6):
        super().__init__()
        self.register_buffer("common", torch.ones(annotators, structures))
        self.register_buffer("own", torch.ones(annotators, structures))
        self.register_buffer("held_out_dice", torch.zeros(candidates, annotators, structures))
        self.register_buffer("held_out_cases", torch.zeros(annotators, structures))


class AVAP(nn.Module):
    def __init__(self, annotators, structures=2, features=32):
        super().__init__()
        self.M = annotators
        self.backbone = Backbone()
        self.avm = VariationHead(features, structures, annotators)
        self.apm = DynamicHead(features, annotators, structures)
        self.gate = PreferenceGate(annotators, structures)

    def forward(self, x, annotators=None):
        f = self.backbone(x)
        variation = self.avm(f)
        if annotators is None:
            return variation, None
        # Annotator m's logits: logit(consensus) + the APM's departure from it (src/models/avap.ts).
        p = torch.stack([expected_agreement(l.detach().float(), self.M) for l in variation], 1).clamp(CONSENSUS_EPS, 1 - CONSENSUS_EPS)
        consensus = (p.log() - (1 - p).log()).unsqueeze(1)
        return variation, self.apm(f, annotators) + consensus


def soft_dice_loss(p, y):
    p, y = p.flatten(1), y.flatten(1)
    return (1 - ((p * y).sum(1) * 2 + EPS) / (p.sum(1) + y.sum(1) + EPS)).mean()


def variation_loss(logits, counts, mean_vote, M):
    return F.cross_entropy(logits, counts) + soft_dice_loss(expected_agreement(logits, M), mean_vote)


def preference_loss(logits, masks):
    return F.binary_cross_entropy_with_logits(logits, masks) + soft_dice_loss(torch.sigmoid(logits), masks)


def keep_freed_memory():
    """glibc: never mmap a block for malloc, never trim the heap (M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-1, 2**31 - 1)
    libc.mallopt(-3, 2**31 - 1)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=["step1", "step2", "infer", "names"], required=True)
    p.add_argument("--annotators", type=int, default=6)
    p.add_argument("--structures", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--bf16", action="store_true", help="autocast to bfloat16 around the forward pass (on --device)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--keep-freed-memory", action="store_true", help="raise glibc's mmap and trim thresholds")
    p.add_argument("--state-dict-out", metavar="FILE.safetensors")
    return p.parse_args()


def main():
    a = parse_args()
    if a.keep_freed_memory:
        keep_freed_memory()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    M, K, B, S = a.annotators, a.structures, a.batch, a.size
    model = AVAP(M, K)
    if a.task == "names":
        state = model.state_dict()
        if a.state_dict_out:
            save_safetensors(a.state_dict_out, state, {"format": "pt", "seed": str(a.seed)})
        for name, t in state.items():
            print(f"{name} [{','.join(str(d) for d in t.shape)}]")
        return
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    if cuda:
        # As avap does on a GPU: deterministic cuDNN algorithms, no benchmarking.
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=fmt)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if a.bf16 else contextlib.nullcontext

    # Drawn on the CPU (the same numbers on every device), then uploaded once.
    gen = torch.Generator().manual_seed(a.seed + 1)
    x = torch.randn(B, 3, S, S, generator=gen).to(device).contiguous(memory_format=fmt)
    masks = (torch.rand(B, M, K, S, S, generator=gen) > 0.5).float().to(device)
    counts, mean_votes = masks.sum(1).long(), masks.mean(1)
    chosen = torch.randint(0, M, (B,), generator=gen).to(device)

    if a.task == "step1":
        # Backbone + AVM train; the APM is frozen and not evaluated (its output is not part of the loss).
        model.train()
        model.apm.eval().requires_grad_(False)
        params = [p for m in (model.backbone, model.avm) for p in m.parameters()]
        opt = torch.optim.Adam(params, lr=1e-4, weight_decay=1e-5)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                variation, _ = model(x)
            loss = sum(variation_loss(l.float(), counts[:, s], mean_votes[:, s], M) for s, l in enumerate(variation))
            loss.backward()
            opt.step()
            return loss.item()
    elif a.task == "step2":
        # The APM trains on a frozen backbone and AVM (eval mode, no gradients), one annotator per image,
        # through the model's one forward pass.
        model.eval().requires_grad_(False)
        model.apm.train().requires_grad_(True)
        opt = torch.optim.Adam(model.apm.parameters(), lr=1e-4, weight_decay=1e-5)
        target = masks[torch.arange(B, device=device), chosen]

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                _, preference = model(x, chosen.view(B, 1))
            loss = preference_loss(preference.float().squeeze(1), target)
            loss.backward()
            opt.step()
            return loss.item()
    else:
        # One image: the calibrated map of every structure and every annotator's probability maps,
        # against the same with one annotator; alternating, as bench/avap.ts's own measurement.
        model.eval()
        x1 = x[:1].contiguous(memory_format=fmt)
        everyone = torch.arange(M, device=device).view(1, M)
        one = torch.zeros(1, 1, dtype=torch.long, device=device)

        def infer(annotators):
            with torch.no_grad(), autocast():
                variation, preference = model(x1, annotators)
                calibrated = torch.stack([expected_agreement(l.float(), M) for l in variation], 1)
                return calibrated.sum().item() + torch.sigmoid(preference.float()).sum().item()

    result = {"params": sum(p.numel() for p in model.parameters())}
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    if a.task == "infer":
        for _ in range(a.warmup):
            infer(everyone)
            infer(one)
        all_ms, one_ms = [], []
        for _ in range(a.steps):
            all_ms += timed(lambda: infer(everyone), 1)
            one_ms += timed(lambda: infer(one), 1)
        result.update({"ms": all_ms, "one_ms": one_ms})
    else:
        result["first_loss"] = step()
        for _ in range(a.warmup - 1):
            step()
        result["ms"] = timed(step, a.steps)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if cuda:
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
