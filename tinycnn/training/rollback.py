"""How fit catches a diverging loss on a GPU at its first step without reading every loss.

On NumPy the loop reads each step's loss before the update, for free, and refuses a
NaN or infinite one. On a GPU that read waits for the device to finish the step, so
the loop would lose the GPU's head start at every step. Instead it relies on this:
a non-finite loss makes the running sum of losses non-finite for good. So the loop
reads that sum only every ``CHECK_SECONDS`` (and at the end of the epoch), and
:class:`Rollback` keeps a copy, on the device, of what the steps since the last read
may spoil.
"""

from __future__ import annotations

import math
import time

CHECK_SECONDS = 0.25  # on a GPU, how often the loop reads the running loss


class Rollback:
    """Snapshots, on the device, of the weights, the optimizer's state and the epoch's
    running sums, taken each time the running loss is read and found finite.

    When it is not finite, the model goes back to the last snapshot and the loop
    replays the steps since, checking each loss before its update (train_step's
    ``skip_non_finite``): training stops at the first non-finite loss with the weights
    from before it, exactly as on NumPy. The replay repeats the same computation,
    since a step depends only on the weights, the optimizer state
    (``optimizer.state`` and ``iterations``) and (seed, epoch, step); should a replay
    stay finite after all, training simply carries on from it.

    ``sums`` is the epoch's running totals: ``sums.loss`` a 0-d array on the device,
    ``sums.copy()`` a snapshot of them.
    """

    def __init__(self, model, sums):
        self.model = model
        self.replay_until = -1  # steps up to this one are being replayed, each checked
        self._take(0, sums)

    def replaying(self, step: int) -> bool:
        return step <= self.replay_until

    def time_to_check(self, step: int, now: bool) -> bool:
        """Read the running loss after ``step`` steps? When ``now`` (the epoch's end, or
        Ctrl-C) or every CHECK_SECONDS, never while replaying (each step is checked)."""
        if self.replaying(step):
            return False
        return now or time.perf_counter() - self.taken_at >= CHECK_SECONDS

    def check(self, step: int, sums):
        """Read the running loss (the one wait for the device); returns the step and the
        sums to go on from: these, or the snapshot's after a rollback."""
        if math.isfinite(float(sums.loss)):
            self._take(step, sums)
            return step, sums
        self.replay_until = step - 1
        self._restore()
        return self.step, self.sums.copy()

    def _take(self, step: int, sums) -> None:
        optimizer = self.model.optimizer
        self.step, self.sums, self.taken_at = step, sums.copy(), time.perf_counter()
        self.params = [p.copy() for layer in self.model.layers for p in layer.params.values()]
        self.iterations = optimizer.iterations
        self.state = copy_state(optimizer.state)

    def _restore(self) -> None:
        params = [p for layer in self.model.layers for p in layer.params.values()]
        for param, saved in zip(params, self.params, strict=True):
            param[...] = saved  # in place: the layers keep their arrays
        self.model.optimizer.iterations = self.iterations
        self.model.optimizer.state = copy_state(self.state)


def copy_state(state: dict) -> dict:
    """A copy of an optimizer's ``state`` ({"<layer>/<param>": {slot: array}})."""
    return {key: {name: a.copy() for name, a in slot.items()} for key, slot in state.items()}
