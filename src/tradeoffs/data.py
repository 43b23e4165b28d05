"""Loaders for the data the labs use, each with fixed splits and documented columns and dtypes.

Three kinds of data:

* **Shipped with the kit** under ``datasets/`` and checksum-verified against ``datasets/SHA256SUMS``
  on every load: the support-ticket corpus written for this course (:func:`load_tickets`) and a
  one-day request trace derived from it (:func:`load_trace`). A corrupted or missing file raises
  :class:`DatasetError`, whose message names the file and the command that fixes it.
* **scikit-learn's bundled real datasets** (no download): Wisconsin breast cancer and handwritten
  digits (:func:`load_breast_cancer_split`, :func:`load_digits_split`).
* **Public intent datasets from the Hugging Face hub** (Banking77, CLINC150) for users with internet
  access, behind an explicit opt-in (:func:`load_public_intents`). Tests never use them.

The last two live in :mod:`tradeoffs.public_data` and are re-exported here.

Regenerate the shipped files (after editing ``datasets/support_tickets/raw/*.jsonl``) with one
command: ``python -m tradeoffs.data rebuild``. ``python -m tradeoffs.data verify`` checks them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from .files import atomic_write, sha256_file
from .public_data import (DOWNLOAD_ENV, DatasetError, PUBLIC_INTENT_SETS, SPLIT_SEED, PublicIntentSet, Split,  # noqa: F401
                          load_breast_cancer_split, load_digits_split, load_public_intents)


# --------------------------------------------------------------------------------------------
# The support-ticket corpus and the traffic trace: names, labels, columns
# --------------------------------------------------------------------------------------------
INTENTS = ("billing", "refund", "delivery", "account_access", "bug_report", "cancellation",
           "product_question", "complaint")
PRIORITIES = ("low", "normal", "high", "urgent")  # ordered, least to most pressing
CHANNELS = ("email", "chat", "web_form")
CUSTOMER_TIERS = ("free", "standard", "premium")
HIGH_STAKES_REASONS = ("legal_threat", "account_takeover", "large_refund", "safety")
TENANTS = ("northwind_energy", "parcelpoint", "ledgerly", "kitcube", "fitloop")
TENANT_NAMES = {
    "northwind_energy": "NorthWind Energy",  # home electricity and gas, smart meters
    "parcelpoint": "ParcelPoint",            # parcel delivery, lockers
    "ledgerly": "Ledgerly",                  # accounting and invoicing SaaS
    "kitcube": "KitCube",                    # meal-kit subscription
    "fitloop": "FitLoop",                    # fitness wristband and app
}
SPLITS = ("train", "validation", "test")
FEATURES = ("summarise", "classify", "draft_reply")

TICKET_COLUMNS = ("ticket_id", "tenant", "channel", "customer_tier", "created_at", "text", "intent",
                  "secondary_intent", "ambiguous", "priority", "high_stakes", "high_stakes_reason", "split")
TRACE_COLUMNS = ("request_id", "timestamp", "tenant", "feature", "prompt_tokens", "completion_tokens",
                 "ticket_id", "burst")

TICKETS_FILE = "support_tickets/tickets.csv"
RAW_TICKETS_GLOB = "support_tickets/raw/*.jsonl"
TRACE_FILE = "traffic/trace.csv"
MANIFEST_NAME = "SHA256SUMS"
# What SHA256SUMS covers, relative to datasets/: every data file the kit ships.
MANIFEST_PATTERNS = (TICKETS_FILE, RAW_TICKETS_GLOB, TRACE_FILE)

DATASETS_ENV = "TRADEOFFS_DATASETS"
REPO_ENV = "TRADEOFFS_REPO"
FIX_REBUILD = "python -m tradeoffs.data rebuild"

_BOOL_TEXT = {"true": True, "false": False}


# --------------------------------------------------------------------------------------------
# Where the data lives, and checksums
# --------------------------------------------------------------------------------------------
def _looks_like_datasets(path: Path) -> bool:
    return path.is_dir() and ((path / MANIFEST_NAME).exists() or (path / "support_tickets").is_dir())


def datasets_dir() -> Path:
    """Return the kit's ``datasets/`` folder.

    Looked up in this order: ``$TRADEOFFS_DATASETS``; ``$TRADEOFFS_REPO/datasets``; the checkout this
    package is installed from (editable install); the current directory and its parents.

    Raises
    ------
    DatasetError
        When no folder is found, with the environment variable that fixes it.

    Examples
    --------
    >>> (datasets_dir() / "SHA256SUMS").exists()
    True
    """
    env = os.environ.get(DATASETS_ENV)
    if env:
        path = Path(env).expanduser().resolve()
        if not path.is_dir():
            raise DatasetError(f"{DATASETS_ENV}={env!r} is not a directory. Fix: point it at the kit's "
                               f"datasets/ folder (e.g. export {DATASETS_ENV}=/path/to/kit/datasets) or unset it.")
        return path
    repo = os.environ.get(REPO_ENV)
    candidates = [Path(repo).expanduser() / "datasets"] if repo else []
    here = Path(__file__).resolve()
    candidates += [p / "datasets" for p in here.parents]
    cwd = Path.cwd().resolve()
    candidates += [p / "datasets" for p in (cwd, *cwd.parents)]
    for cand in candidates:
        if _looks_like_datasets(cand):
            return cand.resolve()
    raise DatasetError(
        "could not find the kit's datasets/ folder (looked beside the installed package and in the "
        f"current directory and its parents). Fix: run from inside the kit's checkout, or export "
        f"{DATASETS_ENV}=/path/to/kit/datasets."
    )


def _root(root: str | Path | None) -> Path:
    return Path(root).resolve() if root is not None else datasets_dir()


def manifest_files(root: str | Path | None = None) -> list[str]:
    """The data files SHA256SUMS should cover, as sorted POSIX paths relative to ``datasets/``."""
    base = _root(root)
    found: set[str] = set()
    for pattern in MANIFEST_PATTERNS:
        found.update(p.relative_to(base).as_posix() for p in base.glob(pattern) if p.is_file())
    return sorted(found)


def read_manifest(root: str | Path | None = None) -> dict[str, str]:
    """Parse ``datasets/SHA256SUMS`` (the ``sha256sum`` format) into ``{relative path: sha256}``.

    Raises
    ------
    DatasetError
        When the manifest is missing or a line is malformed.
    """
    base = _root(root)
    path = base / MANIFEST_NAME
    if not path.exists():
        raise DatasetError(f"the checksum manifest {path} is missing. Fix: restore it with "
                           f"`git checkout -- datasets/{MANIFEST_NAME}`, or regenerate it with "
                           f"`python -m tradeoffs.data manifest` if you changed the data on purpose.")
    entries: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](\S.*)", line.strip())
        if not match:
            raise DatasetError(f"{path} line {lineno} is not '<sha256>  <file>': {line!r}. Fix: "
                               f"`git checkout -- datasets/{MANIFEST_NAME}` or `python -m tradeoffs.data manifest`.")
        entries[match.group(2)] = match.group(1)
    return entries


def write_manifest(root: str | Path | None = None) -> Path:
    """Write ``datasets/SHA256SUMS`` for every shipped data file (atomically) and return its path.

    The format is ``sha256sum``'s, so ``cd datasets && sha256sum -c SHA256SUMS`` also checks it.
    """
    base = _root(root)
    lines = [f"{sha256_file(base / rel)}  {rel}\n" for rel in manifest_files(base)]
    if not lines:
        raise DatasetError(f"no data files under {base} to list in {MANIFEST_NAME}. Fix: run `{FIX_REBUILD}`.")
    return atomic_write(base / MANIFEST_NAME, "".join(lines))


def _fix_for(rel: str) -> str:
    return (f"Fix: restore the shipped file with `git checkout -- datasets/{rel}`; if you changed the "
            f"raw tickets on purpose, regenerate everything with `{FIX_REBUILD}`.")


def verify_file(rel: str, root: str | Path | None = None) -> Path:
    """Check one shipped file against SHA256SUMS and return its absolute path.

    Parameters
    ----------
    rel : str
        Path relative to ``datasets/``, e.g. ``"support_tickets/tickets.csv"``.

    Raises
    ------
    DatasetError
        Missing file, corrupted file (checksum mismatch), or a file the manifest does not list.

    Examples
    --------
    >>> verify_file("support_tickets/tickets.csv").name
    'tickets.csv'
    """
    base = _root(root)
    manifest = read_manifest(base)
    path = base / rel
    if rel not in manifest:
        raise DatasetError(f"datasets/{rel} is not listed in datasets/{MANIFEST_NAME}, so it cannot be "
                           f"verified. Fix: `python -m tradeoffs.data manifest` (or `{FIX_REBUILD}`).")
    if not path.exists():
        raise DatasetError(f"datasets/{rel} is missing (expected at {path}). " + _fix_for(rel))
    got = sha256_file(path)
    if got != manifest[rel]:
        raise DatasetError(f"datasets/{rel} is corrupted or was changed: its sha256 is {got[:16]}..., "
                           f"but datasets/{MANIFEST_NAME} expects {manifest[rel][:16]}.... " + _fix_for(rel))
    return path


def verify_checksums(root: str | Path | None = None) -> dict[str, str]:
    """Check every file listed in SHA256SUMS, and that every shipped data file is listed.

    Returns
    -------
    dict
        ``{relative path: sha256}`` of the verified files.

    Raises
    ------
    DatasetError
        Listing every problem found, each with its file, and the fix.

    Examples
    --------
    >>> sums = verify_checksums()
    >>> "support_tickets/tickets.csv" in sums and "traffic/trace.csv" in sums
    True
    """
    base = _root(root)
    manifest = read_manifest(base)
    problems = []
    for rel in sorted(manifest):
        try:
            verify_file(rel, base)
        except DatasetError as exc:
            problems.append(str(exc))
    for rel in manifest_files(base):
        if rel not in manifest:
            problems.append(f"datasets/{rel} is not listed in datasets/{MANIFEST_NAME}. Fix: "
                            f"`python -m tradeoffs.data manifest` (or `{FIX_REBUILD}`).")
    if problems:
        raise DatasetError(f"{len(problems)} dataset problem(s):\n- " + "\n- ".join(problems))
    return dict(manifest)


# --------------------------------------------------------------------------------------------
# Support tickets
# --------------------------------------------------------------------------------------------
def _check_columns(df: pd.DataFrame, expected: Sequence[str], path: Path) -> None:
    if tuple(df.columns) != tuple(expected):
        missing = [c for c in expected if c not in df.columns]
        extra = [c for c in df.columns if c not in expected]
        raise DatasetError(f"{path} does not have the expected columns (missing {missing}, unexpected "
                           f"{extra}). Fix: `{FIX_REBUILD}` or `git checkout -- datasets/`.")


def _check_values(df: pd.DataFrame, column: str, allowed: Iterable[str], path: Path, allow_na: bool = False) -> None:
    values = df[column].dropna() if allow_na else df[column]
    bad = sorted(set(values.astype(str)) - set(allowed))
    if bad or (not allow_na and df[column].isna().any()):
        raise DatasetError(f"{path}: column {column!r} has values outside {tuple(allowed)}: "
                           f"{bad or ['<missing>']}. Fix: `{FIX_REBUILD}` or `git checkout -- datasets/`.")


def _parse_bool(series: pd.Series, column: str, path: Path) -> pd.Series:
    lowered = series.astype(str).str.strip().str.lower()
    bad = sorted(set(lowered) - set(_BOOL_TEXT))
    if bad:
        raise DatasetError(f"{path}: column {column!r} must hold true/false, found {bad[:5]}. "
                           f"Fix: `{FIX_REBUILD}` or `git checkout -- datasets/`.")
    return lowered.map(_BOOL_TEXT).astype(bool)


def read_tickets_csv(path: str | Path) -> pd.DataFrame:
    """Read a tickets CSV written by ``datasets/support_tickets/build.py`` (no checksum check).

    :func:`load_tickets` is what labs call; this reader exists for the build and trace scripts and for
    files outside ``datasets/``. Columns and dtypes are those documented in :func:`load_tickets`.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} is missing. Fix: `{FIX_REBUILD}` or `git checkout -- datasets/`.")
    text_cols = [c for c in TICKET_COLUMNS if c not in ("created_at", "ambiguous", "high_stakes")]
    try:
        df = pd.read_csv(path, dtype={c: str for c in TICKET_COLUMNS}, keep_default_na=False,
                         na_filter=False, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable tickets CSV ({exc}). "
                           f"Fix: `git checkout -- datasets/` or `{FIX_REBUILD}`.") from exc
    _check_columns(df, TICKET_COLUMNS, path)
    for col in ("secondary_intent", "high_stakes_reason"):
        df[col] = df[col].where(df[col] != "", None)
    for col in text_cols:
        df[col] = df[col].astype("str")
    df["ambiguous"] = _parse_bool(df["ambiguous"], "ambiguous", path)
    df["high_stakes"] = _parse_bool(df["high_stakes"], "high_stakes", path)
    try:
        df["created_at"] = pd.to_datetime(df["created_at"], format="ISO8601", utc=True).astype("datetime64[ns, UTC]")
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: column 'created_at' holds a value that is not an ISO 8601 time ({exc}). "
                           f"Fix: `{FIX_REBUILD}` or `git checkout -- datasets/`.") from exc
    for col, allowed, na in (("tenant", TENANTS, False), ("channel", CHANNELS, False),
                             ("customer_tier", CUSTOMER_TIERS, False), ("intent", INTENTS, False),
                             ("secondary_intent", INTENTS, True), ("priority", PRIORITIES, False),
                             ("high_stakes_reason", HIGH_STAKES_REASONS, True), ("split", SPLITS, False)):
        _check_values(df, col, allowed, path, allow_na=na)
    if df["ticket_id"].duplicated().any():
        dup = df.loc[df["ticket_id"].duplicated(), "ticket_id"].iloc[0]
        raise DatasetError(f"{path}: ticket_id {dup!r} appears more than once. Fix: `{FIX_REBUILD}`.")
    return df


