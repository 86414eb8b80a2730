#!/usr/bin/env python3
"""PyTorch twin of avap's ResNet34-UNet, for the engine benchmark (bench/engine.ts).

Builds the same network as the TypeScript model, with the same state_dict names and shapes, and
times CPU training steps and single-image inference so the libtorch-addon numbers have a
reference. Needs only python3 + torch (torchvision is not assumed, so ResNet34 is defined here).

  python3 bench/torch_unet.py --threads 4 --batch 8 --size 256 --train-steps 20 --infer-steps 50 \
      --warmup 3 --seed 0 [--state-dict-out init.safetensors] [--print-names]

Prints one JSON line on stdout at the end:
  {"train_ms": [...], "infer_ms": [...], "peak_rss_mb": float, "params": int}
Everything else goes to stderr. With --print-names it prints "name [d0,d1,...]" for every
state_dict entry (parameters and buffers) instead of benchmarking.
"""
import argparse
import json
import os
import resource
import struct
import sys
import time

# OpenBLAS spawns its own thread pool on top of torch's intra-op pool; the two oversubscribe the
# cores and make timings noisy. It reads this variable once, when the library loads, so it must be
# set before `import torch`. (The TypeScript side runs libtorch with the same setting.)
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import torch  # noqa: E402  (must come after the environment is set)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ---------------------------------------------------------------------------------------------
# ResNet34 encoder, with torchvision's module names (minus `fc`) so checkpoints map 1:1.
# ---------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, in_ch, out_ch, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        # Projection shortcut only when the shape changes, as in torchvision.
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch),
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def make_layer(in_ch, out_ch, blocks, stride):
    layers = [BasicBlock(in_ch, out_ch, stride)]
    layers += [BasicBlock(out_ch, out_ch, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet34Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_layer(64, 64, 3, 1)
        self.layer2 = make_layer(64, 128, 4, 2)
        self.layer3 = make_layer(128, 256, 6, 2)
        self.layer4 = make_layer(256, 512, 3, 2)

    def forward(self, x):
        s0 = self.relu(self.bn1(self.conv1(x)))  # 64 ch, H/2
        s1 = self.layer1(self.maxpool(s0))  # 64, H/4
        s2 = self.layer2(s1)  # 128, H/8
        s3 = self.layer3(s2)  # 256, H/16
        s4 = self.layer4(s3)  # 512, H/32
        return s0, s1, s2, s3, s4


# ---------------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------------
class UnetBlock(nn.Module):
    """Upsample `up` 2x, project `skip`, concatenate (half the channels each), ReLU, then BN."""

    def __init__(self, up_in, x_in, n_out):
        super().__init__()
        half = n_out // 2
        self.tr_conv = nn.ConvTranspose2d(up_in, half, 2, stride=2)
        self.x_conv = nn.Conv2d(x_in, half, 1)
        self.bn = nn.BatchNorm2d(n_out)

    def forward(self, up, skip):
        return self.bn(F.relu(torch.cat([self.tr_conv(up), self.x_conv(skip)], 1)))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.up1 = UnetBlock(512, 256, 256)
        self.up2 = UnetBlock(256, 128, 256)
        self.up3 = UnetBlock(256, 64, 256)
        self.up4 = UnetBlock(256, 64, 256)
        self.up5 = nn.ConvTranspose2d(256, 32, 2, stride=2)

    def forward(self, s0, s1, s2, s3, s4):
        x = self.up1(s4, s3)  # 256, H/16
        x = self.up2(x, s2)  # 256, H/8
        x = self.up3(x, s1)  # 256, H/4
        x = self.up4(x, s0)  # 256, H/2
        return self.up5(x)  # F_img: 32, H


class ResNet34UNet(nn.Module):
    def __init__(self, classes=2):
        super().__init__()
        self.encoder = ResNet34Encoder()
        self.decoder = Decoder()
        self.head = nn.Conv2d(32, classes, 1)

    def forward(self, x):
        return self.head(self.decoder(*self.encoder(x)))


# ---------------------------------------------------------------------------------------------
# safetensors writer (no safetensors package): same layout as the reference writer and as
# src/torch/safetensors.ts, so the TypeScript side can load it and compare names and shapes.
# ---------------------------------------------------------------------------------------------
_SAFE_DTYPES = {  # torch dtype -> (safetensors name, reference sort rank = alignment order)
    torch.bool: ("BOOL", 0),
    torch.uint8: ("U8", 1),
    torch.int8: ("I8", 2),
    torch.int16: ("I16", 5),
    torch.float16: ("F16", 7),
    torch.bfloat16: ("BF16", 8),
    torch.int32: ("I32", 9),
    torch.float32: ("F32", 11),
    torch.float64: ("F64", 12),
    torch.int64: ("I64", 13),
}


def _raw_le_bytes(t):
    """Little-endian C-order bytes of a CPU tensor (numpy has no bfloat16: go through int16)."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    arr = t.numpy()
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def save_safetensors(path, tensors, metadata=None):
    # Descending alignment, then name by UTF-8 bytes: the reference order, which also keeps every
    # tensor aligned to its element size.
    names = sorted(tensors, key=lambda n: (-_SAFE_DTYPES[tensors[n].dtype][1], n.encode("utf-8")))
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    for name in names:
        data = _raw_le_bytes(tensors[name])
        header[name] = {
            "dtype": _SAFE_DTYPES[tensors[name].dtype][0],
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad with spaces to a multiple of 8
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)  # atomic, like src/io/atomic.ts


# ---------------------------------------------------------------------------------------------
# Benchmark
# ---------------------------------------------------------------------------------------------
def timed(fn, n):
    """Milliseconds of each of n calls."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--batch", type=int, default=8, help="training batch size")
    p.add_argument("--size", type=int, default=256, help="image height = width (multiple of 32)")
    p.add_argument("--train-steps", type=int, default=10, help="timed training steps")
    p.add_argument("--infer-steps", type=int, default=20, help="timed one-image inferences")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before each timed phase")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--state-dict-out", metavar="FILE.safetensors", help="write the initial state dict")
    p.add_argument("--print-names", action="store_true", help="print state_dict names and shapes, then exit")
    a = p.parse_args()
    if a.size % 32 != 0 or a.size <= 0:
        p.error(f"--size must be a positive multiple of 32 (the encoder downsamples 32x), got {a.size}")
    for flag in ("threads", "batch"):
        if getattr(a, flag) < 1:
            p.error(f"--{flag} must be >= 1")
    for flag in ("train_steps", "infer_steps", "warmup"):
        if getattr(a, flag) < 0:
            p.error(f"--{flag.replace('_', '-')} must be >= 0")
    return a


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = ResNet34UNet()  # PyTorch default init, drawn from the seeded global generator

    state = model.state_dict()
    if args.state_dict_out:
        save_safetensors(args.state_dict_out, state, {"format": "pt", "seed": str(args.seed)})
        print(f"wrote {len(state)} tensors to {args.state_dict_out}", file=sys.stderr)
    if args.print_names:
        for name, t in state.items():
            print(f"{name} [{','.join(str(d) for d in t.shape)}]")
        return

    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5)

    # One fixed batch, drawn once: the benchmark measures the network, not data generation.
    gen = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
    target = torch.randint(0, 2, (args.batch, args.size, args.size), generator=gen)
    x1 = x[:1].contiguous()

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        return loss.item()  # forces completion of the step (and would catch NaNs when debugging)

    def infer_step():
        return model(x1)

    model.train()
    for _ in range(args.warmup):
        train_step()
    train_ms = timed(train_step, args.train_steps)

    model.eval()
    with torch.no_grad():
        for _ in range(args.warmup):
            infer_step()
        infer_ms = timed(infer_step, args.infer_steps)

    result = {
        "train_ms": [round(v, 3) for v in train_ms],
        "infer_ms": [round(v, 3) for v in infer_ms],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # ru_maxrss is KiB on Linux
        "params": params,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
