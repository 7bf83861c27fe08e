"""Data-parallel plumbing: process-group set-up from ``torchrun``'s environment or a local spawn, and the
few collectives the engine needs.

- ``torchrun --nproc-per-node N -m riskdistill.cli.main train ...`` (or ``riskdistill train`` run under
  torchrun) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``;
  :func:`init_distributed` reads them.
- ``riskdistill train --nproc N`` calls :func:`spawn` which starts N processes with ``spawn`` (never fork:
  Numba/OpenMP thread pools do not survive a fork), sets the same variables and runs the function.

Backend: ``nccl`` when training on CUDA, ``gloo`` on the CPU.

Network exposure: the rendezvous store of rank 0 listens on ``MASTER_ADDR`` only (not on every interface,
torch's default): ``127.0.0.1`` for ``--nproc`` on one machine, the address the user gives for several
machines. With a loopback ``MASTER_ADDR`` the gloo / NCCL sockets are kept on the loopback interface too
(``GLOO_SOCKET_IFNAME`` / ``NCCL_SOCKET_IFNAME``, unless already set). Under ``torchrun`` the store belongs to
torchrun's agent, which listens where ``--master-addr`` / ``--rdzv-endpoint`` say.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False  # this module created the process group (and tears it down)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group described by the environment (``WORLD_SIZE`` > 1), or run alone."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    world = env_world_size()
    if world <= 1:
        return DistInfo()
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but {var} is not set (launch with torchrun or --nproc)")
    backend = "nccl" if device_type == "cuda" else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    addr, port, rank = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), int(os.environ["RANK"])
    if is_loopback(addr):
        confine_to_loopback()
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true":
        dist.init_process_group(backend=backend)  # torchrun's agent hosts the store
    else:
        store = rendezvous_store(addr, port, rank, world)
        dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, initialised_here=True)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.x.x.x``, ``::1``)."""
    import ipaddress

    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def confine_to_loopback() -> None:
    """Keep gloo's and NCCL's sockets on the loopback interface (unless the user chose an interface)."""
    names = [n for _, n in socket.if_nameindex()] if hasattr(socket, "if_nameindex") else []
    lo = next((n for n in ("lo", "lo0") if n in names), None)
    if lo is None:
        return
    os.environ.setdefault("GLOO_SOCKET_IFNAME", lo)
    os.environ.setdefault("NCCL_SOCKET_IFNAME", lo)


def rendezvous_store(addr: str, port: int, rank: int, world: int) -> dist.TCPStore:
    """The process group's key-value store: rank 0 serves it on ``addr:port`` only (a socket bound to that
    address and handed to torch), the other ranks connect to it."""
    from torch.distributed.constants import default_pg_timeout

    if rank != 0:
        return dist.TCPStore(addr, port, world, is_master=False, timeout=default_pg_timeout)
    family, kind, proto, _, sockaddr = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(max(world, 16) * 4)
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on MASTER_ADDR:MASTER_PORT = {addr}:{port} ({exc})") from exc
    return dist.TCPStore(
        addr,
        port,
        world,
        is_master=True,
        timeout=default_pg_timeout,
        master_listen_fd=sock.detach(),  # the store owns (and closes) the socket from here on
        use_libuv=True,
    )


def shutdown_distributed(info: DistInfo) -> None:
    if info.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Sum a dict of floats over the ranks (same keys on every rank, sorted for a stable order)."""
    if not info.enabled or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist(), strict=True))


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (in-memory transport only)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. "stop now")."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def replica_max_abs_diff(model: torch.nn.Module, info: DistInfo, device: torch.device) -> float:
    """The largest absolute difference between any parameter on any rank and rank 0's (0.0 alone)."""
    if not info.enabled:
        return 0.0
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1).to(torch.float64) for p in model.parameters()]).to(device)
        ref = flat.clone()
        dist.broadcast(ref, src=0)
        diff = (flat - ref).abs().max().reshape(1)
        dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff.item())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn_entry(local_rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    fn(*args)


def spawn(fn: Callable[..., Any], args: tuple, nproc: int) -> None:
    """Run ``fn(*args)`` in ``nproc`` fresh processes on this machine as one process group (``fn`` must be
    importable: a module-level function). Raises when any process fails."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    mp.start_processes(
        _spawn_entry, args=(nproc, free_port(), fn, args), nprocs=nproc, join=True, start_method="spawn"
    )