def load_tickets(split: str | None = None, *, verify: bool = True, root: str | Path | None = None) -> pd.DataFrame:
    """The course's customer-support corpus: five fictional tenants, three channels, eight intents.

    Written by hand for this course (see ``datasets/support_tickets/DATASHEET.md``). The
    train/validation/test split is fixed and stored in the file (stratified by intent), never
    recomputed.

    Parameters
    ----------
    split : {"train", "validation", "test"}, optional
        Return only that split; ``None`` (default) returns every ticket.
    verify : bool
        Check the file against ``datasets/SHA256SUMS`` first (default True).
    root : path, optional
        The ``datasets/`` folder; default :func:`datasets_dir`.

    Returns
    -------
    pandas.DataFrame
        One row per ticket, ordered by ``created_at``, with columns

        ============================ ======================== ===========================================
        column                       dtype                    meaning
        ============================ ======================== ===========================================
        ``ticket_id``                str                      stable id, e.g. ``"KCB-3f9a2c1b"``
        ``tenant``                   str                      one of :data:`TENANTS`
        ``channel``                  str                      one of :data:`CHANNELS`
        ``customer_tier``            str                      one of :data:`CUSTOMER_TIERS`
        ``created_at``               datetime64[ns, UTC]      when the ticket arrived (synthetic, seeded)
        ``text``                     str                      the ticket as the customer wrote it
        ``intent``                   str                      one of :data:`INTENTS`
        ``secondary_intent``         str or NaN               a second need, when there is one
        ``ambiguous``                bool                     two intents fit about equally well
        ``priority``                 str                      one of :data:`PRIORITIES`
        ``high_stakes``              bool                     legal threat, takeover, large refund, safety
        ``high_stakes_reason``       str or NaN               one of :data:`HIGH_STAKES_REASONS`
        ``split``                    str                      one of :data:`SPLITS`
        ============================ ======================== ===========================================

    Raises
    ------
    DatasetError
        The file is missing or corrupted; the message names it and the fix.

    Examples
    --------
    >>> test = load_tickets("test")
    >>> len(test) >= 300, set(test["split"]) == {"test"}
    (True, True)
    >>> sorted(set(load_tickets()["intent"])) == sorted(INTENTS)
    True
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    base = _root(root)
    path = verify_file(TICKETS_FILE, base) if verify else base / TICKETS_FILE
    df = read_tickets_csv(path)
    if split is not None:
        df = df[df["split"] == split].reset_index(drop=True)
    return df


# --------------------------------------------------------------------------------------------
# Traffic trace
# --------------------------------------------------------------------------------------------
def read_trace_csv(path: str | Path) -> pd.DataFrame:
    """Read a trace CSV written by ``datasets/traffic/make_trace.py`` (no checksum check)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} is missing. Fix: `{FIX_REBUILD}` or `git checkout -- datasets/`.")
    try:
        df = pd.read_csv(path, dtype={"request_id": str, "timestamp": str, "tenant": str, "feature": str,
                                      "prompt_tokens": "int64", "completion_tokens": "int64",
                                      "ticket_id": str, "burst": str},
                         keep_default_na=False, na_values={"burst": [""]}, encoding="utf-8")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable trace CSV ({exc}). "
                           f"Fix: `git checkout -- datasets/` or `{FIX_REBUILD}`.") from exc
    _check_columns(df, TRACE_COLUMNS, path)
    try:
        df["timestamp"] = pd.to_datetime(df["timestamp"], format="ISO8601", utc=True).astype("datetime64[ns, UTC]")
    except (ValueError, TypeError) as exc:
        raise DatasetError(f"{path}: column 'timestamp' holds a value that is not an ISO 8601 time ({exc}). "
                           f"Fix: `{FIX_REBUILD}`.") from exc
    _check_values(df, "tenant", TENANTS, path)
    _check_values(df, "feature", FEATURES, path)
    if (df["prompt_tokens"] < 1).any() or (df["completion_tokens"] < 1).any():
        raise DatasetError(f"{path}: token counts must be positive. Fix: `{FIX_REBUILD}`.")
    return df


