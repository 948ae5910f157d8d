"""Many processes through a launcher (`accelerate launch`, `torchrun`, `mpirun`), one process otherwise.

A launcher tells each process its rank and the number of processes in environment variables; this
module reads them and nothing else until a collective is needed, so a single-process run never
initialises torch.distributed and the CLI starts without importing torch or accelerate. The process
group itself is accelerate's `PartialState` (gloo on CPUs, NCCL on GPUs).

Two scopes:
- the launch: `processes()`, `process_rank()`: every process the launcher started;
- the job: `world()`, `rank()`, `is_main()`: the processes working together on the current job. That
  is the launch, except inside `alone()`, where this process works by itself (an eval suite hands
  whole runs to each process, and a run must not wait for the others).

What is shared, and how results stay the same as in one process:
- `shard(items)`: item i goes to process i % world (batches of examples, rows of a training batch,
  runs of a suite);
- `gather_rows(indices, rows, total)`: every process's rows, put back in their original order, once;
- `sum_gradients(parameters, loss)`: DDP's gradient all-reduce, for a loss already divided by the
  global batch size, so the summed gradient is the one a single process computes.
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import os
import sys
from typing import TYPE_CHECKING, Any, Iterator, Sequence, TypeVar

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

# What launchers set: torchrun and `accelerate launch` the torch names, mpirun those of its MPI.
_WORLD_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_alone_depth = 0


# ---------------------------------------------------------------- who am I

def _first_int(names: Sequence[str], default: int) -> int:
    for name in names:
        if os.environ.get(name):
            return int(os.environ[name])
    return default


def processes() -> int:
    """How many processes the launcher started (1 without a launcher)."""
    return _first_int(_WORLD_VARIABLES, 1)


def process_rank() -> int:
    return _first_int(_RANK_VARIABLES, 0) if processes() > 1 else 0


def world() -> int:
    """How many processes share the current job: the launch, or 1 inside `alone()`."""
    return 1 if _alone_depth else processes()


def rank() -> int:
    return 0 if _alone_depth else process_rank()


def is_main() -> bool:
    """True on the process that writes the job's outputs (every process inside `alone()`)."""
    return rank() == 0


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Inside, this process works by itself: nothing is sharded, gathered or reduced."""
    global _alone_depth
    _alone_depth += 1
    try:
        yield
    finally:
        _alone_depth -= 1


def shard(items: Sequence[T]) -> list[T]:
    """This process's share: item i goes to process i % world."""
    return list(items[rank()::world()])


# ---------------------------------------------------------------- start-up

def quiet_other_processes() -> None:
    """Under a launcher only the main process prints results: the others' stdout goes nowhere.

    Their stderr stays, so an error on any process is seen.
    """
    _warn_single_cpu_launch()
    if process_rank() != 0:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")


def _warn_single_cpu_launch() -> None:
    # `accelerate launch --cpu --num_processes N` starts N processes through mpirun only
    # (--mpirun_hostfile); without it, it starts one and only sets MASTER_ADDR.
    accelerate_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true"
    if processes() == 1 and accelerate_cpu and os.environ.get("MASTER_ADDR"):
        print("promptlab: `accelerate launch --cpu` started one process (several CPU processes need "
              "--mpirun_hostfile); running as one process. For N CPU processes: "
              "`accelerate launch --multi_gpu --num_processes N` on a machine without GPUs, or "
              "`torchrun --nproc-per-node N -m promptlab ...`", file=sys.stderr)


def process_device(device: str) -> str:
    """The device this process runs on: under a launcher, 'auto' and 'cuda' mean its own GPU.

    The launcher's choice wins for 'auto' (`accelerate launch --cpu`: the CPU). '--device cpu'
    keeps everything, collectives included, on the CPU.
    """
    if processes() == 1:
        return device
    state = _state(cpu=device == "cpu")
    return "cpu" if state.device.type == "cpu" else str(state.device)  # accelerate says cpu:0, cpu:1, ...


