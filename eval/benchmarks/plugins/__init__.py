"""One module per benchmark, each defining a :class:`eval.benchmarks.base.Benchmark` subclass; the
registry (:func:`eval.benchmarks.base.registry`) imports every module here, so a new file is a new
benchmark."""
