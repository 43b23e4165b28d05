"""Restoring test cells a student deleted, from the released notebook.
"""

from __future__ import annotations



def _grade_id(cell: dict) -> str | None:
    return (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")


def restore_missing_cells(submitted, released) -> list[str]:
    """Put back, in place, every nbgrader cell of ``released`` missing from ``submitted``.

    A deleted test cell comes back (nbgrader's ``OverwriteCells`` then restores its full source,
    hidden tests included); a deleted answer cell comes back as the released stub. Each cell is
    inserted just before the next nbgrader cell (in the released order) that the submission still
    has, or at the end. nbgrader's own ``add_missing_cells`` raises ``KeyError`` when a test cell
    *and* the cell before it were both deleted; this does not.

    Parameters
    ----------
    submitted, released : nbformat.NotebookNode
        ``submitted`` is modified in place.

    Returns
    -------
    list of str
        The grade ids that were restored.

    Examples
    --------
    >>> import nbformat
    >>> def cell(gid):
    ...     c = nbformat.v4.new_code_cell("pass")
    ...     c.metadata["nbgrader"] = {"grade_id": gid}
    ...     return c
    >>> rel = nbformat.v4.new_notebook(cells=[cell("a"), cell("b"), cell("c")])
    >>> sub = nbformat.v4.new_notebook(cells=[cell("a"), cell("c")])
    >>> restore_missing_cells(sub, rel), [c.metadata.nbgrader.grade_id for c in sub.cells]
    (['b'], ['a', 'b', 'c'])
    """
    import copy

    import nbformat

    order = [gid for gid in map(_grade_id, released.cells) if gid]
    restored = []
    present = {gid for gid in map(_grade_id, submitted.cells) if gid}
    used_ids = {c.get("id") for c in submitted.cells}
    for position_in_release, cell in enumerate(c for c in released.cells if _grade_id(c)):
        gid = _grade_id(cell)
        if gid in present:
            continue
        new = copy.deepcopy(cell)
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        if new.get("id") in used_ids or "id" not in new:
            new["id"] = nbformat.v4.new_code_cell().id
        used_ids.add(new["id"])
        later = [g for g in order[position_in_release + 1:] if g in present]
        index = len(submitted.cells)
        if later:
            index = next(i for i, c in enumerate(submitted.cells) if _grade_id(c) == later[0])
        submitted.cells.insert(index, new)
        present.add(gid)
        restored.append(gid)
    return restored
