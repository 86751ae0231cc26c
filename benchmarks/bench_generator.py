"""Speed and agreement of our StyleGAN2 generator vs the straightforward reference (the baseline), on CPU.

The baseline is ``benchmarks/stylegan2_reference.py``: an independently written forward pass of the same
network (per-sample modulated and demodulated weights, one grouped convolution, NVlabs' transposed-conv +
FIR upsampling) that reads our generator's NVlabs-named state dict. Both run config-f (channel_base
32768, channel_max 512, conv_clamp 256) at 256x256 with seeded random weights, nonzero noise strengths
and a nonzero ``w_avg``, on the same z with ``truncation_psi=0.7``, ``noise_mode='const'``, under
``torch.inference_mode()`` with 2 CPU threads. After one warm-up run of each, 5 (batch 1) or 3 (batch 4)
runs of ours and of the reference alternate so that drift in machine load hits both alike.

For batch 1 and batch 4 it prints the median seconds per image of each, the ratio ours/reference (below
1 = ours is faster) and the largest difference max|ours - ref| / max|ref|, with PASS/FAIL lines for
"ratio <= 1.0" and "rel diff <= 1e-4". Timing never fails the run (benchmarks report, tests assert); it
exits 1 only when the outputs disagree by more than 1e-4 relative.

With CUDA it also prints images/s of ours at 1024x1024 config-f, batch 1 and 8, in fp32 and, when the
generator takes ``num_fp16_res``, in mixed fp16. ``--quick`` uses 64x64 and one timed run of each without
warm-up (a smoke test; its timings are not meaningful).
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylegan2_reference import reference_generate  # noqa: E402

from neural_backend.stylegan2 import Generator  # noqa: E402

REL_TOLERANCE = 1e-4
PSI = 0.7
NOISE_STRENGTH = 0.1


def config_f_generator(resolution: int, seed: int = 0, **kwargs: Any) -> Generator:
    """Config-f generator with seeded random weights, nonzero noise strengths and a nonzero w_avg."""
    torch.manual_seed(seed)
    generator = Generator(
        img_resolution=resolution, channel_base=32768, channel_max=512, conv_clamp=256, **kwargs
    ).eval()
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(NOISE_STRENGTH)
        generator.mapping.w_avg.copy_(torch.randn_like(generator.mapping.w_avg) * 0.5)
    return generator


def _seconds(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def compare_cpu(generator: Generator, batch: int, runs: int, warmup: int) -> bool:
    """Time ours vs the reference at one batch size; print one result line and two PASS/FAIL lines.

    Returns whether the outputs agree within ``REL_TOLERANCE``.
    """
    state = generator.state_dict()
    config = generator.init_kwargs
    z = torch.randn(batch, generator.z_dim, generator=torch.Generator().manual_seed(123))

    def ours() -> torch.Tensor:
        return generator(z, truncation_psi=PSI, noise_mode="const")

    def reference() -> torch.Tensor:
        return reference_generate(state, config, z, truncation_psi=PSI, noise_mode="const")

    ours_times: list[float] = []
    ref_times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            ours()
            reference()
        for _ in range(runs):
            seconds, out_ours = _seconds(ours)
            ours_times.append(seconds / batch)
            seconds, out_ref = _seconds(reference)
            ref_times.append(seconds / batch)
    t_ours = statistics.median(ours_times)
    t_ref = statistics.median(ref_times)
    ratio = t_ours / t_ref
    rel = ((out_ours - out_ref).abs().max() / out_ref.abs().max()).item()
    res = generator.img_resolution
    label = f"{res}px batch {batch}"
    print(
        f"config-f {label}: ours {t_ours:.3f} s/img  reference {t_ref:.3f} s/img  "
        f"ratio ours/reference = {ratio:.3f}  max rel diff = {rel:.2e}"
    )
    print(f"{'PASS' if ratio <= 1.0 else 'FAIL'} ratio <= 1.0 ({label})")
    print(f"{'PASS' if rel <= REL_TOLERANCE else 'FAIL'} rel diff <= {REL_TOLERANCE:g} ({label})")
    return rel <= REL_TOLERANCE


def gpu_images_per_second(generator: Generator, batch: int, runs: int, warmup: int) -> float:
    """Images/s of ``generator`` on CUDA for one batch size, synchronising around the timed region."""
    z = torch.randn(batch, generator.z_dim, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    with torch.inference_mode():
        for _ in range(warmup):
            generator(z, truncation_psi=PSI, noise_mode="const")
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(runs):
            generator(z, truncation_psi=PSI, noise_mode="const")
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return batch * runs / elapsed


def gpu_section(quick: bool) -> None:
    """Images/s of ours at 1024x1024 config-f, batch 1 and 8, fp32 (and fp16 when supported)."""
    if not torch.cuda.is_available():
        print("no CUDA device: GPU images/s not measured")
        return
    resolution = 64 if quick else 1024
    runs, warmup = (1, 1) if quick else (10, 3)
    variants: list[tuple[str, dict[str, Any]]] = [("fp32", {})]
    if "num_fp16_res" in inspect.signature(Generator).parameters:
        variants.append(("fp16 (num_fp16_res=4)", {"num_fp16_res": 4}))
    else:
        print("Generator has no num_fp16_res: fp16 images/s not measured")
    device = torch.cuda.get_device_name()
    for name, kwargs in variants:
        generator = config_f_generator(resolution, **kwargs).cuda()
        for batch in (1, 8):
            ips = gpu_images_per_second(generator, batch, runs, warmup)
            print(f"GPU {device} config-f {resolution}px {name} batch {batch}: {ips:.1f} images/s")
        del generator
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="64x64 and a single timed run (smoke test)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    resolution = 64 if args.quick else 256
    generator = config_f_generator(resolution)
    print(f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}")
    ok = True
    # (batch, timed runs of each, warm-up runs of each); --quick: one cold run of each, no warm-up.
    plan = [(1, 1, 0), (4, 1, 0)] if args.quick else [(1, 5, 1), (4, 3, 1)]
    for batch, runs, warmup in plan:
        ok = compare_cpu(generator, batch, runs, warmup) and ok
    gpu_section(args.quick)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
