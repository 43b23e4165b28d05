"""How many threads the kit's work uses: one place for the thread pools and their environment.

The kit runs on 2-core laptops beside other work (a grader's other kernels, a server under load), where
more threads than cores cost more than they give. Three knobs, each used everywhere it applies:

* :func:`limit_threads` -- this process's BLAS and OpenMP pools (NumPy, SciPy, scikit-learn);
* :func:`thread_env` -- the environment that sets the same pools in a child process (a sandboxed
  kernel), before it starts;
* :func:`default_threads` -- how many threads a long-running service (the server) takes by default;
* :func:`configure_kernelspec` -- every notebook kernel starts with idle OpenMP threads asleep.
Imports nothing of the kit but :mod:`tradeoffs.files`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: The variables that size a child's thread pools: OpenMP, MKL, OpenBLAS and Rust's rayon (tokenizers).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")


def _check(n_threads) -> int:
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
    return int(n_threads)


def limit_threads(n_threads: int = 1):
    """Limit the BLAS and OpenMP thread pools of this process (scikit-learn, NumPy, SciPy).

    Small models (hundreds of rows, tens of features) fit faster on one thread than on two: the
    hand-offs cost more than the arithmetic, and on a busy machine much more (a logistic regression
    fit measured 0.13 s of CPU with two OpenBLAS threads under load, 0.01 s with one). The native
    libraries are loaded first so that every pool is covered. Returns the ``threadpoolctl`` limiter:
    use it in a ``with`` block, or keep it and call ``restore_original_limits()`` to undo.

    Examples
    --------
    >>> with limit_threads(1):
    ...     pass
    >>> limit_threads(0)
    Traceback (most recent call last):
    ...
    ValueError: n_threads must be a positive integer, got 0
    """
    n_threads = _check(n_threads)
    import sklearn.ensemble  # noqa: F401  (loads OpenMP)
    import sklearn.linear_model  # noqa: F401  (loads SciPy's OpenBLAS)
    import sklearn.neural_network  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n_threads)


def thread_env(n_threads: int) -> dict[str, str]:
    """Environment variables that give a child process ``n_threads`` threads in every pool.

    >>> thread_env(2)["OMP_NUM_THREADS"]
    '2'
    """
    value = str(_check(n_threads))
    return {key: value for key in THREAD_VARIABLES}


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroup affinity), at least 1.

    >>> available_cores() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads for a service: ``$OMP_NUM_THREADS`` when it is set (a grader or a scheduler sharing the
    machine set it), else every core this process may use.

    >>> 1 <= default_threads()
    True
    """
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else available_cores()


#: What every notebook kernel of the kit starts with. Idle OpenMP threads sleep instead of spinning: on a
#: 2-core laptop, spinning threads left over from one operation starve the next. Measured on the reference
#: machine in a Jupyter kernel: MiniLM on one ticket took 394 ms with the default (active) wait policy and
#: 9 ms with PASSIVE; the same call in a plain Python process took 16 ms either way.
KERNEL_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}

#: What ``tradeoffs serve`` starts with (before torch loads; values already in the environment win).
#: Idle OpenMP threads sleep, as in a kernel, but only after spinning briefly (``GOMP_SPINCOUNT``
#: iterations, well under a millisecond): a decode step is a few hundred short parallel operations back
#: to back, and a worker that went to sleep after each one must be woken for the next. Measured on the
#: reference machine (2 cores, SmolLM2-135M in bfloat16, one stream): 51 ms per step when the workers
#: sleep at once, 36 ms when they spin that long first; libgomp spins less again (about 100
#: iterations) when it manages more threads than there are cores, which is why the server loads its
#: models on one thread and computes only on the engine thread (:func:`tradeoffs.serve.app.run_server`).
SERVE_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}


def configure_kernelspec(prefix: str | os.PathLike | None = None, name: str = "python3") -> Path:
    """Add :data:`KERNEL_ENV` to the ``env`` of the environment's Jupyter kernel spec (idempotent).

    Every kernel that JupyterLab, papermill, nbval or nbgrader starts from that spec inherits it.
    ``make install`` runs this for ``.venv``.

    Parameters
    ----------
    prefix : path, optional
        The environment (default: this interpreter's, ``sys.prefix``).
    name : str
        The kernel spec (``python3``, ipykernel's).

    Examples
    --------
    >>> import json, tempfile
    >>> prefix = Path(tempfile.mkdtemp())
    >>> spec = prefix / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    >>> spec.parent.mkdir(parents=True)
    >>> _ = spec.write_text(json.dumps({"argv": ["python"], "language": "python"}))
    >>> json.loads(configure_kernelspec(prefix).read_text())["env"]
    {'OMP_WAIT_POLICY': 'PASSIVE'}
    """
    import json
    import sys

    from .files import atomic_write

    path = Path(prefix or sys.prefix) / "share" / "jupyter" / "kernels" / name / "kernel.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: install ipykernel in that environment first "
                                "(`make install` does)")
    spec = json.loads(path.read_text(encoding="utf-8"))
    env = spec.get("env") or {}
    if any(env.get(k) != v for k, v in KERNEL_ENV.items()):
        spec["env"] = {**env, **KERNEL_ENV}
        atomic_write(path, json.dumps(spec, indent=1) + "\n")
    return path
