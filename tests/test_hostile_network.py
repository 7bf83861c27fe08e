"""Hostile network exposure: a single-machine run opens ports on the loopback interface only; runs across
machines listen where the user says."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
from pathlib import Path

import pytest

from riskdistill.cli.label import label as label_command
from riskdistill.training.distributed import is_loopback, spawn
from test_hostile_support import cli, flat


def listening_sockets(pid: int | str = "self") -> list[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on (Linux: /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        with open(f"/proc/{pid}/net/{name}") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[3] != "0A" or cols[9] not in inodes:  # 0A: LISTEN
                    continue
                addr, port = cols[1].split(":")
                raw = bytes.fromhex(addr)
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
                out.append((socket.inet_ntop(family, raw), int(port, 16)))
    return out


def _report_listening(out_dir: str) -> None:
    """Run in each spawned rank: join the process group, then write the sockets this rank listens on."""
    import torch.distributed as dist

    from riskdistill.training.distributed import init_distributed, shutdown_distributed

    info = init_distributed("cpu")
    dist.barrier()
    Path(out_dir, f"rank{info.rank}.json").write_text(json.dumps(listening_sockets()))
    dist.barrier()
    shutdown_distributed(info)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_nproc_on_one_machine_listens_on_loopback_only(tmp_path: Path) -> None:
    spawn(_report_listening, (str(tmp_path),), 2)
    seen = {r: json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)}
    assert seen[0], "rank 0 serves the rendezvous store: it must listen somewhere"
    for rank, socks in seen.items():
        for addr, port in socks:
            assert ipaddress.ip_address(addr).is_loopback, f"rank {rank} listens on {addr}:{port}"


def test_loopback_addresses_are_recognised() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.1.1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.5", "node-3", "::"))


def test_ray_without_an_address_is_refused_before_any_port_opens(tiny_dataset: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    code, out = cli(label_command, "label", "--data", tiny_dataset, "--out", tmp_path / "r", "--ray")
    assert code == 2 and "Traceback" not in out
    assert "--ray needs --ray-address" in flat(out) and "--workers N" in flat(out)
    assert not ray.is_initialized() and not (tmp_path / "r").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; 127.0.0.2 is on lo")
def test_the_rendezvous_store_listens_exactly_on_master_addr() -> None:
    from riskdistill.training.distributed import free_port, rendezvous_store

    port = free_port()
    store = rendezvous_store("127.0.0.2", port, rank=0, world=1)  # what a user's MASTER_ADDR names
    try:
        store.set("k", "v")
        assert store.get("k") == b"v"
        socks = listening_sockets()
        assert ("127.0.0.2", port) in socks
        assert not [s for s in socks if s[1] == port and s[0] != "127.0.0.2"], socks  # no wildcard too
    finally:
        del store
