"""Train tinycnn's seed network on Fashion-MNIST and report what Keras would.

    python examples/fashion_mnist.py                       # NumPy (CPU), 10 epochs
    python examples/fashion_mnist.py --backend cupy        # on a GPU
    python examples/fashion_mnist.py --limit 2000 --epochs 1   # a quick try
    python examples/fashion_mnist.py --plot pictures/      # and draw it (needs matplotlib)

--plot DIR writes history.png (learning curves), confusion_matrix.png and
mistakes.png (the test images misclassified with the highest confidence).

Ctrl-C stops training after the current step; the model is then saved (with --save)
before the test-set evaluation, which a further Ctrl-C ends without losing the file.

The recipe, chosen on the validation set only (never on the test set):
  * 10% of the training images are held out for validation (the last 6,000);
  * Adam at 1e-3 whose learning rate follows a cosine from 1e-3 down to 0 over the
    run: large steps early, small steps late, which ends the run near a minimum
    instead of bouncing around one (the plain Keras run overfits after ~6 epochs);
  * the weights of the epoch with the best validation accuracy are kept at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, too

import tinycnn  # noqa: E402  (before NumPy: it sets OPENBLAS_THREAD_TIMEOUT; see there)

# isort: split
import numpy  # noqa: E402

from tinycnn.callbacks import EarlyStopping, LearningRateScheduler, cosine_decay  # noqa: E402
from tinycnn.datasets import fashion_mnist  # noqa: E402
from tinycnn.metrics import (  # noqa: E402
    confusion_matrix,
    format_confusion_matrix,
    format_per_class,
)
from tinycnn.preprocessing import prepare_images  # noqa: E402

try:  # --plot's pictures need matplotlib (the extra "plot"); nothing else does
    import matplotlib.pyplot as plt  # noqa: E402

    from tinycnn import viz  # noqa: E402
except ImportError:
    plt = viz = None

MISTAKES_SHOWN = 24


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="initial Adam learning rate")
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    p.add_argument("--val-split", type=float, default=0.1, help="fraction held out (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="folder with the four IDX .gz files")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    p.add_argument("--save", default=None, help="save the trained model to this .npz file")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    p.add_argument(
        "--plot",
        metavar="DIR",
        default=None,
        help="write history.png, confusion_matrix.png and mistakes.png to DIR",
    )
    args = p.parse_args(argv)
    if args.plot and viz is None:  # say so now, not after the training
        p.error('--plot draws with matplotlib, which is not installed: pip install "tinycnn[plot]"')
    return args


def exit_interrupted(message: str) -> None:
    """End on Ctrl-C with a short message instead of a traceback."""
    print(f"\n{message}", file=sys.stderr, flush=True)
    sys.exit(130)  # the shell's code for "ended by Ctrl-C"


@contextlib.contextmanager
def ctrl_c_waits():
    """A Ctrl-C during the block takes effect at its end (a file is written whole)."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # ignored (a background job) or handled by someone else: leave it so
        return
    pressed = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


def main(argv=None) -> dict:
    args = parse_args(argv)
    try:
        tinycnn.set_backend(args.backend)
    except RuntimeError as err:
        sys.exit(f"error: {err}")

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(args.data_dir)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    x_train, x_test = prepare_images(x_train), prepare_images(x_test)  # (N, 28, 28, 1) in [0, 1]
    y_train, y_test = y_train.astype(numpy.int64), y_test.astype(numpy.int64)

    model = tinycnn.models.fashion_mnist_cnn(seed=args.seed)
    model.summary()
    model.compile(
        optimizer=tinycnn.optimizers.Adam(args.lr), loss="sparse_categorical_crossentropy"
    )

    callbacks = []
    if args.schedule == "cosine":
        callbacks.append(LearningRateScheduler(cosine_decay(args.lr, args.epochs)))
    if args.val_split > 0:
        callbacks.append(
            EarlyStopping(monitor="val_accuracy", patience=args.epochs, restore_best_weights=True)
        )
    start = time.perf_counter()
    try:
        history = model.fit(
            x_train,
            y_train,
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_split=args.val_split,
            callbacks=callbacks,
            verbose=args.verbose,
            seed=args.seed,
        )
    except KeyboardInterrupt:  # a second Ctrl-C stops at once, maybe in the middle of a step
        not_saved = ": the model was not saved" if args.save else ""
        exit_interrupted(f"Stopped at once (second Ctrl-C){not_saved}.")
    train_seconds = time.perf_counter() - start

    saved = ""
    try:
        with ctrl_c_waits():  # until the model file is written
            if history.interrupted:
                print("\nTraining interrupted (Ctrl-C): the model keeps the weights it reached.")
            if history.stopped_reason == "non-finite loss":
                print("\nTraining diverged (see the warning): the weights stay finite.")
            if args.save:  # before the evaluation: a Ctrl-C during it then loses nothing
                model.save(args.save)
                saved = f" The model is saved in {args.save}."
                print(f"\nSaved the model to {args.save}")
        summary = report(model, history, args, x_test, y_test, train_seconds)
    except KeyboardInterrupt:
        exit_interrupted(f"Interrupted before the end of the test-set evaluation.{saved}")
    n_val = int(round(len(x_train) * args.val_split))
    summary.update(train_images=len(x_train) - n_val, validation_images=n_val)
    if args.json:
        print(json.dumps(summary))
    return summary


def report(model, history, args, x_test, y_test, train_seconds: float) -> dict:
    """Evaluate on the test set, print the tables, and return the run's summary."""
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=1000)
    logits = model.predict(x_test, batch_size=1000)
    predicted = logits.argmax(axis=1)
    cm = confusion_matrix(y_test, predicted, len(fashion_mnist.CLASS_NAMES))
    print(
        f"\nTest accuracy: {test_accuracy:.2%}   test loss: {test_loss:.4f}   "
        f"(training took {train_seconds:.1f} s)"
    )
    print("\nPer-class accuracy on the test set:")
    print(format_per_class(cm, fashion_mnist.CLASS_NAMES))
    print("\nConfusion matrix (rows: true class, columns: predicted class):")
    print(format_confusion_matrix(cm, fashion_mnist.CLASS_NAMES))
    if args.plot:
        write_plots(Path(args.plot), history, x_test, y_test, logits)

    return {
        "backend": args.backend,
        "epochs": len(history.epoch),
        "batch_size": args.batch_size,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "epoch_seconds": history.epoch_seconds,
        "interrupted": history.interrupted,
        "history": history.history,
        "seed": args.seed,
    }


def write_plots(folder: Path, history, x_test, y_test, logits) -> None:
    """history.png, confusion_matrix.png and mistakes.png in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    probabilities = tinycnn.softmax(logits.astype(numpy.float64))
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    wrong = numpy.flatnonzero(predicted != y_test)
    worst = wrong[numpy.argsort(-confidence[wrong], kind="stable")][:MISTAKES_SHOWN]
    names = fashion_mnist.CLASS_NAMES
    figures = {
        "history.png": viz.plot_history(history),
        "confusion_matrix.png": viz.plot_confusion_matrix(y_test, predicted, names),
    }
    if len(worst):  # a perfect model makes no mistakes to show
        figures["mistakes.png"] = viz.show_images(
            x_test[worst], y_test[worst], predicted[worst], names, ncols=8, scores=confidence[worst]
        )
        figures["mistakes.png"].suptitle(
            "the most confident mistakes: predicted class, (true class) and its probability"
        )
    for name, fig in figures.items():
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
    print(f"\nWrote {', '.join(figures)} to {folder}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # before training, say while loading the data
        exit_interrupted("Interrupted.")
