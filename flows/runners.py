"""Where the digest flow's batch tasks run: a thread pool (default) or a Dask cluster.

A Prefect flow's task runner is fixed when the flow object is built: `textdigest run`
builds the flow for the configured runner with `flows.digest.digest_for(config)`; a
deployment or `serve` loads the flow as declared (threads), and the flow then reruns itself
as a subflow on the configured runner (`runs_elsewhere`). On Dask, each worker process
loads the models once (the `load_*` functions are cached per process) and keeps them for
every batch it is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

    from flows.config import DigestConfig


def thread_workers(max_in_flight: int) -> int:
    """Pool threads for `max_in_flight` batches plus the one being submitted.

    Each batch is a chain of one task per step, and a task whose inputs are futures holds its
    thread while it waits: a smaller pool runs the chains one after another, so the next
    batch's cleaning (Python) never overlaps this batch's model passes (native, GIL released).
    """
    from tasks.pipeline import STEPS

    return len(STEPS) * (max_in_flight + 1)


def local_cluster_kwargs(config: DigestConfig) -> dict[str, Any]:
    """LocalCluster settings: worker processes with one thread each, so the models (which
    use their own intra-op threads) are not shared by concurrent tasks in a process."""
    kwargs: dict[str, Any] = {"processes": True, "threads_per_worker": 1}
    if config.runtime.dask_workers is not None:
        kwargs["n_workers"] = config.runtime.dask_workers
    return kwargs


def task_runner_for(config: DigestConfig) -> TaskRunner | None:
    """The task runner `config` asks for; None means the flow's default (threads, sized for
    the default `max_in_flight`)."""
    if config.runtime.task_runner == "threads":
        from flows.config import RuntimeConfig

        default = RuntimeConfig.model_fields["max_in_flight"].default
        if config.runtime.max_in_flight == default:
            return None
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=thread_workers(config.runtime.max_in_flight))
    from prefect_dask import DaskTaskRunner

    if config.runtime.dask_address:
        return DaskTaskRunner(address=config.runtime.dask_address)
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(config))


def runs_elsewhere(config: DigestConfig, active: object) -> bool:
    """Whether the active task runner is not the kind `config` asks for."""
    return (config.runtime.task_runner == "dask") != (type(active).__name__ == "DaskTaskRunner")
