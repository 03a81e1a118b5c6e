"""Readable training logs: one line every ``log_every`` steps and a progress bar on terminals (an ignite handler).

MONAI's ``StatsHandler`` prints the last step's loss; this prints what a user reads a log for: the mean loss
over the interval, the learning rate and the seconds per step (``step 50/1800 loss 0.7523 lr 1.00e-03
0.27 s/step``), and keeps a tqdm bar with the running loss when the output is a terminal.
"""

from __future__ import annotations

import logging
import time

from ignite.engine import Engine, Events
from tqdm.auto import tqdm

from bundles.engines.trainer import total_steps
from bundles.progress import show_progress

__all__ = ["TrainingLog"]

logger = logging.getLogger("bundles.engines.trainer")


class TrainingLog:
    """Log the mean loss, learning rate and speed every ``log_every`` steps; show a progress bar.

    Args:
        log_every: steps between log lines.
        progress: show a progress bar (only on terminals, see :func:`bundles.progress.show_progress`).
    """

    def __init__(self, log_every: int = 10, progress: bool = True):
        self.log_every = max(int(log_every), 1)
        self.progress = progress
        self._bar: tqdm | None = None
        self._reset()

    def _reset(self) -> None:
        self._sum, self._count, self._start = 0.0, 0, time.perf_counter()

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._open)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._step)
        engine.add_event_handler(Events.COMPLETED, self._close)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self._close_and_raise)  # ignite swallows unless re-raised

    def _open(self, engine: Engine) -> None:
        self._bar = tqdm(total=total_steps(engine), initial=int(engine.state.iteration), desc="train", unit="step",
                         disable=not show_progress(self.progress))
        self._reset()

    def _step(self, engine: Engine) -> None:
        self._sum += float(engine.state.output[0]["loss"])
        self._count += 1
        if self._bar is not None:
            self._bar.update(1)
        step, total = int(engine.state.iteration), total_steps(engine)
        if step % self.log_every == 0 or step == total:
            loss = self._sum / self._count
            seconds = (time.perf_counter() - self._start) / self._count
            lr = engine.optimizer.param_groups[0]["lr"]
            engine.state.metrics.update({"loss": loss, "lr": lr, "seconds_per_step": seconds})
            if self._bar is not None:
                self._bar.set_postfix(loss=f"{loss:.4f}")
            logger.info("step %d/%d loss %.4f lr %.2e %.2f s/step", step, total, loss, lr, seconds)
            self._reset()

    def _close(self, engine: Engine) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _close_and_raise(self, engine: Engine, error: BaseException) -> None:
        self._close(engine)
        raise error
