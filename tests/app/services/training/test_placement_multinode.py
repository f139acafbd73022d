"""Workers go where the node scoring says, on a real three-node Ray cluster whose nodes differ in free resources.

The cluster (`ray.cluster_utils.Cluster`: one raylet per node, all on this host) and its driver run in a child
process: a process joins one Ray cluster at most, and this one may already be connected to the session's shared
cluster. The child reads the node states as the scheduler does, asks for the preferred nodes, runs a real
TorchTrainer with the label selector the platform gives Ray Train, and writes what it saw for the test to check.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import ray
import torch.distributed as dist
from ray.cluster_utils import Cluster
from ray.train import Checkpoint, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group

from app.cluster import capacity, local_ray
from app.cluster.capacity import NodeState
from app.cluster.jobs import TRAIN_ENV
from app.core.config import Settings
from app.services.training import placement
from tests.utils.ports import cluster_ports
from train_jobs.job_config import TrainConfig
from train_jobs.trainer import PlatformTorchTrainer

GiB = float(2**30)
# CPU-only nodes score by free memory (one point a GiB): "big" first, then "mid", the head last. Left to itself,
# Ray places a job's workers where the larger share of CPUs stays free: never on "big", the node with fewest CPUs.
NODES: dict[str, dict[str, float]] = {
    "head": {"num_cpus": 3, "memory": 1 * GiB},
    "big": {"num_cpus": 2, "memory": 8 * GiB},
    "mid": {"num_cpus": 3, "memory": 4 * GiB},
}
# Two workers: 1 CPU each fit "big" alone; 2 CPUs each fit no node twice, so "big" and then "mid" host one each.
CASES: dict[str, dict[str, float]] = {
    "one_node": {"num_workers": 2, "cpus_per_worker": 1},
    "split": {"num_workers": 2, "cpus_per_worker": 2},
}
PREFERRED = {"one_node": ["big"], "split": ["big", "mid"]}
WORKERS_ON = {"one_node": ["big", "big"], "split": ["big", "mid"]}
CHILD_TIMEOUT_S = 300
# GCS at the base port, each node's ports next, workers' ports from base + 100, the dashboard at base + 400.
PORTS = cluster_ports(22000)  # below the ephemeral port range (32768+), like every test cluster
# Ray's head also serves autoscaler and dashboard metrics, on fixed default ports unless these say otherwise.
METRICS_PORTS = {
    "DASHBOARD_METRIC_PORT": str(PORTS["ray_dashboard_port"] + 1),
    "AUTOSCALER_METRIC_PORT": str(PORTS["ray_dashboard_port"] + 2),
}
REPO = Path(__file__).resolve().parents[4]
MODULE = ".".join(Path(__file__).resolve().relative_to(REPO).with_suffix("").parts)


def test_workers_run_on_the_nodes_the_scoring_prefers(tmp_path: Path) -> None:
    seen = _run_child(tmp_path)
    names = {node_id: name for name, node_id in seen["node_ids"].items()}
    for case, preferred in PREFERRED.items():
        got = seen["cases"][case]
        scores = {names[n]: s for n, s in got["scores"].items()}
        assert scores["big"] > scores["mid"] > scores["head"], scores
        assert [names[n] for n in got["preferred"]] == preferred, got
        assert got["label_selector"] == {"ray.io/node-id": f"in({','.join(got['preferred'])})"}
        # Every worker ran where the scoring said, which is not where Ray alone puts them: the selector did it.
        assert sorted(names[n] for n in got["workers"]) == WORKERS_ON[case], (case, got)
        assert sorted(names[n] for n in got["ray_alone"]) != WORKERS_ON[case], (case, got)
    # One worker died under "big": its score drops by one failure's weight and the same job now prefers "mid".
    after = seen["cases"]["after_failure"]
    assert {names[n]: f for n, f in after["failures"].items()} == {"head": 0, "big": 1, "mid": 0}
    scores = {names[n]: s for n, s in after["scores"].items()}
    assert scores["big"] == seen["cases"]["one_node"]["scores"][seen["node_ids"]["big"]] - placement.FAILURE_WEIGHT
    assert [names[n] for n in after["preferred"]] == ["mid"], after
    # The preferred node is gone when the job's worker group starts (as on a restart after the node died): the
    # platform's trainer drops the preference and the workers run on the nodes left.
    gone = seen["cases"]["preferred_node_gone"]
    assert len(gone["workers"]) == 2 and "big" not in {names[n] for n in gone["workers"]}, gone


# --- the child process: cluster, node states, preference, training ---------------------------------------------


def _run_child(tmp_path: Path) -> dict[str, Any]:
    out, log = tmp_path / "seen.json", tmp_path / "child.log"
    # A short private temp dir (Ray's socket paths must stay under 107 bytes) that also takes Ray's
    # "current cluster" file, so a plain `ray.init()` elsewhere on the host never finds this cluster.
    ray_tmp = tempfile.mkdtemp(prefix="aip-mn-")
    env = {**os.environ, **TRAIN_ENV, **METRICS_PORTS, "RAY_TMPDIR": ray_tmp, "RAY_USAGE_STATS_ENABLED": "0"}
    code = f"from {MODULE} import child; child({str(tmp_path)!r})"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ray's reaper and nodes stay in this session, stopped by its id below
        )
        try:
            rc: int | str = proc.wait(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            rc = f"none: still running after {CHILD_TIMEOUT_S} s"
        finally:
            _stop_session(proc.pid)
            shutil.rmtree(ray_tmp, ignore_errors=True)
    tail = log.read_text(errors="replace")[-6000:]
    assert rc == 0 and out.exists(), f"the cluster process failed (exit code {rc}):\n{tail}"
    return json.loads(out.read_text())


def _stop_session(sid: int) -> None:
    """Ends the child and any Ray process of its session that outlived it."""
    procs = [p for p in psutil.process_iter() if _session_of(p) == sid]
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)


def _session_of(proc: psutil.Process) -> int | None:
    try:
        return os.getsid(proc.pid)
    except (ProcessLookupError, PermissionError):
        return None


def child(work_dir: str) -> None:
    """Starts the cluster, runs each case and writes what it saw to `seen.json` in `work_dir`."""
    # Explicit address and dashboard host: an AIP_RAY_ADDRESS in the environment must not lead elsewhere.
    settings = Settings(
        data_dir=Path(work_dir) / "platform",
        ray_address=f"127.0.0.1:{PORTS['ray_port']}",
        ray_dashboard_host="127.0.0.1",
        **PORTS,
    )
    cluster = Cluster(initialize_head=True, head_node_args=_node_args(0))
    node_ids = {"head": cluster.head_node.node_id}
    try:
        added = {name: cluster.add_node(**_node_args(index)) for index, name in enumerate(NODES) if name != "head"}
        node_ids |= {name: node.node_id for name, node in added.items()}
        local_ray.wait_until_ready(settings, None)  # the state API (worker failures) answers through it
        cases = {case: _run_case(settings, case, fields, work_dir) for case, fields in CASES.items()}
        cases["after_failure"] = _after_a_failure_on(settings, node_ids["big"])
        cluster.remove_node(added["big"])
        cases["preferred_node_gone"] = _run_preferring_a_dead_node(node_ids["big"], work_dir)
    finally:
        ray.shutdown()
        cluster.shutdown()
    Path(work_dir, "seen.json").write_text(json.dumps({"node_ids": node_ids, "cases": cases}))


def _node_args(index: int) -> dict[str, Any]:
    """One node's resources and ports, all inside this suite's port range (node 0 is the head)."""
    name = list(NODES)[index]
    gcs = PORTS["ray_port"]
    base = gcs + 10 + 10 * index
    args: dict[str, Any] = {
        "num_cpus": int(NODES[name]["num_cpus"]),
        "memory": NODES[name]["memory"],
        "object_store_memory": 100 * 2**20,
        "node_manager_port": base,
        "object_manager_port": base + 1,
        "metrics_export_port": base + 2,
        "metrics_agent_port": base + 3,
        "dashboard_agent_listen_port": base + 4,
        "runtime_env_agent_port": base + 5,
        "min_worker_port": gcs + 100 + 90 * index,
        "max_worker_port": gcs + 189 + 90 * index,
    }
    if index == 0:
        args |= {
            "gcs_server_port": gcs,
            "include_dashboard": True,
            "dashboard_host": "127.0.0.1",
            "dashboard_port": PORTS["ray_dashboard_port"],
        }
    return args


def _run_case(settings: Settings, case: str, fields: dict[str, float], work_dir: str) -> dict[str, Any]:
    config = TrainConfig(target_column="y", **fields)
    if ray.is_initialized():  # the previous case's workers must have handed their CPUs back
        _wait_until_idle()
    nodes = capacity.read(settings, with_states=True).states  # connects this process, as the scheduler does
    preference = placement.prefer(config, nodes)
    assert preference is not None, nodes
    ray_alone = _placed_by_ray_alone(config)
    selector = placement.label_selector(preference.node_ids)
    trainer = TorchTrainer(
        _report_node,
        scaling_config=ScalingConfig(
            num_workers=config.num_workers,
            use_gpu=False,
            resources_per_worker=config.worker_resources(),
            label_selector=selector,
        ),
        run_config=RunConfig(name=case, storage_path=str(Path(work_dir) / "runs")),
    )
    result = trainer.fit()
    return {
        **_seen(nodes, preference),
        "label_selector": selector,
        "workers": result.metrics["node_ids"],
        "ray_alone": ray_alone,
    }


def _placed_by_ray_alone(config: TrainConfig) -> list[str]:
    """The nodes Ray picks for the job's workers without a selector: the PACK placement group Ray Train makes."""
    group = placement_group([config.worker_resources()] * config.num_workers, strategy="PACK")
    ray.get(group.ready(), timeout=60)
    nodes = list(placement_group_table(group)["bundles_to_node_id"].values())
    remove_placement_group(group)
    _wait_until_idle()
    return nodes


