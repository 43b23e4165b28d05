"""The grader's guard: code that runs *inside* the student's kernel, before the first cell.

This file is never imported by the grader. :mod:`tradeoffs.grading.guarded` sends its source to the
kernel, executes it in a fresh namespace and calls :func:`install`, which snapshots the objects tests
rely on (``builtins``, ``numpy``'s comparison functions, ``math``) into a module
``_tradeoffs_guard``. Before each test cell the grader calls its ``restore`` (put back anything a
submission replaced and hide shadowing names the test uses), after it ``unhide`` and ``ids`` (a test
cell that replaced them scores zero). It imports nothing of the kit: the kernel may not have it.
"""


def install():
    """Snapshot what tests rely on and register ``_tradeoffs_guard`` (restore/unhide/ids); return the ids."""
    import builtins, math, sys, types
    import numpy, numpy.testing
    mod = types.ModuleType("_tradeoffs_guard")
    modules = {"builtins": builtins, "numpy": numpy, "numpy.testing": numpy.testing, "math": math}
    attrs = {
        "numpy": ["isclose", "allclose", "array_equal", "array_equiv", "asarray", "array", "all",
                  "any", "abs", "isnan", "isfinite", "sort", "unique", "mean", "percentile", "sum"],
        "numpy.testing": [n for n in dir(numpy.testing) if n.startswith("assert")],
        "math": ["isclose", "isnan", "isinf", "isfinite", "fabs"],
    }
    managed = {"get_ipython", "exit", "quit", "display", "input", "_", "__", "___", "__IPYTHON__",
               "copyright", "credits", "license", "help", "runfile", "dreload"}
    pristine = {}
    for name, value in vars(builtins).items():
        if name in managed or (name.startswith("_") and name not in ("__import__", "__build_class__")):
            continue
        pristine[("builtins", name)] = value
    for modname, names in attrs.items():
        for name in names:
            if hasattr(modules[modname], name):
                pristine[(modname, name)] = getattr(modules[modname], name)
    aliases = {"np": "numpy", "numpy": "numpy", "math": "math"}

    def ids():
        out = {}
        for key, mod_ in modules.items():
            out["sys.modules." + key] = id(sys.modules.get(key))
        for (modname, name) in pristine:
            out[modname + "." + name] = id(vars(modules[modname]).get(name))
        return out

    def restore(ns, referenced):
        changed = []
        for key, mod_ in modules.items():
            if sys.modules.get(key) is not mod_:
                sys.modules[key] = mod_
                changed.append("sys.modules." + key)
        for (modname, name), value in pristine.items():
            if vars(modules[modname]).get(name) is not value:
                setattr(modules[modname], name, value)
                changed.append(modname + "." + name)
        if ns.get("__builtins__") is not builtins:
            ns["__builtins__"] = builtins
            changed.append("__builtins__")
        hidden = {}
        for name in referenced:
            if name not in ns:
                continue
            if name in aliases and ns[name] is not modules[aliases[name]]:
                hidden[name] = ns[name]
                ns[name] = modules[aliases[name]]
            elif ("builtins", name) in pristine and ns[name] is not pristine[("builtins", name)]:
                hidden[name] = ns.pop(name)
        mod._hidden = hidden
        return changed, sorted(hidden)

    def unhide(ns):
        for name, value in mod._hidden.items():
            ns[name] = value
        mod._hidden = {}

    mod.ids, mod.restore, mod.unhide, mod._hidden = ids, restore, unhide, {}
    sys.modules["_tradeoffs_guard"] = mod
    return repr(ids())
