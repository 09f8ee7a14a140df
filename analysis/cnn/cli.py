"""``lookwhere precompute``: CNN attention maps of a stimulus set into a map store.

Cheap to import: torch is imported only inside :func:`main`.
"""

from __future__ import annotations

import argparse
import logging

from analysis.distributed import add_scheduler_argument

__all__ = ["add_arguments", "main"]

logger = logging.getLogger(__name__)


def _input_size(value: str) -> int | None:
    if value == "native":
        return None
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer side in pixels or 'native'; got {value!r}") from None
    if size < 32:
        raise argparse.ArgumentTypeError(f"input size must be >= 32 px (VGG16 pools 5 times); got {size}")
    return size


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {value!r}")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stimuli", required=True, metavar="DIR", help="folder of stimulus images")
    parser.add_argument("--out", required=True, metavar="STORE", help="map store folder (created or resumed)")
    parser.add_argument(
        "--weights",
        default="imagenet",
        metavar="imagenet|PATH|untrained",
        help="VGG16 weights: torchvision's IMAGENET1K_V1 (default), a local state dict, "
        "or 'untrained' (seeded random init, labelled untrained everywhere)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --weights untrained (default 0)")
    parser.add_argument(
        "--input-size",
        type=_input_size,
        default=224,
        metavar="224|native",
        help="network input: whole image resized to N×N (default 224) or native size",
    )
    parser.add_argument("--batch-size", type=_positive_int, default=8, help="images per pass (default 8)")
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: CUDA when available"
    )
    parser.add_argument(
        "--gt",
        choices=("mean", "sum"),
        default="mean",
        help="Gestalt Total of the dense model, eq. 6 (default mean, as printed)",
    )
    parser.add_argument(
        "--layer-norm",
        choices=("minmax", "raw"),
        default="minmax",
        help="dense per-layer maps min-max normalised before summing (default) or raw",
    )
    parser.add_argument(
        "--guided-reduction",
        choices=("max_abs", "sum_abs"),
        default="max_abs",
        help="channel reduction of the guided maps (default max |g|)",
    )
    parser.add_argument(
        "--cam-ridge-alpha",
        type=float,
        default=None,
        help="relative ridge strength of the CAM regression (default 1e-2)",
    )
    parser.add_argument(
        "--images", default=None, metavar="ID,ID", help="comma-separated image ids (default: the whole set)"
    )
    parser.add_argument(
        "--export-npz",
        default=None,
        metavar="DIR",
        help="also write DIR/<image id>.npz with every map at the original image size",
    )
    add_scheduler_argument(parser, work="compute the batches (one worker per GPU with dask-cuda)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    import torch

    from analysis.cnn.cam import DEFAULT_RIDGE_ALPHA
    from analysis.cnn.engine import MapParameters
    from analysis.cnn.model import load_vgg16
    from analysis.cnn.precompute import precompute_store, precompute_store_distributed
    from analysis.distributed import open_client
    from stimuli.sets import StimulusSet

    stimuli = StimulusSet(args.stimuli)
    parameters = MapParameters(gt=args.gt, layer_norm=args.layer_norm, guided_reduction=args.guided_reduction)
    image_ids = None if args.images is None else [i.strip() for i in args.images.split(",") if i.strip()]
    options = dict(
        input_size=args.input_size,
        batch_size=args.batch_size,
        device=args.device,
        parameters=parameters,
        image_ids=image_ids,
        ridge_alpha=DEFAULT_RIDGE_ALPHA if args.cam_ridge_alpha is None else args.cam_ridge_alpha,
        progress=not args.no_progress,
    )
    if args.scheduler is None:
        store = precompute_store(load_vgg16(args.weights, seed=args.seed), stimuli, args.out, **options)
    else:
        # A local cluster gets one worker per GPU of this machine (none with --device cpu).
        gpus = 0 if args.device == "cpu" else torch.cuda.device_count()
        with open_client(args.scheduler, gpus=gpus) as client:
            store = precompute_store_distributed(client, args.weights, stimuli, args.out, seed=args.seed, **options)
    logger.info(
        "map store %s: %d images, %d maps each%s",
        store.path,
        len(store.image_ids),
        len(store.map_names),
        " (UNTRAINED weights)" if store.is_untrained else "",
    )
    if args.export_npz is not None:
        written = store.export_npz(args.export_npz, image_ids=image_ids)
        logger.info("exported %d npz files to %s", len(written), args.export_npz)
    return 0
