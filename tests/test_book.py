"""The book's table of contents follows the profile: it lists exactly the
notebooks the sweep executes, grouped by task, and the committed ``_toc.yml``
is the default profile's."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from degen import sweep
from degen.profile import load_profile

REPO = Path(__file__).resolve().parents[1]


def _files(toc: dict) -> list[str]:
    return [ch["file"] for part in toc["parts"] for ch in part["chapters"]]


def _notebooks(name: str) -> list[str]:
    jobs = sweep.notebook_jobs(load_profile(name), REPO)
    return [j.output.relative_to(REPO).with_suffix("").as_posix() for j in jobs]


@pytest.mark.parametrize("name", ["smoke", "default"])
def test_the_toc_lists_exactly_the_executed_notebooks(name):
    toc = sweep.book_toc(sweep.notebook_jobs(load_profile(name), REPO), REPO)
    generated = [f for f in _files(toc) if f.startswith("book/generated/")]
    assert generated == _notebooks(name)
    text_pages = [f for f in _files(toc) if not f.startswith("book/generated/")]
    assert text_pages == ["book/methods", "book/choices", "book/performance"]
    assert toc["root"] == "book/intro"
    for page in [toc["root"], *text_pages]:
        assert (REPO / f"{page}.md").is_file()


@pytest.mark.parametrize("name", ["smoke", "default"])
def test_each_task_is_a_part_opening_with_its_task_page(name):
    profile = load_profile(name)
    toc = sweep.book_toc(sweep.notebook_jobs(profile, REPO), REPO)
    captions = [part["caption"] for part in toc["parts"]]
    titles = [sweep.analysis.TASK_TITLES[t] for t in profile.tasks]
    assert captions == ["Background", *titles, "Results"]
    for task, part in zip(profile.tasks, toc["parts"][1:-1], strict=True):
        files = [ch["file"].removeprefix("book/generated/") for ch in part["chapters"]]
        assert files[0] == task
        expected = [
            f"{level}_{task}_{factor}"
            for factor in profile.factors(task)
            for level in sweep.LEVELS
        ]
        assert files[1:] == expected
    results = [ch["file"] for ch in toc["parts"][-1]["chapters"]]
    assert results == [
        "book/generated/complexity",
        "book/generated/summary",
        "book/choices",
        "book/performance",
    ]


def test_the_committed_toc_is_the_default_profiles():
    committed = yaml.safe_load((REPO / "_toc.yml").read_text())
    jobs = sweep.notebook_jobs(load_profile("default"), REPO)
    assert committed == sweep.book_toc(jobs, REPO)


def test_level_pages_have_distinct_navigation_titles():
    jobs = sweep.notebook_jobs(load_profile("default"), REPO)
    for task in load_profile("default").tasks:
        titles = [j.title for j in jobs if j.parameters.get("task") == task]
        assert len(set(titles)) == len(titles)


def test_write_toc_writes_what_book_toc_gives(tmp_path):
    profile = load_profile("smoke")
    path = sweep.write_toc(profile, REPO, tmp_path / "toc" / "_toc.yml")
    written = yaml.safe_load(path.read_text())
    assert written == sweep.book_toc(sweep.notebook_jobs(profile, REPO), REPO)


def test_a_profile_without_a_complexity_factor_has_no_complexity_page(tmp_path):
    path = tmp_path / "widths.yaml"
    path.write_text(
        "tasks:\n"
        "  flipflop:\n"
        "    factors:\n"
        "      width: {field: model.n_hidden, values: [8, 16], row: width}\n"
    )
    names = [j.output.stem for j in sweep.notebook_jobs(load_profile(path), REPO)]
    assert "complexity" not in names and names[-1] == "summary"


def test_building_before_the_notebooks_exist_names_the_missing_ones(tmp_path):
    for name in ("sweeps", "degen"):
        (tmp_path / name).mkdir()
    with pytest.raises(sweep.SweepError) as err:
        sweep.build_book(tmp_path, profile="smoke")
    message = str(err.value)
    assert "book/generated/flipflop.ipynb" in message
    assert "degen sweep --profile smoke" in message
    assert not (tmp_path / "_build").exists()
