#!/usr/bin/env python
"""Train the seed network in Keras, load its weights into tinycnn, compare the predictions.

    . .venv/bin/activate          # with Keras and TensorFlow: pip install -e ".[bench]"
    export TINYCNN_DATA=/path/to/fashion-mnist
    python tools/compare_keras.py                 # Keras: 1 epoch, Adam, batch 32
    python tools/compare_keras.py --epochs 0      # random initial weights, no training
    python tools/compare_keras.py --json          # a JSON summary as the last line

The Keras network and recipe are the seed's (docs/from_keras.md). Its weights go
through a Keras 3 ``.weights.h5`` file (``model.save_weights``) into
``tinycnn.models.fashion_mnist_cnn`` with ``tinycnn.load_keras_weights``; both models
then predict the 10,000 test images. Printed: the largest difference between a
probability of Keras and the same one of tinycnn (``softmax`` of tinycnn's logits),
how many images get the same class, and both test accuracies. The Keras 2 ``.h5``
file (``model.save(...h5)``) is loaded and compared too. Not run in CI (it needs
TensorFlow); the numbers measured here are in docs/from_keras.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, too
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

import tinycnn  # noqa: E402  (before NumPy: it sets OPENBLAS_THREAD_TIMEOUT)

# isort: split
import numpy as np  # noqa: E402

from tinycnn.datasets import fashion_mnist  # noqa: E402
from tinycnn.preprocessing import prepare_images  # noqa: E402

try:
    import keras
except ImportError:
    keras = None


def keras_seed_network():
    """The seed's network, as its notebook builds it (tests/test_keras_weights.py builds
    its Keras network with this function too)."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(64, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D(2, 2),
            keras.layers.Conv2D(64, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D(2, 2),
            keras.layers.Flatten(),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def compare(keras_probabilities, model, x, y) -> dict:
    """How far tinycnn's probabilities are from Keras's, image by image."""
    ours = tinycnn.softmax(model.predict(x, batch_size=1000))
    same_class = ours.argmax(axis=1) == keras_probabilities.argmax(axis=1)
    return {
        "max_probability_difference": float(np.abs(ours - keras_probabilities).max()),
        "same_class": int(same_class.sum()),
        "images": len(x),
        "tinycnn_test_accuracy": float((ours.argmax(axis=1) == y).mean()),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=1, help="Keras training epochs (0: none)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="folder with the four IDX .gz files")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    args = p.parse_args(argv)
    if keras is None:
        sys.exit('error: this needs Keras and TensorFlow: pip install -e ".[bench]"')

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(args.data_dir)
    x_train, x_test = prepare_images(x_train), prepare_images(x_test)  # (N, 28, 28, 1) in [0, 1]

    keras.utils.set_random_seed(args.seed)
    keras_model = keras_seed_network()
    keras_model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    start = time.perf_counter()
    if args.epochs:
        keras_model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=2)
    train_seconds = time.perf_counter() - start
    probabilities = keras_model.predict(x_test, batch_size=1000, verbose=0)

    summary = {
        "keras_version": keras.__version__,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "keras_train_seconds": round(train_seconds, 1),
        "keras_test_accuracy": float((probabilities.argmax(axis=1) == y_test).mean()),
    }
    with tempfile.TemporaryDirectory() as folder:
        files = {"keras3": Path(folder, "seed.weights.h5"), "keras2": Path(folder, "seed.h5")}
        keras_model.save_weights(files["keras3"])
        keras_model.save(files["keras2"])  # Keras 2's whole-model .h5 (weights in model_weights)
        for name, path in files.items():
            model = tinycnn.models.fashion_mnist_cnn(seed=args.seed + 1)  # other weights first
            tinycnn.load_keras_weights(model, path)
            summary[name] = compare(probabilities, model, x_test, y_test)

    print(
        f"Keras {summary['keras_version']}, {args.epochs} epoch(s) at batch {args.batch_size}: "
        f"test accuracy {summary['keras_test_accuracy']:.2%}"
    )
    for name, label in [("keras3", "Keras 3 .weights.h5"), ("keras2", "Keras 2 .h5")]:
        r = summary[name]
        print(
            f"tinycnn from the {label}: largest probability difference "
            f"{r['max_probability_difference']:.2g}, same class for {r['same_class']:,} of "
            f"{r['images']:,} images, test accuracy {r['tinycnn_test_accuracy']:.2%}"
        )
    if args.json:
        print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
