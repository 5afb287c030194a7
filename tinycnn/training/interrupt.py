"""Ctrl-C during ``fit``: finish the current step, then return what was trained.

Python turns Ctrl-C into a KeyboardInterrupt wherever the program happens to be,
possibly halfway through the optimizer's update of the weights. While ``fit`` runs,
the first Ctrl-C only raises a flag that the loop reads between two steps.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class CtrlC:
    """The flag: ``pressed`` becomes True at the first Ctrl-C."""

    pressed = False


@contextlib.contextmanager
def stop_on_interrupt():
    """While active, the first Ctrl-C sets the yielded ``CtrlC``'s ``pressed``: the loop
    finishes the current step and returns, so the weights are never left half-updated.
    A second Ctrl-C interrupts at once.

    Nothing is installed outside the main thread (Python allows handlers only there),
    nor when the process ignores SIGINT (a job started with ``&`` from a script: it must
    go on ignoring Ctrl-C typed for the foreground), nor when the handler was not set
    from Python (it could not be put back)."""
    ctrl_c = CtrlC()
    if threading.current_thread() is not threading.main_thread():
        yield ctrl_c
        return
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None):
        yield ctrl_c
        return

    def handler(signum, frame):
        if ctrl_c.pressed:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        ctrl_c.pressed = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous)
