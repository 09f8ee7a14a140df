"""``lookwhere review``: the naming task's review page over recorded sessions, without the live server.

The page ``lookwhere serve`` offers at ``/review``, started alone on session folders (after the
session, on any machine holding the folders). Cheap to import: FastAPI, uvicorn and the analysis
stack are imported only inside :func:`main`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.voice.cli import add_detector_arguments, voice_params_from_args
from lookwhere.transport import DEFAULT_HOST


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="SESSION",
        help="session folders (lookwhere run --out …/PARTICIPANT) or folders of them",
    )
    parser.add_argument(
        "--bind", default=DEFAULT_HOST, help="interface (default loopback; elsewhere a token is required)"
    )
    parser.add_argument("--http-port", type=int, default=8766, help="page port (default 8766; 0: any free one)")
    parser.add_argument("--token", help="page token when not on loopback (default: a random one, printed)")
    parser.add_argument("--reviewer", default="", help="initials stored with each saved review (editable on the page)")
    add_detector_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from server.app import create_review_app
    from server.cli import open_listener, run_app
    from server.review import ReviewConfig, ReviewLibrary

    missing = [str(path) for path in args.paths if not path.is_dir()]
    if missing:
        raise FileNotFoundError(f"no such session folder: {', '.join(missing)}")
    library = ReviewLibrary(
        args.paths, params=voice_params_from_args(args), names=args.names == "on", synonyms=args.synonyms
    )
    if not library.session_list().sessions:
        raise FileNotFoundError(
            f"no session with audio in {', '.join(map(str, args.paths))}: expected folders holding trials.jsonl "
            "with mic_file rows, as lookwhere run writes"
        )
    listener = open_listener(args.bind, args.http_port)
    config = ReviewConfig(
        roots=tuple(args.paths), bind=args.bind, http_port=listener.getsockname()[1], token=args.token
    )
    host = f"[{config.bind}]" if ":" in config.bind else config.bind
    query = "&".join(f"{k}={v}" for k, v in (("token", config.token), ("reviewer", args.reviewer)) if v)
    print(f"review: http://{host}:{config.http_port}/review{'?' + query if query else ''}", flush=True)
    print("stop with Ctrl-C", flush=True)
    run_app(create_review_app(config, library), listener)
    return 0
