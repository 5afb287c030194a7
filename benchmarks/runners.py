"""The three frameworks ``epoch_time.py`` compares, each behind the same small interface.

A runner holds one model of the seed network and the data in its framework's own
format::

    Conv2D(64, 3x3, relu) -> MaxPool(2) -> Conv2D(64, 3x3, relu) -> MaxPool(2)
    -> Flatten (1600) -> Dense(512, relu) -> Dense(10) -> softmax cross-entropy

with Adam(lr 1e-3, epsilon 1e-7), and offers:

    step(j)      one training step on batch j (batch j = images j*B ... (j+1)*B - 1)
    sync()       wait until queued work has finished (a GPU runs asynchronously)
    predict(bs)  NumPy logits of the test images, bs images at a time
    info         a dict saying how the framework was set up

Each step also counts the correct predictions, ``(argmax(logits) == y).sum()``,
as ``tinycnn.training.train_step`` does. PyTorch and TensorFlow are imported only
inside their runner: the parent process of ``epoch_time.py`` must never load them
(their thread pools would compete with the workers'). The matmul floor, which has
the same interface but is no framework, is in ``matmul_floor.py``.
"""

from __future__ import annotations

import numpy as np
from data import Data

import tinycnn


class TinycnnRunner:
    """tinycnn on NumPy (or CuPy): ``tinycnn.training.train_step`` per batch."""

    name = "tinycnn"

    def __init__(self, batch_size: int, data: Data, args):
        self.batch_size = batch_size
        self.model = tinycnn.models.fashion_mnist_cnn(seed=args.seed)
        self.model.compile(
            optimizer=tinycnn.optimizers.Adam(1e-3, epsilon=1e-7),
            loss="sparse_categorical_crossentropy",
        )
        self.model.build((28, 28, 1))
        to = tinycnn.to_backend  # a no-op on NumPy; one copy to the GPU on CuPy
        self.x, self.y, self.x_test = to(data.x), to(data.y), to(data.x_test)
        self.info = {"backend": tinycnn.get_backend(), "step": "tinycnn.training.train_step"}

    def step(self, j: int) -> None:
        rows = slice(j * self.batch_size, (j + 1) * self.batch_size)
        tinycnn.training.train_step(self.model, self.x[rows], self.y[rows])

    def sync(self) -> None:
        tinycnn.backend.synchronize()

    def predict(self, batch_size: int):
        return self.model.predict(self.x_test, batch_size=batch_size)


def torch_model(torch):
    """The seed network in PyTorch (NCHW shapes; the data is channels_last in memory)."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(1600, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )


def torch_adam(torch, params):
    """Adam(1e-3, eps=1e-7), using the fused kernel when this torch has one for the device."""
    try:
        return torch.optim.Adam(params, lr=1e-3, eps=1e-7, fused=True), "fused"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=1e-3, eps=1e-7), "default"


class TorchRunner:
    """PyTorch eager mode, channels_last memory format, on CPU (or CUDA)."""

    name = "torch"

    def __init__(self, batch_size: int, data: Data, args):
        import torch

        self.torch = torch
        self.batch_size = batch_size
        self.device = "cuda" if args.backend == "cupy" else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("this torch build sees no CUDA device")
        torch.manual_seed(args.seed)
        fmt = torch.channels_last
        self.model = torch_model(torch).to(self.device, memory_format=fmt).train()
        self.optimizer, adam_kind = torch_adam(torch, self.model.parameters())
        # NHWC arrays seen as NCHW tensors: exactly the channels_last layout, no copy on CPU.
        self.x = torch.from_numpy(data.x).to(self.device).permute(0, 3, 1, 2)
        self.y = torch.from_numpy(data.y).to(self.device)
        self.x_test = torch.from_numpy(data.x_test).to(self.device).permute(0, 3, 1, 2)
        self.info = {"device": self.device, "memory_format": "channels_last", "adam": adam_kind}

    def step(self, j: int) -> None:
        rows = slice(j * self.batch_size, (j + 1) * self.batch_size)
        x, y = self.x[rows], self.y[rows]
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = self.torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        self.optimizer.step()
        (logits.argmax(dim=1) == y).sum()  # the accuracy count, as tinycnn computes it

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def predict(self, batch_size: int):
        self.model.eval()
        with self.torch.inference_mode():
            parts = [
                self.model(self.x_test[i : i + batch_size])
                for i in range(0, len(self.x_test), batch_size)
            ]
            logits = self.torch.cat(parts).cpu().numpy()
        self.model.train()
        return logits


def keras_model(keras):
    """The seed network in Keras 3 (channels-last, as tinycnn)."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(512, activation="relu"),
            layers.Dense(10),
        ]
    )


class KerasRunner:
    """Keras 3 on TensorFlow (CPU).

    ``method`` picks how one step runs:

    * ``"tf_function"``: a ``tf.function`` train step (GradientTape + Adam), the
      leanest graph-mode step: what ``fit`` runs, minus its callbacks and logs.
    * ``"train_on_batch"``: ``model.train_on_batch`` of a compiled model (it also
      updates the loss and accuracy metrics and returns them each step).
    * ``"xla"``: the ``tf.function`` step compiled with XLA (``jit_compile=True``),
      which Keras does not use on CPU-only machines by default.
    """

    name = "keras"

    def __init__(self, batch_size: int, data: Data, args):
        import keras
        import tensorflow as tf

        self.tf = tf
        self.batch_size = batch_size
        self.method = args.keras_method
        keras.utils.set_random_seed(args.seed)
        self.model = keras_model(keras)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.optimizer = keras.optimizers.Adam(1e-3, epsilon=1e-7)
        if self.method == "train_on_batch":
            self.model.compile(optimizer=self.optimizer, loss=self.loss_fn, metrics=["accuracy"])
            self._step = self.model.train_on_batch
        else:
            self.optimizer.build(self.model.trainable_variables)
            self._step = tf.function(self._train_step, jit_compile=self.method == "xla")
        self._forward = tf.function(lambda x: self.model(x, training=False))
        self.x, self.y, self.x_test = data  # NumPy; each batch becomes a tensor per call
        self.info = {"method": self.method, "backend": keras.backend.backend()}

    def _train_step(self, x, y):
        tf = self.tf
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            loss = self.loss_fn(y, logits)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, axis=1) == y, tf.int32))
        return loss, correct

    def step(self, j: int) -> None:
        rows = slice(j * self.batch_size, (j + 1) * self.batch_size)
        self._step(self.x[rows], self.y[rows])

    def sync(self) -> None:
        """Nothing to wait for: on the CPU a step has finished when it returns."""

    def predict(self, batch_size: int):
        parts = [
            self._forward(self.x_test[i : i + batch_size]).numpy()
            for i in range(0, len(self.x_test), batch_size)
        ]
        return np.concatenate(parts)
