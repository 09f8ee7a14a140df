"""Benchmark: all attention maps from shared passes vs captum's methods run one by one.

Default mode (CPU-friendly, a couple of minutes on 2 cores): the same seeded images through

- **shared** — :func:`analysis.cnn.engine.compute_maps` (every map: CAM, Grad-CAM, Guided Backprop,
  Guided Grad-CAM, the dense model): one forward and three partial backward passes per batch;
- **captum, one by one** on torchvision's stock VGG16 with the same weights — ``LayerGradCam``
  (relu5_3, ``relu_attributions=True``), ``GuidedBackprop``, ``GuidedGradCam`` (bilinear), plus a
  plain forward (hooks on the five block outputs) and ``torch.autograd.grad`` of the Gestalt Total for
  the dense sensitivities — the sum of their times.

Times: both sides in one process, interleaved (A B A B …) after a warm-up so that load from other
processes hits both alike; the minimum is reported (with the median). Peak memory: each side
in its own subprocess with only its own model: peak RSS from ``resource.getrusage`` (CPU; it
includes the ≈0.55 GB of weights and the initialisation, so the increment over the peak after
loading is printed too) or ``torch.cuda.max_memory_allocated`` (CUDA).

``--gpu-sweep``: images/s of the shared passes at 224×224 for batch sizes 1, 2, 4, …, 64 with TF32 off
and on (``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``), plus
the captum reference at one batch size for the ratio on that device.

Run: ``.venv/bin/python bench/bench_cnn.py [--images 4] [--size 224] [--repeats 3]`` or
``.venv/bin/python bench/bench_cnn.py --gpu-sweep``. Weights are untrained (seed 0): timing does not
depend on them.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup(device_name: str, side: str, size: int, count: int, seed: int = 0):
    """Model of one side (``shared``: our VGG16; ``captum``: torchvision's stock VGG16 with the same
    seeded weights and out-of-place ReLUs), seeded images, CAM weights and top-1 targets."""
    import torch
    import torchvision

    from analysis.cnn.model import load_vgg16

    device = torch.device(device_name)
    if side == "shared":
        model = load_vgg16("untrained", seed=0)
    else:
        torch.manual_seed(0)  # the same initialisation as load_vgg16("untrained", seed=0)
        model = torchvision.models.vgg16(weights=None)
        for module in model.modules():
            if isinstance(module, torch.nn.ReLU):
                module.inplace = False  # captum's guided hooks and our hooks need out-of-place ReLUs
        model = model.eval().requires_grad_(False)
    model = model.to(device)
    images = torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(seed)).to(device)
    cam_weights = torch.randn(1000, 512, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    return torch, model, images, cam_weights, targets


def _shared(torch, model, images, cam_weights, targets):
    from analysis.cnn.engine import compute_maps

    compute_maps(model, images, cam_weights=cam_weights, targets=targets)


def _captum_one_by_one(torch, stock, images, targets):
    from captum.attr import GuidedBackprop, GuidedGradCam, LayerGradCam

    from analysis.cnn.model import BLOCK_OUTPUTS

    layer = stock.features[BLOCK_OUTPUTS["relu5_3"]]
    target_list = targets.tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum warns each time it hooks the ReLUs
        LayerGradCam(stock, layer).attribute(images, target=target_list, relu_attributions=True)
        GuidedBackprop(stock).attribute(images.clone().requires_grad_(), target=target_list)
        GuidedGradCam(stock, layer).attribute(
            images.clone().requires_grad_(), target=target_list, interpolate_mode="bilinear"
        )
    # Dense sensitivities: a plain forward with hooks, one backward of the Gestalt Total.
    captured = []
    handles = [
        stock.features[i].register_forward_hook(lambda _m, _i, out: captured.append(out))
        for i in BLOCK_OUTPUTS.values()
    ]
    try:
        with torch.enable_grad():
            stock(images.clone().requires_grad_())
            torch.autograd.grad(captured[-1].mean(dim=(1, 2, 3)).sum(), captured)
    finally:
        for handle in handles:
            handle.remove()


def _one_call_s(torch, function, device) -> float:
    """Wall time of one call in seconds, waiting for queued CUDA work on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _time(torch, function, *, repeats: int, device) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call, in seconds."""
    function()
    times = sorted(_one_call_s(torch, function, device) for _ in range(repeats))
    return times[len(times) // 2]


def worker(args) -> None:
    """Peak memory of one side, in its own process (one warm-up + one call); prints one JSON line."""
    torch, model, images, cam_weights, targets = _setup(args.device, args.worker, args.size, args.images)
    rss_after_load = _rss_mb()
    if images.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        if args.worker == "shared":
            _shared(torch, model, images, cam_weights, targets)
        else:
            _captum_one_by_one(torch, model, images, targets)
    result = {"peak_rss_mb": _rss_mb(), "rss_after_load_mb": rss_after_load}
    if images.device.type == "cuda":
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result))


def _peak_memory(side: str, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        side,
        "--device",
        args.device,
        "--images",
        str(args.images),
        "--size",
        str(args.size),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(output.strip().splitlines()[-1])


def _interleaved_times(torch, functions: dict, *, repeats: int, device) -> dict[str, list[float]]:
    """Wall times of each function, alternating A B A B … after one warm-up call of each, so that
    load from other processes hits both sides alike."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            times[name].append(_one_call_s(torch, function, device))
    return times