def _state(*, cpu: bool = False):
    """accelerate's process group, started on first use: gloo on CPUs, NCCL on GPUs."""
    import torch
    from accelerate import PartialState
    use_cpu = cpu or os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" or not torch.cuda.is_available()
    # Without cpu=True accelerate would treat a CPU-only launch as no launch at all.
    state = PartialState(cpu=use_cpu)
    _close_group_at_exit()
    return state


@functools.cache
def _close_group_at_exit() -> None:
    """The process group is closed before the interpreter ends, as torch.distributed asks of every process
    (an open one leaks its resources and warns)."""
    import torch.distributed

    atexit.register(lambda: torch.distributed.is_initialized() and torch.distributed.destroy_process_group())


# ---------------------------------------------------------------- collectives

def gather_rows(indices: Sequence[int], rows: "torch.Tensor | BaseException", total: int) -> "torch.Tensor":
    """Every process's `rows` (row j belongs at position indices[j]) as one [total, ...] tensor.

    One all-gather; every process gets the whole tensor, on the CPU, after checking that every
    index 0..total-1 arrived exactly once. A process whose share failed passes its exception as
    `rows`: it still joins the gather, so no process is left waiting for it, and every process
    raises (the failing one its own error, the others a RuntimeError naming it).
    """
    import torch
    from accelerate.utils import gather_object
    _state()
    failure = rows if isinstance(rows, BaseException) else None
    mine = (rank(), list(indices), None if failure else rows.cpu(), f"{type(failure).__name__}: {failure}"
            if failure else None)
    pieces = gather_object([mine])
    failed = [(piece_rank, error) for piece_rank, _, _, error in pieces if error]
    if failed:
        if failure is not None:
            raise failure
        raise RuntimeError("; ".join(f"process {piece_rank} failed: {error}" for piece_rank, error in failed))
    counts = torch.zeros(total, dtype=torch.long)
    for _, piece_indices, _, _ in pieces:
        counts.index_add_(0, torch.tensor(piece_indices, dtype=torch.long), torch.ones(len(piece_indices), dtype=torch.long))
    if not bool((counts == 1).all()):
        missing, repeated = (counts == 0).nonzero().flatten().tolist(), (counts > 1).nonzero().flatten().tolist()
        raise RuntimeError(f"gathered rows do not cover 0..{total - 1} once each: missing {missing[:10]}, "
                           f"repeated {repeated[:10]}")
    template = next(piece_rows for _, _, piece_rows, _ in pieces if piece_rows is not None)
    full = torch.empty((total, *template.shape[1:]), dtype=template.dtype)
    for _, piece_indices, piece_rows, _ in pieces:
        full[torch.tensor(piece_indices, dtype=torch.long)] = piece_rows
    return full


def gather(value: Any) -> list:
    """One picklable value from every process, in rank order, on every process."""
    if world() == 1:
        return [value]
    from accelerate.utils import gather_object
    _state()
    return gather_object([value])


def broadcast(value: Any) -> Any:
    """The main process's `value`, on every process."""
    if world() == 1:
        return value
    from accelerate.utils import broadcast_object_list
    _state()
    return broadcast_object_list([value])[0]


def sum_gradients(parameters: Sequence["torch.nn.Parameter"], loss: "torch.Tensor") -> float:
    """Sum every process's gradients and loss (DDP's all-reduce); return the summed loss.

    Each process's loss must already be divided by the global batch size: the sums are then exactly
    the mean loss and gradient of the whole batch. A parameter no process computed a gradient for
    keeps none, as in one process (the optimizer skips it, weight decay included).
    """
    if world() == 1:
        return float(loss.detach())
    import torch
    import torch.distributed as dist
    _state()
    device = parameters[0].device
    has_gradient = torch.tensor([p.grad is not None for p in parameters], dtype=torch.int32, device=device)
    dist.all_reduce(has_gradient)
    for parameter, anyone in zip(parameters, has_gradient.tolist()):
        if anyone:
            if parameter.grad is None:  # this process's share did not reach it; others' did
                parameter.grad = torch.zeros_like(parameter)
            dist.all_reduce(parameter.grad)
    total = loss.detach().float().reshape(1).to(device)
    dist.all_reduce(total)
    return float(total)
