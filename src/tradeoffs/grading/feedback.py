"""Feedback a student can read without learning the hidden tests or running another student's code.

nbgrader's ``GenerateFeedback`` renders the autograded notebook as it is: the hidden tests restored
into every test cell, and whatever HTML or JavaScript a submission displayed. The kit renders a copy
instead where

* the hidden-test regions are removed (the student sees which test cell failed and the error the
  test raised, as in :mod:`tradeoffs.grading.checker`'s outcome);
* outputs keep only inert kinds (plain text, PNG/JPEG images); HTML, Markdown, LaTeX, SVG and
  JavaScript outputs become a note; raw HTML in the student's Markdown answers is shown as text
  (the instructor's own cells are restored by nbgrader, so they are trusted).
"""

from __future__ import annotations

SAFE_MIME = ("text/plain", "image/png", "image/jpeg")


def _strip_rich_outputs(cell) -> None:
    for out in cell.get("outputs", []):
        data = out.get("data")
        if not data:
            continue
        dropped = sorted(k for k in data if k not in SAFE_MIME)
        for key in dropped:
            del data[key]
        if dropped and "text/plain" not in data:
            data["text/plain"] = f"[{', '.join(dropped)} output not shown in feedback]"
        out["metadata"] = {}


def _preprocessor_class():
    from nbconvert.preprocessors import Preprocessor

    class SafeFeedback(Preprocessor):
        """Outputs reduced to inert kinds (see the module docstring)."""

        enabled = True  # nbconvert's preprocessors are off unless told otherwise

        def preprocess_cell(self, cell, resources, index):
            from nbgrader.utils import is_solution

            if cell.cell_type == "code":
                _strip_rich_outputs(cell)
            elif cell.cell_type == "markdown" and is_solution(cell):  # the student's own Markdown: as text
                cell.source = cell.source.replace("<", "&lt;")
            cell.get("metadata", {}).pop("widgets", None)
            return cell, resources

    return SafeFeedback


def feedback_config() -> dict:
    """nbgrader configuration of ``GenerateFeedback`` for untrusted submissions."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import ClearHiddenTests, GetGrades

    return {
        "GenerateFeedback": {"preprocessors": [GetGrades, ClearHiddenTests, _preprocessor_class(),
                                               CSSHTMLHeaderPreprocessor]},
        "ClearHiddenTests": {"enforce_metadata": False},  # a student's own cell may hold the markers
        "HTMLExporter": {"sanitize_html": True},
    }
