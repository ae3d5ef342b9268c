"""One plugin per method: a thin LightningModule (batch -> pure loss function -> log) and a ``METHOD``
object declaring the method's typed config, inputs and recipe (:mod:`distill.methods.plugin`, whose
``registry()`` finds every module here that defines one)."""