def compare(args) -> None:
    memory = {side: _peak_memory(side, args) for side in ("shared", "captum")}
    torch, model, images, cam_weights, targets = _setup(args.device, "shared", args.size, args.images)
    stock = _setup(args.device, "captum", args.size, 1)[1]
    times = _interleaved_times(
        torch,
        {
            "shared": lambda: _shared(torch, model, images, cam_weights, targets),
            "captum": lambda: _captum_one_by_one(torch, stock, images, targets),
        },
        repeats=args.repeats,
        device=images.device,
    )

    print(
        f"# CNN attention maps: {args.images} images at {args.size}x{args.size}, one batch, device {args.device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; times: min (median) of {args.repeats} "
        "interleaved runs after a warm-up; memory: separate process per side"
    )
    header = f"{'method':<50} {'s/batch':>15} {'images/s':>9} {'peak RSS MiB':>13} {'over load MiB':>14}"
    cuda = "cuda_peak_mb" in memory["shared"]
    if cuda:
        header += f" {'CUDA peak MiB':>14}"
    print(header)
    labels = {"shared": "shared passes (all 13 maps)", "captum": "captum one by one (GradCAM+GB+GGC+dense fwd/bwd)"}
    for side, label in labels.items():
        best, median = min(times[side]), sorted(times[side])[len(times[side]) // 2]
        row = memory[side]
        line = (
            f"{label:<50} {best:>6.3f} ({median:>6.3f}) {args.images / best:>9.2f} {row['peak_rss_mb']:>13.0f} "
            f"{row['peak_rss_mb'] - row['rss_after_load_mb']:>14.0f}"
        )
        if cuda:
            line += f" {row['cuda_peak_mb']:>14.0f}"
        print(line)
    print(f"speed-up shared / captum (min times): {min(times['captum']) / min(times['shared']):.2f}x (target >= 2x)")


def gpu_sweep(args) -> None:
    torch, model, _, cam_weights, _ = _setup(args.device, "shared", args.size, 1)
    stock = _setup(args.device, "captum", args.size, 1)[1]
    device = torch.device(args.device)
    sizes = [int(s) for s in args.sweep_batches.split(",")]
    device_label = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(
        f"# shared passes, {args.size}x{args.size}, device {device_label}, torch {torch.__version__}, "
        f"median of {args.repeats} after warm-up"
    )
    print(f"{'TF32':<5} {'batch':>5} {'s/batch':>9} {'images/s':>9} {'CUDA peak MiB':>14}")
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        for batch in sizes:
            images = torch.randn(batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
            with torch.no_grad():
                targets = model(images).argmax(dim=1)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            try:
                seconds = _time(
                    torch,
                    lambda: _shared(torch, model, images, cam_weights, targets),  # noqa: B023 — timed now
                    repeats=args.repeats,
                    device=device,
                )
            except torch.OutOfMemoryError:
                print(f"{'on' if tf32 else 'off':<5} {batch:>5} {'out of memory':>9}")
                break
            peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
            print(
                f"{'on' if tf32 else 'off':<5} {batch:>5} {seconds:>9.4f} {batch / seconds:>9.1f} {peak:>14.0f}",
                flush=True,
            )
        # The captum reference at one batch size, for the ratio on this device.
        batch = args.reference_batch
        images = torch.randn(batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
        with torch.no_grad():
            targets = model(images).argmax(dim=1)
        times = _interleaved_times(
            torch,
            {
                "shared": lambda: _shared(torch, model, images, cam_weights, targets),  # noqa: B023 — timed now
                "captum": lambda: _captum_one_by_one(torch, stock, images, targets),  # noqa: B023
            },
            repeats=args.repeats,
            device=device,
        )
        shared, captum = min(times["shared"]), min(times["captum"])
        print(
            f"TF32 {'on' if tf32 else 'off'}, batch {batch}: shared {batch / shared:.1f} images/s, captum one by one "
            f"{batch / captum:.1f} images/s, speed-up {captum / shared:.2f}x",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4, help="images in the batch (default 4)")
    parser.add_argument("--size", type=int, default=224, help="input side in px (default 224)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions after a warm-up (default 3)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--gpu-sweep", action="store_true", help="images/s for batch sizes 1..64, TF32 off/on")
    parser.add_argument("--sweep-batches", default="1,2,4,8,16,32,64", help="batch sizes of the sweep")
    parser.add_argument("--reference-batch", type=int, default=8, help="batch of the captum reference in the sweep")
    parser.add_argument("--worker", choices=("shared", "captum"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.worker:
        worker(args)
    elif args.gpu_sweep:
        gpu_sweep(args)
    else:
        compare(args)


if __name__ == "__main__":
    main()
