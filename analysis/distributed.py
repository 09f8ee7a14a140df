"""``--scheduler``: the Dask client that ``lookwhere precompute`` and ``lookwhere analyze`` hand their work to.

``--scheduler local`` starts a cluster of worker processes on this machine for the run (one thread
each; one worker per GPU with dask-cuda's ``LocalCUDACluster`` when the caller asks for GPU workers,
GPUs are present and ``dask_cuda`` is importable); ``local:N`` sets the number of workers; an address
(``tcp://HOST:8786``) joins a running cluster, started with ``dask scheduler`` on one machine and
``dask worker tcp://HOST:8786`` on each machine that computes. Workers read the inputs and write
the outputs by path, so on a cluster they must lie on storage every machine mounts at the same path.

Dask is an optional dependency (the extra ``distributed``): it is imported only here, and only when
a scheduler is asked for.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["Scheduler", "add_scheduler_argument", "broadcast", "open_client", "parse_scheduler", "run_batches"]

logger = logging.getLogger(__name__)

_INSTALL_HINT = "pip install .[distributed]"
_START_HINT = (
    "start one with `dask scheduler` (it prints its address, tcp://HOST:8786) and workers with "
    "`dask worker tcp://HOST:8786` on the machines that should compute, or use --scheduler local[:N]"
)


@dataclass(frozen=True)
class Scheduler:
    """A parsed ``--scheduler``: a local cluster (``address`` None) of ``n_workers`` workers (None:
    one per GPU, else one per CPU core), or the ``address`` of a running scheduler."""

    address: str | None = None
    n_workers: int | None = None

    def __str__(self) -> str:
        if self.address is not None:
            return self.address
        return "local" if self.n_workers is None else f"local:{self.n_workers}"


def parse_scheduler(text: str) -> Scheduler:
    """``"local"``, ``"local:N"`` (N >= 1 workers) or a scheduler address (``tcp://HOST:PORT``, ``HOST:PORT``).

    Raises
    ------
    ValueError
        An empty value, a bad worker count, or an address without a port.
    """
    text = text.strip()
    if text == "local":
        return Scheduler()
    if text.startswith("local:"):
        count = text.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--scheduler local:N needs a worker count N >= 1; got {text!r}")
        return Scheduler(n_workers=int(count))
    host_port = text.split("://", 1)[-1]
    if not host_port or ":" not in host_port or not host_port.rsplit(":", 1)[1].isdigit():
        raise ValueError(
            f"--scheduler must be local, local:N or a scheduler address such as tcp://HOST:8786; got {text!r}"
        )
    return Scheduler(address=text)


def _scheduler_type(text: str) -> Scheduler:
    try:
        return parse_scheduler(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_scheduler_argument(parser: argparse.ArgumentParser, *, work: str) -> None:
    """``--scheduler local[:N]|ADDRESS`` (default: none, everything in this process); ``work`` says
    what the workers do, for the help text."""
    parser.add_argument(
        "--scheduler",
        type=_scheduler_type,
        default=None,
        metavar="local[:N]|ADDRESS",
        help=f"{work} on Dask workers: 'local' starts N worker processes here (default one per GPU, else "
        "per CPU core), an address (tcp://HOST:8786) joins a running `dask scheduler`; needs the extra "
        f"'distributed' ({_INSTALL_HINT}). Default: no scheduler, one process",
    )


@contextmanager
def open_client(
    scheduler: Scheduler,
    *,
    gpus: int = 0,
    connect_timeout_s: float = 10.0,
    workers_timeout_s: float = 60.0,
) -> Iterator[Client]:
    """A Dask client for ``scheduler`` with at least one worker; closed (with its local cluster) on exit.

    Parameters
    ----------
    scheduler : Scheduler
        From :func:`parse_scheduler`.
    gpus : int
        GPUs the work could use on this machine (0: CPU work). A local cluster then gets one worker
        per GPU (``local:N``: the first N) from dask-cuda's ``LocalCUDACluster`` when ``dask_cuda``
        is importable; without it, CPU-process workers that share the default GPU (with a warning).
    connect_timeout_s : float
        How long to try to reach a scheduler address.
    workers_timeout_s : float
        How long to wait for the scheduler's first worker.

    Raises
    ------
    ImportError
        Dask is not installed.
    OSError
        No scheduler answers at the address, or it has no worker.
    ValueError
        ``local:N`` asks for more GPU workers than there are GPUs.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:
        raise ImportError(f"--scheduler needs Dask's distributed scheduler ({error}); {_INSTALL_HINT}") from None
    with ExitStack() as stack:
        if scheduler.address is None:
            cluster = stack.enter_context(_local_cluster(LocalCluster, n_workers=scheduler.n_workers, gpus=gpus))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(_connect(Client, scheduler.address, timeout_s=connect_timeout_s))
        try:
            client.wait_for_workers(1, timeout=workers_timeout_s)
        except TimeoutError:
            raise OSError(
                f"the Dask scheduler at {scheduler} has no worker after {workers_timeout_s:g} s; "
                f"start workers with `dask worker {scheduler}` on the machines that should compute"
            ) from None
        logger.info("Dask scheduler %s: %d workers", scheduler, len(client.scheduler_info()["workers"]))
        yield client


def _connect(client_class, address: str, *, timeout_s: float):
    try:
        return client_class(address, timeout=timeout_s)
    except OSError as error:
        raise OSError(f"no Dask scheduler answers at {address} ({error}); {_START_HINT}") from None


def _local_cluster(cluster_class, *, n_workers: int | None, gpus: int):
    """A ``LocalCUDACluster`` (one worker per GPU) when there are GPUs and dask-cuda, else a
    ``LocalCluster`` of single-threaded worker processes."""
    if gpus:
        if n_workers is not None and n_workers > gpus:
            raise ValueError(f"--scheduler local:{n_workers} asks for more GPU workers than the {gpus} GPUs here")
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            logger.warning(
                "dask-cuda is not installed: the local workers all use the default GPU "
                "(pip install dask-cuda for one worker per GPU)"
            )
        else:
            return LocalCUDACluster(n_workers=n_workers or gpus, threads_per_worker=1)
    count = n_workers or gpus or os.cpu_count() or 1
    # No dashboard: a local cluster lives for one command (a `dask scheduler` serves one at :8787).
    return cluster_class(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None)


def broadcast(client: Client, value) -> Future:
    """``value`` sent once to every worker (a list or dict stays one object); pass the future to
    :func:`run_batches` instead of the value, which would travel with every task."""
    return client.scatter([value], broadcast=True, hash=False)[0]


def run_batches(client: Client, function: Callable, batches: Sequence[Sequence[str]], *, bar, **arguments) -> list:
    """``function(batch, **arguments)`` for every batch, as tasks on the workers; the results in batch order.

    Parameters
    ----------
    client : distributed.Client
    function : callable
        A module-level function (workers import it by name).
    batches : sequence of sequences of str
        Image ids; one task each.
    bar : tqdm
        Advanced by a batch's length as each task finishes.
    **arguments
        Passed to every task: values, or futures of :func:`broadcast`.

    A task's error is raised here, after the other tasks are cancelled.
    """
    from distributed import as_completed

    futures = [client.submit(function, batch, pure=False, **arguments) for batch in batches]
    order = {future.key: index for index, future in enumerate(futures)}
    results: list = [None] * len(futures)
    try:
        for future in as_completed(futures):
            index = order[future.key]
            results[index] = future.result()
            bar.update(len(batches[index]))
    finally:
        client.cancel(futures)
    return results
