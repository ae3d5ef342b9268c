"""Progress of every long step, readable in a terminal and in a log file.

One helper for plain loops (:class:`Tracker`) and one Lightning callback (:class:`StageProgress`),
used by every stage: training, the DPO reference pass, teacher caches, PAD scoring, generation,
judging, lm-eval.

- On a terminal (stderr is a TTY) a rich bar per running task: ``[stage] what  ━━━━  12/80  …``.
- Otherwise (``python run.py > log 2>&1``, a SLURM job, a sweep's subprocess) plain lines, at least
  one every ``DISTILL_PROGRESS_PERIOD`` seconds (default 30; a line comes a second early) while a
  task runs, even inside a step that takes longer, and one when it ends::

      [sft_teacher] training: 120/800 steps (15%), 2.10 steps/s, elapsed 0:00:57, ETA 0:05:24, loss 1.234
      [sft_teacher] training: done, 800/800 steps in 0:06:21 (2.10 steps/s), loss 0.412

- ``DISTILL_PROGRESS=plain|rich|off`` forces a mode (default ``auto``: rich on a TTY, else plain).

Every line names its stage: the ``stage`` given to the tracker, else the stage being built
(:func:`stage`, set by :class:`distill.stages.Pipeline` around each artifact build:
``sft_teacher``, ``dpo_teacher``, ``sft_student``, ``distill/<method>``, ``samples``,
``teacher_cache``, ``pad_scores``, ``generate``; evaluation sets ``judging``, ``lm_eval`` ...).
Plain lines go to the ``distill.progress`` logger (so Hydra's run log keeps them too), or to
stderr when logging is not configured.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
import sys
import threading
import time
from typing import Iterable, Iterator, Optional


log = logging.getLogger(__name__)

PERIOD_ENV = "DISTILL_PROGRESS_PERIOD"
MODE_ENV = "DISTILL_PROGRESS"
DEFAULT_PERIOD = 30.0
MODES = ("auto", "rich", "plain", "off")

_stage: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("distill_progress_stage", default=None)


# ----------------------------------------------------------------------------- settings
def period() -> float:
    """Seconds between two plain progress lines of one task (``DISTILL_PROGRESS_PERIOD``, default 30)."""
    raw = os.environ.get(PERIOD_ENV)
    if not raw:
        return DEFAULT_PERIOD
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{PERIOD_ENV}={raw!r}: must be a number of seconds > 0, e.g. {PERIOD_ENV}=30") from None
    if not value > 0:
        raise ValueError(f"{PERIOD_ENV}={raw!r}: must be a number of seconds > 0, e.g. {PERIOD_ENV}=30")
    return value


def mode() -> str:
    """``rich`` (a TTY), ``plain`` (anything else) or ``off``; ``DISTILL_PROGRESS`` forces one."""
    chosen = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if chosen not in MODES:
        raise ValueError(f"{MODE_ENV}={chosen!r}: choose one of {', '.join(MODES)}")
    if chosen != "auto":
        return chosen
    try:
        return "rich" if sys.stderr.isatty() else "plain"
    except (AttributeError, ValueError):  # a closed or replaced stream
        return "plain"


@contextlib.contextmanager
def stage(name: str, timer: bool = False) -> Iterator[str]:
    """Name the stage that the trackers opened inside this block report under. ``timer``: the block
    itself reports too (``[name] building: elapsed ...`` every period while none of its steps
    does: loading models, tokenising, writing files), and ``[name] building: done in ...``."""
    token = _stage.set(name)
    try:
        if timer:
            with Tracker("building", stage=name, unit=None):
                yield name
        else:
            yield name
    finally:
        _stage.reset(token)


def current_stage() -> Optional[str]:
    return _stage.get()


# ----------------------------------------------------------------------------- formatting
def _clock(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _metric(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"


_last_emit = time.monotonic()  # when the last progress line went out (any task)


def _emit(line: str) -> None:
    global _last_emit
    _last_emit = time.monotonic()
    if logging.getLogger(__name__).hasHandlers() and log.isEnabledFor(logging.INFO):
        log.info(line)
    else:
        print(line, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the rich display
class _RichDisplay:
    """One rich Progress shared by all running trackers (rich allows a single live display)."""

    def __init__(self):
        self.progress = None
        self.users = 0
        self.lock = threading.Lock()

    def add(self, label: str, total: Optional[int], completed: int) -> int:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        with self.lock:
            if self.progress is None:
                self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                         TaskProgressColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                                         TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"),
                                         transient=True)
                self.progress.start()
            self.users += 1
            return self.progress.add_task(label, total=total, completed=completed, metrics="")

    def update(self, task: int, completed: int, metrics: str) -> None:
        if self.progress is not None:
            self.progress.update(task, completed=completed, metrics=metrics)

    def remove(self, task: int) -> None:
        with self.lock:
            if self.progress is None:
                return
            self.progress.remove_task(task)
            self.users -= 1
            if self.users <= 0:
                self.progress.stop()
                self.progress, self.users = None, 0


_RICH = _RichDisplay()

# trackers running now, in the order they started: only the innermost one (the last) speaks
# periodically, so a stage's own timer is quiet while one of its steps reports
_ACTIVE: list["Tracker"] = []
_ACTIVE_LOCK = threading.Lock()


def _innermost(t: "Tracker") -> bool:
    with _ACTIVE_LOCK:
        return bool(_ACTIVE) and _ACTIVE[-1] is t


# ----------------------------------------------------------------------------- the tracker
class Tracker:
    """Progress of one task: ``what`` (e.g. ``training``, ``reference log-probs``) out of ``total``
    ``unit`` s, under ``stage`` (default: the stage being built).

        with Tracker("reference log-probs", total=len(items), unit="pairs") as t:
            for chunk in chunks:
                ...
                t.advance(len(chunk), loss=0.3)
    """

    def __init__(self, what: str, total: Optional[int] = None, *, stage: Optional[str] = None,
                 unit: Optional[str] = "it",
                 initial: int = 0, every: Optional[float] = None):
        self.what, self.total, self.unit = what, (int(total) if total is not None else None), unit
        self.stage = stage or current_stage() or what
        self.initial = self.done = int(initial)
        self.metrics: dict = {}
        self.every = every if every is not None else period()
        self.mode = mode()
        self.t0: Optional[float] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._task: Optional[int] = None
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return f"[{self.stage}]" if self.what == self.stage else f"[{self.stage}] {self.what}"

    # -- life cycle
    def start(self) -> "Tracker":
        if self.t0 is not None:
            return self
        self.t0 = time.monotonic()
        with _ACTIVE_LOCK:
            _ACTIVE.append(self)
        if self.mode == "rich":
            self._task = _RICH.add(self.label, self.total, self.done)
        elif self.mode == "plain":
            self._thread = threading.Thread(target=self._beat, name=f"progress {self.label}", daemon=True)
            self._thread.start()
        return self

    def close(self, failed: bool = False) -> None:
        if self.t0 is None or self._stop.is_set():
            return
        self._stop.set()
        with _ACTIVE_LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._task is not None:
            _RICH.remove(self._task)
        if self.mode != "off":
            _emit(self.line(final=True, failed=failed))

    def __enter__(self) -> "Tracker":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    def _beat(self) -> None:
        # the innermost task speaks when no progress line has gone out for a period (counting the
        # lines of the tasks before it, so a task that starts late in a silent stretch speaks early).
        # It checks every `tick` and speaks up to two ticks early (a 30 s period: after 29-29.5 s),
        # so that a line reaches the log within the period even when a loaded machine wakes the
        # thread late and takes a moment to write it (measured: 30.1-30.5 s without the lead).
        tick = min(0.5, self.every / 20)
        due = self.every - 2 * tick
        while not self._stop.wait(tick):
            if _innermost(self) and time.monotonic() - max(_last_emit, self.t0 - self.every) >= due:
                _emit(self.line())

    # -- updates
    def advance(self, n: int = 1, **metrics) -> None:
        """``n`` more done (safe from several threads)."""
        self._set(n, True, metrics)

    def update(self, done: int, **metrics) -> None:
        """``done`` so far, and the latest values of ``metrics`` (e.g. ``loss=0.41``)."""
        self._set(done, False, metrics)

    def _set(self, n: int, relative: bool, metrics: dict) -> None:
        with self._lock:
            self.done = self.done + int(n) if relative else int(n)
            self.metrics.update({k: v for k, v in metrics.items() if v is not None})
            done = self.done
        if self._task is not None:
            _RICH.update(self._task, done, self._metrics_text())

    # -- text
    def rate(self) -> float:
        elapsed = time.monotonic() - self.t0 if self.t0 is not None else 0.0
        return (self.done - self.initial) / elapsed if elapsed > 0 else 0.0

    def _metrics_text(self) -> str:
        return ", ".join(f"{k} {_metric(v)}" for k, v in self.metrics.items())

    def line(self, final: bool = False, failed: bool = False) -> str:
        """One plain line: stage, what, step/total, rate, elapsed, ETA, metrics."""
        with self._lock:
            done, total = self.done, self.total
            metrics = self._metrics_text()
        elapsed = time.monotonic() - self.t0 if self.t0 is not None else 0.0
        if self.unit is None:  # a timer: no count
            head = ("stopped after " if failed else "done in ") if final else "elapsed "
            return f"{self.label}: {head}{_clock(elapsed)}" + (f", {metrics}" if metrics else "")
        rate = self.rate()
        count = f"{done}/{total} {self.unit}" if total else f"{done} {self.unit}"
        speed = f"{rate:.3g} {self.unit}/s" if rate >= 0.1 or rate == 0 else f"{1 / rate:.3g} s/{self.unit.rstrip('s')}"
        if final:
            head = "stopped" if failed else "done"
            parts = [f"{head}, {count} in {_clock(elapsed)} ({speed})"]
        else:
            pct = f" ({100 * done / total:.0f}%)" if total else ""
            parts = [f"{count}{pct}", speed, f"elapsed {_clock(elapsed)}"]
            if total and rate > 0:
                parts.append(f"ETA {_clock((total - done) / rate)}")
        if metrics:
            parts.append(metrics)
        return f"{self.label}: " + ", ".join(parts)


def track(items: Iterable, what: str, *, total: Optional[int] = None, stage: Optional[str] = None,
          unit: str = "it") -> Iterator:
    """Iterate ``items`` with a :class:`Tracker` advancing by one per item."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Tracker(what, total, stage=stage, unit=unit) as t:
        for item in items:
            yield item
            t.advance()


