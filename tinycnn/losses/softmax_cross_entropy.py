"""Softmax cross-entropy from logits and integer labels.

For one sample with logits z (C,) and true class t:
    p = softmax(z) = exp(z - max z) / sum(exp(z - max z))
    loss = -log p[t] = logsumexp(z) - z[t]
Subtracting max z before exp changes nothing mathematically and keeps exp from
overflowing (the log-sum-exp trick). The gradient is the famous
    dloss/dz = p - onehot(t)
averaged over the batch because the loss is the batch mean.
"""

from __future__ import annotations

from ..backend import get_array_module


def check_class_labels(labels, n_samples: int, n_classes: int, who: str, name: str = "labels"):
    """Raise a clear error unless ``labels`` are integer class labels, shape (n_samples,),
    each in [0, n_classes). ``who`` and ``name`` say where the error came from
    ("SoftmaxCrossEntropy" and "labels", or "fit" and "y")."""
    if not hasattr(labels, "dtype") or labels.dtype.kind not in "iu":
        got = getattr(labels, "dtype", type(labels).__name__)
        raise TypeError(
            f"{who}: expected integer class labels of shape (N,), got {got}. "
            f"One-hot labels? Use {name}.argmax(axis=1)."
        )
    if tuple(labels.shape) != (n_samples,):
        raise ValueError(
            f"{who}: expected {name} of shape ({n_samples},), one label for each of the "
            f"{n_samples} samples, got {tuple(labels.shape)}."
        )
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= n_classes:
            raise ValueError(
                f"{who}: {name} must lie in [0, {n_classes - 1}] for {n_classes} classes, "
                f"got values from {low} to {high}."
            )


class SoftmaxCrossEntropy:
    """Mean softmax cross-entropy of logits ``(N, C)`` against labels ``(N,)`` in [0, C).

    ``forward(logits, labels)`` returns the mean loss as a 0-d array of the logits'
    backend (call ``float()`` on it to read it; on a GPU that waits for the GPU).
    ``backward()`` returns dL/dlogits, shape ``(N, C)``.

    A model whose last layer ends in a softmax (``Dense(10, activation="softmax")``)
    outputs probabilities; ``compile`` then sets ``output_layer`` to that layer, and
    given its output the loss uses the logits the layer kept instead (stable: no log
    of a probability rounded to 0) and hands back dL/dlogits, which the layer passes
    on without its softmax Jacobian (``layers.activations.SoftmaxOutput``).
    """

    name = "sparse_categorical_crossentropy"

    def __init__(self):
        self.cache = None
        self.output_layer = None  # a layer ending in softmax, set by Sequential.compile
        self._softmax_output = None  # its SoftmaxOutput when forward used its logits

    def _logits_of(self, outputs):
        """``outputs`` itself, or the logits behind them when they are the probabilities
        the output layer's softmax just computed."""
        kept = getattr(self.output_layer, "softmax_output", None)
        self._softmax_output = kept if kept is not None and outputs is kept.probs else None
        return outputs if self._softmax_output is None else self._softmax_output.logits

    def forward(self, logits, labels, check: bool = True):
        """The mean loss of ``logits`` ``(N, C)`` against ``labels`` ``(N,)``, a 0-d array;
        ``check=False`` skips the checks of shapes, labels and finite values."""
        logits = self._logits_of(logits)
        xp = get_array_module(logits)
        if check:
            self._check(logits, labels, xp)
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)  # (N, C), max is 0
        exp = xp.exp(shifted)
        sum_exp = exp.sum(axis=1, keepdims=True)
        rows = xp.arange(n)
        log_p_true = shifted[rows, labels] - xp.log(sum_exp[:, 0])  # log softmax at the label
        self.cache = (exp / sum_exp, labels)  # probabilities, for backward
        return -log_p_true.mean()

    def backward(self):
        """dL/dlogits of the last :meth:`forward`, ``(p - onehot(labels)) / N``, shape ``(N, C)``."""
        if self.cache is None:
            raise RuntimeError("SoftmaxCrossEntropy: backward() called before forward().")
        probs, labels = self.cache
        xp = get_array_module(probs)
        n = probs.shape[0]
        dlogits = probs.copy()
        dlogits[xp.arange(n), labels] -= 1.0  # p - onehot(t)
        dlogits /= n  # the loss is a mean over the batch
        if self._softmax_output is not None:  # the output layer skips its softmax backward
            self._softmax_output.logits_grad = dlogits
        return dlogits

    __call__ = forward

    def get_config(self):
        """``{"name": "sparse_categorical_crossentropy"}``, for saving."""
        return {"name": self.name}

    @staticmethod
    def _check(logits, labels, xp):
        if logits.ndim != 2:
            raise ValueError(
                f"SoftmaxCrossEntropy: expected logits of shape (N, C), got {tuple(logits.shape)}."
            )
        if logits.dtype.kind != "f":
            raise TypeError(f"SoftmaxCrossEntropy: expected float logits, got {logits.dtype}.")
        check_class_labels(labels, logits.shape[0], logits.shape[1], "SoftmaxCrossEntropy")
        if not bool(xp.isfinite(logits).all()):
            raise ValueError("SoftmaxCrossEntropy: the logits contain NaN or infinite values.")