def load_trace(*, verify: bool = True, root: str | Path | None = None) -> pd.DataFrame:
    """One day of LLM requests per tenant and feature, for cost attribution and load tests.

    Generated by ``datasets/traffic/make_trace.py`` from the ticket corpus (see
    ``datasets/traffic/DATASHEET.md``): a diurnal curve per tenant, named bursts, a skewed tenant mix,
    and prompt lengths counted with the chat model's tokenizer on real prompts built from tickets.

    Returns
    -------
    pandas.DataFrame
        One row per request, ordered by ``timestamp``, with columns

        ======================= ===================== ==================================================
        column                  dtype                 meaning
        ======================= ===================== ==================================================
        ``request_id``          str                   ``"req-000001"``, in time order
        ``timestamp``           datetime64[ns, UTC]   arrival time (millisecond resolution)
        ``tenant``              str                   one of :data:`TENANTS`
        ``feature``             str                   one of :data:`FEATURES`
        ``prompt_tokens``       int64                 prompt length in chat-model tokens
        ``completion_tokens``   int64                 completion length in chat-model tokens
        ``ticket_id``           str                   the ticket the prompt was built from
        ``burst``               str or NaN            the named burst this request belongs to
        ======================= ===================== ==================================================

    Examples
    --------
    >>> trace = load_trace()
    >>> sorted(trace["feature"].unique()) == sorted(FEATURES)
    True
    >>> bool(trace["timestamp"].is_monotonic_increasing)
    True
    """
    base = _root(root)
    path = verify_file(TRACE_FILE, base) if verify else base / TRACE_FILE
    return read_trace_csv(path)