# ----------------------------------------------------------------------------- Lightning
def _make_stage_progress():
    """:class:`StageProgress`, made when first asked for: Lightning is imported then, not with this
    module (which a run imports first, to report while the libraries load; Lightning alone takes
    over a minute to import on a loaded machine)."""
    import lightning as L

    class StageProgress(L.Callback):
        """Lightning's progress, named by stage: optimizer steps out of ``max_steps``, rate, ETA, the
        training loss (and the last validation loss), in place of Lightning's own bar (``Epoch 0/-2``,
        ``v_num``). Rank 0 only."""

        def __init__(self, stage: Optional[str] = None):
            self.stage = stage or current_stage()
            self.tracker: Optional[Tracker] = None

        def on_train_start(self, trainer, pl_module) -> None:
            if not trainer.is_global_zero:
                return
            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
            self.tracker = Tracker("training", total, stage=self.stage, unit="steps",
                                   initial=trainer.global_step).start()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if self.tracker is None:
                return
            m = trainer.callback_metrics
            loss = m.get("train/loss_step", m.get("train/loss"))
            if loss is None and isinstance(outputs, dict):
                loss = outputs.get("loss")
            self.tracker.update(trainer.global_step, loss=_float(loss))

        def on_validation_end(self, trainer, pl_module) -> None:
            if self.tracker is None or trainer.sanity_checking:
                return
            val = trainer.callback_metrics.get("val/loss")
            if val is not None:
                self.tracker.update(self.tracker.done, val_loss=_float(val))

        def on_train_end(self, trainer, pl_module) -> None:
            if self.tracker is not None:
                self.tracker.close()
                self.tracker = None

        def on_exception(self, trainer, pl_module, exception) -> None:
            if self.tracker is not None:
                self.tracker.close(failed=True)
                self.tracker = None

    return StageProgress


def __getattr__(name: str):
    if name == "StageProgress":
        globals()["StageProgress"] = cls = _make_stage_progress()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _float(v) -> Optional[float]:
    if v is None:
        return None
    try:
        return float(v.detach().float().item()) if hasattr(v, "detach") else float(v)
    except (TypeError, ValueError, RuntimeError):
        return None
