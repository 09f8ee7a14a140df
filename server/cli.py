"""``lookwhere serve``: the live analysis server and the experimenter's dashboard.

Cheap to import: FastAPI, uvicorn and the analysis stack are imported only inside :func:`main`.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from analysis.cli import add_scoring_arguments, scoring_from_args
from lookwhere.transport import DEFAULT_HOST


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stimuli", type=Path, required=True, help="folder of the stimulus images")
    parser.add_argument("--maps", type=Path, help="CNN map store (lookwhere precompute); without it: baselines only")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("lookwhere-data"),
        help="where records are persisted and the pooled state is reloaded from (default: ./lookwhere-data)",
    )
    parser.add_argument(
        "--sessions",
        type=Path,
        help="session folders (lookwhere run --out) whose naming audio the review page /review opens "
        "(default: those under --data)",
    )
    parser.add_argument(
        "--bind",
        default=DEFAULT_HOST,
        help="interface for HTTP and ZeroMQ (default loopback; elsewhere a token is required)",
    )
    parser.add_argument("--http-port", type=int, default=8765, help="dashboard port (0: any free one)")
    parser.add_argument("--zmq-port", type=int, default=5555, help="fixation stream port (0: any free one)")
    parser.add_argument("--token", help="dashboard token when not on loopback (default: a random one, printed)")
    parser.add_argument("--curve-secret", type=Path, help="server secret key file (lookwhere keys) for CURVE")
    parser.add_argument("--curve-allowed", type=Path, help="folder of the allowed clients' public keys")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where live scores are computed (default auto: CUDA when present); same numbers",
    )
    for name, default, what in (
        ("validation-good-deg", 0.5, "a validation's average error up to which it shows green"),
        ("validation-poor-deg", 1.0, "above which it shows red (amber in between)"),
        ("drift-alarm-deg", 1.0, "drift-check offset that, two trials in a row, sounds the alarm"),
    ):
        parser.add_argument(f"--{name}", type=float, default=default, help=f"{what} (default: {default}°)")
    add_scoring_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from threadpoolctl import threadpool_limits

    from server.app import create_app, open_resources
    from server.config import ServeConfig

    # One BLAS thread: the engines' products are small, and OpenBLAS's second thread spins after
    # each one, which on 2 cores doubled an image's preparation CPU (2.0 s instead of 1.0 s for
    # 20 maps of 800×600) for the same wall time, CPU the scoring and the receiver need.
    threadpool_limits(limits=1, user_api="blas")
    # The scoring thread runs many short numpy steps, each taking the GIL; while the next image is
    # prepared in another thread it waited up to 5 ms (Python's default) for each, 100 ms for the
    # first scoring of a trial. Switching every 0.5 ms costs a little throughput, no latency.
    sys.setswitchinterval(0.0005)

    listener = open_listener(args.bind, args.http_port)
    config = ServeConfig(
        **dict(scoring_from_args(args)),
        stimuli=args.stimuli,
        maps=args.maps,
        data_dir=args.data,
        sessions=args.sessions,
        bind=args.bind,
        http_port=listener.getsockname()[1],
        zmq_port=args.zmq_port,
        token=args.token,
        curve_secret=args.curve_secret,
        curve_allowed=args.curve_allowed,
        device=args.device,
        validation_good_deg=args.validation_good_deg,
        validation_poor_deg=args.validation_poor_deg,
        drift_alarm_deg=args.drift_alarm_deg,
    )
    open_resources(config)  # bad input: one clear line now, not a traceback from the web server
    app = create_app(config)
    app.state.announce = lambda lines: print("\n".join(lines), flush=True)
    run_app(app, listener)
    return 0


def open_listener(bind: str, port: int):
    """A listening TCP socket on ``bind:port`` (0: any free port) for :func:`run_app`.

    Raises
    ------
    OSError
        When the port is taken (the message says what to do).
    """
    import socket

    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it Nagle holds a WebSocket update back until the
    # browser's delayed ACK (40 ms) whenever the previous one is still unacknowledged.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        listener.bind((bind, port))
        listener.listen(128)  # clients that come before the app is up wait in the backlog
    except OSError as error:
        listener.close()
        raise OSError(
            f"cannot listen on {bind}:{port} ({error.strerror}); choose another --http-port (0: any free one)"
        ) from None
    return listener


def run_app(app, listener) -> None:
    """Serve ``app`` on ``listener`` with uvicorn until Ctrl-C."""
    import uvicorn

    # No per-message deflate: the feed is small JSON up to 250 times a second on the lab network,
    # and compressing it cost the event loop more CPU than sending it.
    # A dashboard left open keeps connections that uvicorn would otherwise wait for, without end,
    # after Ctrl-C.
    config_uvicorn = uvicorn.Config(
        app,
        log_level="warning",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=3,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl+C it has shut down on
        uvicorn.Server(config_uvicorn).run(sockets=[listener])
