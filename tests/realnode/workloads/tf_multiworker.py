"""TFJob workload: TensorFlow's MultiWorkerMirroredStrategy on CPU, its cluster read from the TF_CONFIG
the operator set. Every task all-reduces task-rank+1 through TensorFlow's collective ops over gRPC
(the sum proves every task joined), then trains a linear model on synthetic data for a few steps with
gradients all-reduced across the tasks, and checks that the tasks end with the same weights.

Log lines the test reads:
  tf <type>:<index> rank <r>/<n>: all-reduce sum <s> (want <n(n+1)/2>)
  tf <type>:<index> step <i> loss <x>
  tf <type>:<index> weights <w> equal on all tasks: True
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

STEPS = 5
LEARNING_RATE = 0.1


def main() -> None:
    config = json.loads(os.environ["TF_CONFIG"])
    task = f"{config['task']['type']}:{config['task']['index']}"
    print(f"tf {task}: cluster {config['cluster']}", flush=True)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    # The chief is rank 0, then the workers (MultiWorkerMirroredStrategy's own order).
    rank = resolver.task_id + (0 if resolver.task_type == "chief" else int("chief" in config["cluster"]))
    size = strategy.num_replicas_in_sync

    contribution = strategy.run(lambda: tf.constant(float(rank + 1)))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, contribution, axis=None)
    print(f"tf {task} rank {rank}/{size}: all-reduce sum {total.numpy():.0f} (want {size * (size + 1) // 2})")

    with strategy.scope():
        weights = tf.Variable(tf.zeros([4, 1]), aggregation=tf.VariableAggregation.MEAN)
    true_weights = tf.constant([[1.0], [-2.0], [0.5], [3.0]])
    data = tf.random.Generator.from_seed(1000 + rank)  # each task its own synthetic shard

    @tf.function
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        def replica_step() -> tf.Tensor:
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(x @ weights - y))
            gradient = tape.gradient(loss, weights)
            mean_gradient = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.MEAN, gradient
            )
            weights.assign_sub(LEARNING_RATE * mean_gradient)
            return loss

        return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(replica_step), axis=None)

    for i in range(STEPS):
        x = data.normal([32, 4])
        loss = step(x, x @ true_weights)
        print(f"tf {task} step {i} loss {loss.numpy():.4f}", flush=True)

    mine = weights.numpy()
    mean = strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(lambda: tf.identity(weights)), axis=None)
    equal = bool(tf.reduce_all(tf.abs(mean - mine) < 1e-6))
    shown = " ".join(f"{w:.3f}" for w in mine.flatten())
    print(f"tf {task} weights [{shown}] equal on all tasks: {equal}", flush=True)
    # TensorFlow's gRPC server threads keep a finished task's process alive: leave at once.
    os._exit(0 if equal else 1)


if __name__ == "__main__":
    main()
