"""Pure loss functions: tensors in, ``(loss, metrics)`` out. Inputs are already shifted (see
``distill.losses.common``); nothing here runs a model.

Every public function defined in a module of this package is importable from it
(``from distill.losses import dpo_loss``): a new loss module needs no line here.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

__all__: list[str] = []
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    _mod = importlib.import_module(f"{__name__}.{_info.name}")
    for _name, _obj in vars(_mod).items():
        if not _name.startswith("_") and inspect.isfunction(_obj) and _obj.__module__ == _mod.__name__:
            globals()[_name] = _obj
            __all__.append(_name)
__all__.sort()
del _info, _mod, _name, _obj