# --------------------------------------------------------------------------------------------
# Near-duplicate check (the corpus's quality bar, also useful for train/test leakage)
# --------------------------------------------------------------------------------------------
_WORD = re.compile(r"[0-9a-z]+(?:['\u2019][0-9a-z]+)*")


def words(text: str) -> list[str]:
    """Lower-cased words of a text (letters and digits; apostrophes inside a word kept).

    Examples
    --------
    >>> words("Can't log in -- again!! Order #A-42")
    ["can't", 'log', 'in', 'again', 'order', 'a', '42']
    """
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def shared_word_sequences(texts: Sequence[str], n: int = 12) -> list[tuple[int, int, str]]:
    """Pairs of texts that share a sequence of ``n`` consecutive words.

    Parameters
    ----------
    texts : sequence of str
    n : int
        Sequence length in words (the corpus's bar is 12).

    Returns
    -------
    list of (i, j, sequence)
        ``i < j`` index the two texts; ``sequence`` is the first shared run found. Empty when none.

    Examples
    --------
    >>> a = "one two three four five six seven eight nine ten eleven twelve thirteen"
    >>> shared_word_sequences([a, "zero " + a[4:], "something else entirely"], n=12)
    [(0, 1, 'two three four five six seven eight nine ten eleven twelve thirteen')]
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    first_seen: dict[tuple[str, ...], int] = {}
    pairs: dict[tuple[int, int], str] = {}
    for j, text in enumerate(texts):
        toks = words(text)
        seen_here: set[tuple[str, ...]] = set()
        for k in range(len(toks) - n + 1):
            gram = tuple(toks[k:k + n])
            if gram in seen_here:
                continue
            seen_here.add(gram)
            i = first_seen.setdefault(gram, j)
            if i != j and (i, j) not in pairs:
                pairs[(i, j)] = " ".join(gram)
    return [(i, j, seq) for (i, j), seq in sorted(pairs.items())]


# --------------------------------------------------------------------------------------------
# Regeneration: one command after the raw tickets change
# --------------------------------------------------------------------------------------------
REBUILD_SCRIPTS = ("support_tickets/build.py", "traffic/make_trace.py")


def rebuild(root: str | Path | None = None, *, strict: bool = False) -> dict[str, str]:
    """Rebuild every derived dataset file, rewrite SHA256SUMS and verify it.

    Runs, in order: ``datasets/support_tickets/build.py`` (raw JSONL -> ``tickets.csv``),
    ``datasets/traffic/make_trace.py`` (tickets -> ``trace.csv``), :func:`write_manifest`, then
    :func:`verify_checksums`. Each step is deterministic, so running it twice changes nothing.

    Parameters
    ----------
    strict : bool
        Make the ticket build fail (not just warn) when a quality bar is missed.

    Returns
    -------
    dict
        The verified ``{relative path: sha256}``.
    """
    base = _root(root)
    for rel in REBUILD_SCRIPTS:
        script = base / rel
        if not script.exists():
            raise DatasetError(f"datasets/{rel} is missing. Fix: `git checkout -- datasets/{rel}`.")
        cmd = [sys.executable, str(script)] + (["--strict"] if strict and rel.endswith("build.py") else [])
        print(f"$ {' '.join(cmd)}", flush=True)
        proc = subprocess.run(cmd, cwd=base.parent)
        if proc.returncode != 0:
            raise DatasetError(f"datasets/{rel} failed (exit {proc.returncode}); its messages above say "
                               f"what to fix. Then run `{FIX_REBUILD}` again.")
    path = write_manifest(base)
    print(f"wrote {path}")
    sums = verify_checksums(base)
    print(f"verified {len(sums)} files")
    return sums


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tradeoffs.data {verify,manifest,rebuild}``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tradeoffs.data",
                                     description="Check or regenerate the kit's shipped datasets.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("verify", help="check every file against datasets/SHA256SUMS")
    sub.add_parser("manifest", help="rewrite datasets/SHA256SUMS from the files as they are")
    rb = sub.add_parser("rebuild", help="tickets.csv, then trace.csv, then SHA256SUMS, then verify")
    rb.add_argument("--strict", action="store_true", help="fail when a ticket quality bar is missed")
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            sums = verify_checksums()
            for rel, digest in sums.items():
                print(f"ok  {digest[:12]}  {rel}")
        elif args.command == "manifest":
            print(f"wrote {write_manifest()}")
        else:
            rebuild(strict=args.strict)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
