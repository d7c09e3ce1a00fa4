"""A real two-node Ray cluster on this machine for the tests marked ``ray``.

One per pytest process: the ``cluster`` fixture (``tests/conftest.py``) is session-scoped, and
the ``ray`` tests share the xdist group ``ray``, so ``scripts/test.sh`` (``--dist loadgroup``)
runs them all on one xdist worker.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STORE = 80 * 1024**2  # object store per node: results are a few KB of rows
# Both nodes run on this machine. (Ray maps a loopback address to the host's own interface
# address when a driver connects, so the nodes keep Ray's default address of this host.)
NODE = {"num_cpus": 1, "object_store_memory": STORE}


@contextmanager
def two_node_cluster() -> Iterator[Any]:
    """A head and a second node, one CPU each; their workers import this checkout, offline."""
    from ray.cluster_utils import Cluster

    saved = dict(os.environ)
    os.environ.update(  # inherited by the nodes' processes
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=str(ROOT),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    head = {
        **NODE,
        "include_dashboard": False,
        # A killed node is declared dead after ~1.5 s instead of ~30 s.
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
    }
    nodes = Cluster(initialize_head=True, head_node_args=head)
    try:
        nodes.add_node(**NODE)
        nodes.wait_for_nodes()
        yield nodes
    finally:
        nodes.shutdown()
        os.environ.clear()
        os.environ.update(saved)
