"""The lab registry: one list of labs, read by run, release, grade, the tests and the course map."""

import pytest

from tradeoffs import course


def test_labs_are_numbered_in_order_with_unique_ids():
    labs = course.labs()
    assert [lab.number for lab in labs] == list(range(1, len(labs) + 1))
    assert len({lab.id for lab in labs}) == len(labs)


def test_every_registered_lab_has_its_notebooks(repo):
    for lab in course.labs():
        assert (repo / "solutions" / lab.id / f"{lab.id}.ipynb").is_file(), lab.id
        assert (repo / "labs" / lab.id / f"{lab.id}.ipynb").is_file(), lab.id
        assert (repo / "notebooks" / lab.concept).is_file(), f"{lab.id}: concept notebook {lab.concept} is missing"
        assert 0 < lab.compute_minutes <= 15, f"{lab.id}: a lab's full run must fit 15 minutes on 2 cores"


def test_the_tests_and_tradeoffs_run_see_every_registered_lab():
    assert course.existing_labs() == list(course.lab_ids())


def test_a_course_file_adds_labs(tmp_path):
    (tmp_path / course.COURSE_FILE).write_text(
        '[[lab]]\nid = "lab7_x"\nnumber = 7\ntitle = "X"\nexperiment = "e"\nconcept = ""\n'
        'learner_minutes = 30\ncompute_minutes = 2\nwhy_here = "w"\n')
    assert course.lab_ids(tmp_path)[-1] == "lab7_x"
    assert course.get("lab7_x", tmp_path).learner_minutes == 30
    assert "lab7_x" not in course.lab_ids()


@pytest.mark.parametrize("text, message", [
    ('[[lab]]\nid = "lab7_x"\n', "missing"),
    ('[[lab]\n', "not valid TOML"),
    ('[[lab]]\nid = "lab1_build_vs_buy"\nnumber = 7\ntitle = "X"\nexperiment = "e"\nconcept = ""\n'
     'learner_minutes = 30\ncompute_minutes = 2\nwhy_here = "w"\n', "listed twice"),
])
def test_a_bad_course_file_says_what_is_wrong(tmp_path, text, message):
    (tmp_path / course.COURSE_FILE).write_text(text)
    with pytest.raises(ValueError, match=message):
        course.labs(tmp_path)


def test_readme_shows_the_registrys_course_map(repo):
    readme = (repo / "README.md").read_text()
    assert course.course_map_markdown() in readme, (
        "README.md's course map differs from tradeoffs.course; paste course.course_map_markdown() into it")


def test_start_here_shows_the_registrys_course_map(repo):
    import nbformat

    nb = nbformat.read(repo / "notebooks" / "00_start_here.ipynb", as_version=4)
    shown = [o.get("data", {}).get("text/markdown", "") for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", [])]
    assert any(course.course_map_markdown() in text for text in shown), (
        "notebooks/00_start_here.ipynb does not show the registry's course map; re-execute it "
        "(jupyter nbconvert --to notebook --execute --inplace notebooks/00_start_here.ipynb)")


def _stated_minutes(intro: str) -> float:
    """The upper end of the time a lab's intro states: '**Estimated time:** about 3 to 3.5 hours ...'."""
    import re

    match = re.search(r"\*\*Estimated time:\*\*([^(:]*)", intro)
    assert match, "the intro has no '**Estimated time:** about ...' line"
    words = match.group(1)
    return max(float(n) for n in re.findall(r"\d+(?:\.\d+)?", words)) * (60 if "hour" in words else 1)


def _stated_compute(intro: str) -> list[float]:
    """Every full-run compute time a lab's intro states: '... takes at most 4 min on a 2-core CPU ...'."""
    import re

    return [float(n) for n in re.findall(r"at most (\d+(?:\.\d+)?) min on a 2-core CPU", intro)]


def test_each_lab_intro_states_the_registrys_number_title_times_and_grading(repo):
    import nbformat

    for lab in course.labs():
        nb = nbformat.read(repo / "solutions" / lab.id / f"{lab.id}.ipynb", as_version=4)
        intro = nb.cells[0].source
        heading = intro.splitlines()[0] if intro else ""
        expected = f"# Lab {lab.number} — {lab.title}"
        assert heading == expected or heading.startswith(expected + ":"), (
            f"{lab.id}: its intro's first line is {heading!r}; the registry gives {expected!r} (optionally ': ...')")
        assert _stated_minutes(intro) == lab.learner_minutes, (
            f"{lab.id}: its intro states {_stated_minutes(intro):g} minutes, the registry {lab.learner_minutes}")
        assert _stated_compute(intro) == [lab.compute_minutes], (
            f"{lab.id}: its intro must state the full run's compute time once, as 'takes at most "
            f"{lab.compute_minutes} min on a 2-core CPU' (the registry's compute_minutes); it states "
            f"{_stated_compute(intro) or 'none'}")
        assert "a few minutes" not in intro and "laptop" not in intro, (
            f"{lab.id}: the intro's compute time is 'at most N min on a 2-core CPU', not 'a few minutes' or a laptop")
        assert "**Grading:**" in intro and "80 points" in intro and "20 points" in intro, (
            f"{lab.id}: the intro's '**Grading:**' line must say 80 points autograded and 20 for the memo")
