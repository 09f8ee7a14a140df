"""``lookwhere demo``: the main job on embedded defaults.

Today it re-analyses the real OSIE recordings that sit beside the project (``../shared/data/osie``):
human heatmaps of the first images, every baseline, and — unless ``--no-cnn`` — a CNN map store of
those images (untrained weights unless pretrained ones are cached, labelled as such), ending with
the HTML report. The live session (server, dashboard, simulated participants) joins it when the
experiment and server packages land.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "osie"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="OSIE folder (holds eye/fixations.mat and stimuli/)")
    parser.add_argument("--images", type=int, default=12, help="how many images to analyse (first ones by id)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    parser.add_argument("--no-cnn", action="store_true", help="score the baselines only (no map store)")


def _build_map_store(stimuli: Path, out: Path, images: tuple[str, ...]) -> Path:
    """CNN maps of the demo images: ImageNet weights when torchvision can load them, else untrained."""
    from analysis.cnn.model import load_vgg16
    from analysis.cnn.precompute import precompute_store
    from stimuli.sets import StimulusSet

    try:
        model = load_vgg16("imagenet")
    except FileNotFoundError as error:
        logger.warning("%s", error)
        logger.warning("the demo continues with UNTRAINED weights; its CNN maps are labelled untrained")
        model = load_vgg16("untrained", seed=0)
    precompute_store(model, StimulusSet(stimuli), out, image_ids=list(images))
    return out


def main(args: argparse.Namespace) -> int:
    from analysis.heatmap import HeatmapParams
    from analysis.offline import AnalysisConfig, run_analysis
    from stimuli.sets import StimulusSet

    fixations = args.data / "eye" / "fixations.mat"
    stimuli = args.data / "stimuli"
    if not fixations.is_file() or not stimuli.is_dir():
        raise FileNotFoundError(
            f"the demo data is not at {args.data} (expected eye/fixations.mat and stimuli/); "
            "clone the project beside shared/ or pass --data"
        )
    started = time.perf_counter()
    images = tuple(StimulusSet(stimuli).image_ids[: args.images])
    maps = None if args.no_cnn else _build_map_store(stimuli, args.out / "maps", images)
    config = AnalysisConfig(
        dataset="osie", fixations=fixations, stimuli=stimuli, out=args.out, images=images,
        maps=maps, heatmap=HeatmapParams(), bootstrap_resamples=2000,
    )
    result = run_analysis(config)
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print(f"report: {result.files['report'].resolve()}")
    return 0
