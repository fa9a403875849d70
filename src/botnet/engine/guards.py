"""Where a run stops on its own: a loss that is non-finite or has left its range, weights that overflowed, and a stop
request (a signal on any process) honoured at a safe point. Each stop says where it happened and which checkpoint
holds the last good state; a mixin of :class:`~botnet.engine.loop.Trainer`.
"""

from __future__ import annotations

import math
import signal

from . import checkpoint as ckpt
from .distributed import all_reduce_sum
from .stopping import TrainingError, TrainingInterrupted

# A training loss above this many times the first step's (or above this many, when the first was below 1: a model
# already fitted to its data starts near 0) has left its range: the run diverged.
DIVERGED_FACTOR = 20.0


class TrainerGuards:
    """The checks of :class:`~botnet.engine.loop.Trainer` that end a run (its attributes: ``c``, ``info``,
    ``model``, ``out``, ``batches``, ``command``, ``_signals``, ``_stopping``)."""

    def _check_finite(self, loss: float, epoch: int) -> None:
        """Stop when the loss is non-finite or has left its range (:data:`DIVERGED_FACTOR`): a diverging run stops
        before it writes the diverged weights as a checkpoint, so the last one is good."""
        finite = math.isfinite(loss)
        flags = all_reduce_sum([float(not finite), loss if finite else 0.0], self.info).tolist()
        c = self.c
        if not flags[0] and c.first_loss == 0.0:
            c.first_loss = flags[1] / self.info.world_size
        mean = flags[1] / self.info.world_size
        if not flags[0] and mean <= DIVERGED_FACTOR * max(c.first_loss, 1.0):
            return
        where = f"epoch {epoch + 1}, batch {c.batch_in_epoch}/{self.batches} (optimizer step {c.global_step})"
        what = (
            f"the loss became non-finite ({loss})"
            if flags[0]
            else f"the loss left its range ({mean:,.4g}, more than {DIVERGED_FACTOR:g} x the first step's "
            f"{c.first_loss:.4g}, or x 1): the run diverged"
        )
        kept = self._last_checkpoint("the last good checkpoint is")  # every loss before it was in range
        raise TrainingError(f"{what} at {where}; stopped, {kept}. Lower --lr, set --clip-grad, or check the data")

    def _check_weights_finite(self) -> None:
        """Refuse to checkpoint non-finite weights (a step can overflow them while its loss was still finite)."""
        bad = [k for k, t in self.model.state_dict().items() if t.is_floating_point() and not t.isfinite().all()]
        if bad:
            last = self.out / "last"
            kept = f"{last} is kept as it was" if (last / ckpt.MODEL_FILE).exists() else "no checkpoint was written"
            epoch = self.c.epoch + (1 if self.c.batch_in_epoch else 0)  # at an epoch's end c.epoch already counts it
            raise TrainingError(
                f"the weights became non-finite ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}) after "
                f"optimizer step {self.c.global_step} (epoch {epoch}); stopped without saving them, "
                f"{kept}. Lower --lr or set --clip-grad"
            )

    def _stop_agreed(self) -> bool:
        self._stopping = self._stopping or all_reduce_sum([float(bool(self._signals))], self.info).item() > 0
        return self._stopping

    def _stop(self) -> None:
        """End the run at a safe point after a stop request; the checkpoint of this point is already written."""
        c = self.c
        name = signal.Signals(self._signals[0]).name if self._signals else "a stop request on another process"
        where = (
            f"epoch {c.epoch + 1}, batch {c.batch_in_epoch}/{self.batches}"
            if c.batch_in_epoch
            else (f"the end of epoch {c.epoch}")
        )
        raise TrainingInterrupted(
            f"stopped by {name} at {where} (optimizer step {c.global_step}); the checkpoint {self.out / 'last'} holds "
            f"this point. Continue with: {self.task.command} --resume {self.out}",
            self._signals[0] if self._signals else signal.SIGTERM,
        )
