"""The commands above the toy world, ``distill`` and ``eval``: the ``distill-bench`` console command
(:mod:`distill_bench.cli`) and the rehearsal's stand-ins (:mod:`distill_bench.standins`: checkpoints,
data sets and benchmark files, and the judge server)."""
