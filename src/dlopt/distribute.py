"""tf.distribute from the config: the strategy, the global batch and learning rate, who writes.

`default` is one device. `mirrored` keeps one replica per local device and all-reduces gradients.
`multi_worker` runs the same command in several processes (often on several machines), each with
its own TF_CONFIG; they train as one, and only the chief writes the run folder.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class Placement:
    strategy: object  # a tf.distribute.Strategy
    name: str
    replicas: int
    is_chief: bool  # writes the run folder (always true outside multi_worker)
    task: str | None = None  # multi_worker: e.g. "worker:1"


def _split_cpu(count: int) -> None:
    """Several logical CPU devices, so MirroredStrategy can be run on a machine without GPUs."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # TensorFlow already started its devices in this process
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise ConfigError(f"distribute.cpu_devices: TensorFlow was already started in this process with {len(tf.config.list_logical_devices('CPU'))} CPU device(s)") from None


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(
            "distribute.strategy: multi_worker needs the TF_CONFIG environment variable in each process, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        tf_config = json.loads(raw)
        task, cluster = tf_config["task"], tf_config["cluster"]
        task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError('TF_CONFIG: expected JSON with "cluster" and "task": {"type": ..., "index": ...}, got ' + raw[:200]) from None
    if task["type"] not in cluster or int(task["index"]) >= len(cluster[task["type"]]):
        raise ConfigError(f"TF_CONFIG: task {task['type']}:{task['index']} is not in the cluster {json.dumps(cluster)}")
    return tf_config


def check(distribute) -> None:
    """Before any run folder exists: a multi_worker run without a usable TF_CONFIG leaves nothing."""
    if distribute.strategy == "multi_worker":
        _tf_config()


def place(distribute) -> Placement:
    """The strategy the config asks for. Call before TensorFlow runs its first op."""
    import tensorflow as tf

    if distribute.cpu_devices:
        _split_cpu(distribute.cpu_devices)
    if distribute.strategy == "default":
        return Placement(tf.distribute.get_strategy(), "default", 1, True)
    if distribute.strategy == "mirrored":
        devices = distribute.devices
        if devices is None and not tf.config.list_physical_devices("GPU"):
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        try:
            strategy = tf.distribute.MirroredStrategy(devices)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"distribute.devices: {str(exc).strip().splitlines()[0]}") from None
        return Placement(strategy, "mirrored", strategy.num_replicas_in_sync, True)
    tf_config = _tf_config()
    implementation = {
        "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
        "ring": tf.distribute.experimental.CommunicationImplementation.RING,
        "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
    }[distribute.communication]
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=tf.distribute.experimental.CommunicationOptions(implementation=implementation))
    task_type, index = tf_config["task"]["type"], int(tf_config["task"]["index"])
    # TensorFlow's convention: the `chief` task, or worker 0 when the cluster names no chief
    chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in tf_config["cluster"])
    return Placement(strategy, "multi_worker", strategy.num_replicas_in_sync, chief, f"{task_type}:{index}")


def scaled(config, replicas: int):
    """The config training actually uses: global batch and learning rate for `replicas` replicas.

    The saved config.yaml stays as the user wrote it; summary.json records the values used."""
    distribute = config.distribute
    if replicas == 1 or distribute.batch_size == "global" or config.data.batch_size == "full":
        if config.data.batch_size != "full" and config.data.batch_size % replicas:
            raise ConfigError(f"data.batch_size: a global batch of {config.data.batch_size} does not split evenly over {replicas} replicas")
        return config
    factor = {"linear": replicas, "sqrt": math.sqrt(replicas), "none": 1}[distribute.scale_learning_rate]
    config = config.model_copy(deep=True)
    config.data.batch_size = config.data.batch_size * replicas
    config.optimizer.learning_rate = config.optimizer.learning_rate * factor
    return config


def prepare_multi_worker_fit(model, train_dataset, strategy) -> None:
    """Make Keras 3's fit() work under MultiWorkerMirroredStrategy (tensorflow/tensorflow#72388).

    Keras (3.15 here) fails twice there: its first build averages a *distributed* batch across
    workers with strategy.reduce, which MultiWorkerMirroredStrategy rejects for a structure, and it
    averages each step's scalar logs with `reduce(..., axis=0)`, invalid for scalars. dlopt builds the
    model from one local batch instead, and averages the logs over replicas with axis=None; both
    workers then see the same, all-reduced numbers. Nothing changes for other strategies."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    if not getattr(trainer.reduce_per_replica, "dlopt_multi_worker", False):
        keras_reduce = trainer.reduce_per_replica

        def reduce_per_replica(values, strategy, reduction):
            if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
                return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None) if isinstance(v, tf.distribute.DistributedValues) else v, values)
            return keras_reduce(values, strategy, reduction)

        reduce_per_replica.dlopt_multi_worker = True
        trainer.reduce_per_replica = reduce_per_replica
    first_batch = next(iter(train_dataset))
    with strategy.scope():
        model._symbolic_build(data_batch=first_batch)  # optimizer and metric variables, once
    model._maybe_symbolic_build = lambda *args, **kwargs: None
