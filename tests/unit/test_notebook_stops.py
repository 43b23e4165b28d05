"""A cell that reads what a stopped part would have made names that part in one line (tradeoffs.notebook)."""

import pytest

IPython = pytest.importorskip("IPython")
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

from tradeoffs import notebook  # noqa: E402


@pytest.fixture
def shell():
    notebook._STOPPED.clear()
    sh = InteractiveShell.instance()
    sh.run_cell("from tradeoffs.notebook import needs, _explain_name_errors\n_explain_name_errors()")
    sh.shown = []  # what the learner would see of each error, as text
    sh._showtraceback = lambda etype, value, stb: sh.shown.append("\n".join(stb))
    yield sh
    sh.set_custom_exc((), None)
    InteractiveShell.clear_instance()
    notebook._STOPPED.clear()


STUB = "def top_spenders(calls):\n    raise NotImplementedError()\n"
EXPERIMENT = "with needs('Part 2 (top_spenders)'):\n    table = top_spenders(None)\n"


def test_a_name_error_after_a_stopped_part_names_the_part(shell):
    shell.run_cell(STUB)
    stopped = shell.run_cell(EXPERIMENT)
    assert type(stopped.error_in_exec).__name__ == "PartNotDone"
    later = shell.run_cell("table.head()")
    out = shell.shown[-1]
    assert isinstance(later.error_in_exec, NameError), "the cell still fails: Run All stops there"
    assert "Part 2 (top_spenders) is not implemented yet" in out and "name 'table' is not defined" in out
    assert "Traceback" not in out


def test_a_name_error_with_no_stopped_part_keeps_its_traceback(shell):
    later = shell.run_cell("undefined_name + 1")
    out = shell.shown[-1]
    assert isinstance(later.error_in_exec, NameError)
    assert "NameError" in out and "PartNotDone" not in out


def test_the_part_is_forgotten_once_its_cell_runs_through(shell):
    shell.run_cell(STUB)
    shell.run_cell(EXPERIMENT)
    shell.run_cell("def top_spenders(calls):\n    return 'done'\n")
    assert shell.run_cell(EXPERIMENT).success
    shell.run_cell("typo_name")
    out = shell.shown[-1]
    assert "PartNotDone" not in out and "NameError" in out


def test_outside_ipython_setup_installs_nothing():
    notebook._explain_name_errors()  # no shell running: returns quietly


def test_in_a_jupyter_kernel_the_error_output_is_the_one_line(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (
        "from tradeoffs.notebook import setup, needs\nrun = setup('smoke', 0, 'cpu', quiet=True)",
        STUB, EXPERIMENT, "table.head()")]
    nbclient.NotebookClient(nb, timeout=120, allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}).execute()
    stop, later = (c.outputs[-1] for c in nb.cells[2:4])
    assert stop.output_type == "error" and stop.ename == "PartNotDone"
    assert later.output_type == "error" and later.ename == "NameError", "the cell still fails, so Run All stops"
    assert later.traceback == [
        "PartNotDone: name 'table' is not defined: it comes from a cell that stopped because Part 2 (top_spenders) "
        "is not implemented yet. Do it first, then rerun the cells from that one on."]
