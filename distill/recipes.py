"""The recipe entry points named by the method configs' ``recipe._target_`` (``distill.recipes.<name>``).

Each method's recipe lives in its plugin (``distill/methods/<name>.py``, :mod:`distill.methods.plugin`);
the first six methods' configs still name ``distill.recipes.<recipe>`` because those strings are part
of their stored artifact keys. Any attribute of this module is the registered plugin of that name,
called as ``recipe(pipe, stage_cfg, out, work, logger)`` on ``pipe.cfg.method`` (what Hydra's
``instantiate(cfg.method.recipe)`` gives); no method is named here.
"""
from __future__ import annotations


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    from distill.methods.plugin import get

    try:
        plugin = get(name)
    except KeyError as e:
        raise AttributeError(str(e)) from None

    def recipe(pipe, stage_cfg, out, work, logger=None):
        m = pipe.cfg.method
        plugin.recipe(pipe, m, plugin.inputs(pipe, m), stage_cfg, out, work, logger)

    recipe.__name__ = recipe.__qualname__ = name
    recipe.__doc__ = f"The recipe of the registered method {name!r} ({type(plugin).__module__})."
    return recipe