def _after_a_failure_on(settings: Settings, node_id: str) -> dict[str, Any]:
    """Kills a training worker's process on the node, then places the first case's job again."""
    actor = ray.remote(num_cpus=0, label_selector={placement.NODE_ID_LABEL: node_id})(RayTrainWorker)
    worker = actor.remote()  # held: a handle dropped first would end the actor as out of scope
    os.kill(ray.get(worker.pid.remote()), signal.SIGKILL)
    deadline = time.monotonic() + 60
    nodes = capacity.read(settings, with_states=True).states
    while not any(n.failures for n in nodes):  # the actor table learns of the death a moment later
        assert time.monotonic() < deadline, "the killed worker never showed up in Ray's actor table"
        time.sleep(0.2)
        nodes = capacity.read(settings, with_states=True).states
    preference = placement.prefer(TrainConfig(target_column="y", **CASES["one_node"]), nodes)
    assert preference is not None, nodes
    return {**_seen(nodes, preference), "failures": {n.node_id: n.failures for n in nodes}}


def _run_preferring_a_dead_node(node_id: str, work_dir: str) -> dict[str, Any]:
    """The platform's trainer with a selector naming a node that was removed from the cluster."""
    deadline = time.monotonic() + 60
    while any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes()):
        assert time.monotonic() < deadline, "the removed node still shows as alive"
        time.sleep(0.2)
    trainer = PlatformTorchTrainer(
        _report_node,
        scaling_config=ScalingConfig(
            num_workers=2,
            use_gpu=False,
            resources_per_worker={"CPU": 1},
            label_selector=placement.label_selector([node_id]),
        ),
        run_config=RunConfig(name="preferred-node-gone", storage_path=str(Path(work_dir) / "runs")),
    )
    return {"workers": trainer.fit().metrics["node_ids"]}


def _seen(nodes: list[NodeState], preference: placement.Preference) -> dict[str, Any]:
    return {
        "preferred": preference.node_ids,
        "scores": {n.node_id: placement.score(n, needs_gpu=False) for n in nodes},
    }


class RayTrainWorker:
    """Named as Ray Train's workers, whose deaths the failure count looks for (by the class's qualified name, so
    it is defined at module level)."""

    def pid(self) -> int:
        return os.getpid()


def _report_node(_: dict[str, Any]) -> None:
    """Every worker's node id, gathered over the job's process group and reported by rank 0 (Ray Train keeps
    only metrics that come with a checkpoint)."""
    node_ids: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(node_ids, ray.get_runtime_context().get_node_id())
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = Checkpoint.from_directory(directory) if dist.get_rank() == 0 else None
        ray.train.report({"node_ids": node_ids}, checkpoint=checkpoint)


def _wait_until_idle(timeout_s: float = 60) -> None:
    total = sum(n["num_cpus"] for n in NODES.values())
    deadline = time.monotonic() + timeout_s
    while ray.available_resources().get("CPU", 0.0) < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"CPUs still held {timeout_s:.0f} s after training: {ray.available_resources()}")
        time.sleep(0.2)
