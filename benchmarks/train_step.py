"""Training-step throughput of the full-width VUNet: images/s and achieved GFLOP/s.

One step = forward (train mode) + color_L1 + KL loss + backward + Adam step, batch 8,
for the original widths (base 32, max 128) at 64 px (box 2, bottleneck 2) and 128 px
(box 1, bottleneck 1). FLOPs of a step are counted once with
``torch.utils.flop_counter.FlopCounterMode`` (convolutions/matmuls, forward and
backward); the achieved rate is compared with an fp32 matmul measured in the same
run, interleaved with the steps, so a busy machine affects both alike. On CUDA the
step runs under bf16 autocast and the matmul reference is bf16. ``--perceptual``
adds rows with a VGG19 perceptual term on random weights (its cost only: no real
VGG weights ship with the project). Run: ``python benchmarks/train_step.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.vgg import cfgs, make_layers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vunet_core.config import LossesConfig, LossTerm, ModelConfig, PerceptualTerm  # noqa: E402
from vunet_core.losses import compute_losses  # noqa: E402
from vunet_core.model import VUNet, appearance_channels, count_parameters, crop_size  # noqa: E402
from vunet_core.perceptual import PerceptualLoss  # noqa: E402

SETTINGS = {64: (2, 2), 128: (1, 1)}  # spatial size -> (box_factor, bottleneck_factor)


@dataclass
class Row:
    label: str
    size: int
    batch: int
    params: int
    img_per_s: float
    best_img_per_s: float
    gflop_per_s: float
    matmul_gflop_per_s: float

    @property
    def fraction(self) -> float:
        return self.gflop_per_s / self.matmul_gflop_per_s


def tune_glibc_malloc() -> bool:
    """Keep freed memory in the process (no mmap/trim per step). Without it, big tensors
    (weight gradients) come back as fresh pages: 250-3300 minor page faults per 64 px
    step here, with no measurable cost on an idle machine; opt-in for that reason."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's maximum
    ok &= libc.mallopt(m_trim_threshold, 1 << 34)
    ok &= libc.mallopt(m_top_pad, 256 << 20)
    return bool(ok)


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 3) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_step(
    size: int, batch: int, device: torch.device, channels_last: bool, vgg_file: str | None
) -> tuple[Callable[[], None], int]:
    box, bottleneck = SETTINGS[size]
    cfg = ModelConfig(spatial_size=size, box_factor=box, bottleneck_factor=bottleneck)
    torch.manual_seed(0)
    model = VUNet(cfg).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    pose = torch.rand(batch, 3, size, size, device=device).mul(2).sub(1).contiguous(memory_format=fmt)
    sc = crop_size(cfg)
    crops = torch.rand(batch, appearance_channels(cfg), sc, sc, device=device).mul(2).sub(1)
    crops = crops.contiguous(memory_format=fmt)
    target = torch.rand(batch, 3, size, size, device=device).mul(2).sub(1)
    model.data_dependent_init(pose, crops)
    model.train()
    losses = LossesConfig(color_L1=LossTerm(weight=637.5), KL=LossTerm(weight=1.0))
    perceptual = None
    if vgg_file is not None:
        vgg_term = PerceptualTerm(weight=5.0, vgg_weights=vgg_file)  # the reference objective, spec §6.1
        losses = LossesConfig(color_L1=LossTerm(weight=0.0), KL=LossTerm(weight=1.0), perceptual=vgg_term)
        perceptual = PerceptualLoss(losses.perceptual).to(device)
    # fused Adam: one kernel over each parameter (CPU and CUDA); the update is the same Adam
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.9), eps=1e-8, fused=True)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            out = model(pose, crops, "train")
            loss = compute_losses(losses, 0, target, out, perceptual)["batch"]["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, count_parameters(model)


def count_flops(step: Callable[[], None]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def measure(label: str, size: int, args: argparse.Namespace, device: torch.device, vgg: str | None) -> Row:
    step, params = make_step(size, args.batch, device, args.channels_last, vgg)
    step()  # warm-up (allocator, oneDNN/cuDNN kernel choice)
    flops = count_flops(step)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    steps_per_round = args.steps if args.steps else (3 if size <= 64 else 2)
    step_times, matmul_rates = [], []
    for _ in range(args.rounds):  # interleaved: both see the same machine load
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps_per_round):
            step()
        _sync(device)
        step_times.append((time.perf_counter() - start) / steps_per_round)
        matmul_rates.append(matmul_gflops(device, dtype))
    t = statistics.median(step_times)
    rate = statistics.median(matmul_rates)
    return Row(label, size, args.batch, params, args.batch / t, args.batch / min(step_times), flops / t / 1e9, rate)


@contextlib.contextmanager
def random_vgg_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vgg19_random.pth"
        torch.save(make_layers(cfgs["E"]).state_dict(), path)
        yield str(path)


def print_table(rows: list[Row], header: str) -> None:
    print(header)
    print("img/s, GFLOP/s and fp32 matmul GFLOP/s are medians over rounds; best = fastest round")
    print(
        f"{'run':<31} {'size':>4} {'batch':>5} {'params':>11} {'img/s':>6} {'best':>6} {'GFLOP/s':>8} {'matmul':>7} {'frac':>5}"
    )
    for r in rows:
        print(
            f"{r.label:<31} {r.size:>4} {r.batch:>5} {r.params:>11,} {r.img_per_s:>6.2f} {r.best_img_per_s:>6.2f} "
            f"{r.gflop_per_s:>8.1f} {r.matmul_gflop_per_s:>7.1f} {r.fraction:>5.0%}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128], choices=sorted(SETTINGS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    p.add_argument("--steps", type=int, default=0, help="steps per round (0: 3 at 64 px, 2 at 128 px)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    p.add_argument("--malloc-tuning", action="store_true", help="glibc: no trim/mmap per step (no page faults)")
    p.add_argument("--perceptual", action="store_true", help="also time a step with a random-weight VGG19 term")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tuned = args.malloc_tuning and tune_glibc_malloc()
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    rows = [measure("color_L1 + KL", s, args, device, None) for s in args.sizes]
    if args.perceptual:
        with random_vgg_file() as vgg:
            rows += [measure("5*perceptual + KL (random VGG)", s, args, device, vgg) for s in args.sizes]
    where = torch.cuda.get_device_name() + ", bf16 autocast" if use_cuda else f"CPU, {torch.get_num_threads()} threads"
    extra = f"channels_last={args.channels_last}, malloc tuning={tuned}, Adam fused"
    print_table(rows, f"VUNet training step (forward + backward + Adam), {where}, {extra}; torch {torch.__version__}")


if __name__ == "__main__":
    main()
