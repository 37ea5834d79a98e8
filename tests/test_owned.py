"""The one ownership rule (``rda_cli/owned.py``): what rda may replace, and how a result is put in place.

No manifest, no claim; a folder that appears while rda works is never replaced; of two writers of one
new folder exactly one wins and the other loses loudly. Races are made deterministic with barriers
(threads, or forked processes for what depends on PIDs), never with sleeps; generated folder trees
(``hypothesis``, derandomised) check that a claim is granted exactly when nothing of the user's is there.
"""

import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rda_cli.owned import (MANIFEST, NotOwnedError, PlaceError, claim, ownership_problem, place, temp_dir,
                           write_manifest)
from rda_cli.safeio import make_dirs, rename_noreplace, show_path

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])


def tree(folder):
    folder = Path(folder)
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def result(dest, files):
    """A finished result for ``dest`` built as every writer builds one: temp folder, files, manifest last."""
    tmp = temp_dir(dest)
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    write_manifest(tmp)
    return tmp


# ------------------------------------------------------------------ no manifest, no claim
def test_an_owned_folder_is_claimed_until_its_manifest_goes(tmp_path):
    dest = tmp_path / "r"
    place(result(dest, {"detect.json": "{}", "model/params.json": "{}"}), claim(dest, "detect.json"))
    assert claim(dest, "detect.json").state == "owned"
    (dest / "report.md").write_text("my edits")  # not listed
    with pytest.raises(NotOwnedError, match="report.md is a file rda did not write"):
        claim(dest, "detect.json")
    (dest / "report.md").unlink()
    (dest / MANIFEST).unlink()
    with pytest.raises(NotOwnedError, match=f"no {MANIFEST}"):
        claim(dest, "detect.json")


def test_an_owned_folder_without_the_marker_is_not_claimed_for_that_kind(tmp_path):
    dest = tmp_path / "m"
    place(result(dest, {"params.json": "{}"}), claim(dest))
    assert claim(dest, "params.json").state == "owned"
    with pytest.raises(NotOwnedError, match="no ensemble.json"):
        claim(dest, "ensemble.json")


NAMES = st.sampled_from(["detect.json", "scores.csv", "report.md", "model", "params.json", "notes.txt", MANIFEST])


@settings(max_examples=60, **SETTINGS)
@given(files=st.dictionaries(st.lists(NAMES, min_size=1, max_size=3).map("/".join), st.text(max_size=5),
                             max_size=6),
       manifest=st.booleans(), edit=st.sampled_from(["none", "add", "change", "delete", "add folder"]))
def test_generated_trees_are_claimed_only_when_nothing_of_the_user_s_is_in_them(tmp_path_factory, files, manifest,
                                                                                 edit):
    """A tree written by rda (manifest) and then perhaps edited, or a tree of rda-like names without one:
    the claim is granted iff there is a manifest and the edit left nothing of the user's; a granted
    claim replaces, a refused one changes nothing."""
    folder = tmp_path_factory.mktemp("gen") / "out"
    folder.mkdir()
    written = {}
    for name, text in files.items():
        parts = name.split("/")
        if MANIFEST in parts or any(Path(*parts[:k]).as_posix() in written for k in range(1, len(parts))):
            continue  # a file where a folder is needed, or the manifest itself: not a tree anyone writes
        if any(w.startswith(name + "/") for w in written):
            continue
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
        written[name] = text
    if manifest:
        write_manifest(folder)
    if edit == "add":
        (folder / "mine.txt").write_text("x")
    elif edit == "add folder":
        (folder / "keep").mkdir()
    elif edit == "change" and written:
        name = sorted(written)[0]
        (folder / name).write_text(written[name] + "!")
    elif edit == "delete" and written:
        (folder / sorted(written)[0]).unlink()  # nothing of the user's was in it
    users = (not manifest or edit in ("add", "add folder") or (edit == "change" and bool(written))) \
        and any(folder.iterdir())  # an empty folder holds nothing to lose
    before = tree(folder)
    if users:
        with pytest.raises(NotOwnedError):
            claim(folder)
        assert tree(folder) == before
    else:
        place(result(folder, {"new.txt": "new"}), claim(folder))
        assert (folder / "new.txt").read_text() == "new"
    assert [p.name for p in folder.parent.iterdir()] == ["out"]  # no temporary or old folder left


# ------------------------------------------------------------------ what appears meanwhile stays
def test_a_folder_that_appears_during_the_run_is_kept(tmp_path):
    dest = tmp_path / "X"
    claimed = claim(dest, "detect.json")  # absent at the start
    tmp = result(dest, {"detect.json": "{}"})
    dest.mkdir()
    (dest / "report.md").write_text("notes")
    with pytest.raises(PlaceError, match=f"{dest} appeared or was filled while rda ran"):
        place(tmp, claimed)
    assert tree(dest) == {"report.md": b"notes"}


def test_an_empty_folder_filled_during_the_run_is_kept(tmp_path):
    dest = tmp_path / "X"
    dest.mkdir()
    claimed = claim(dest)
    tmp = result(dest, {"a": "1"})
    (dest / "mine").write_text("x")
    with pytest.raises(PlaceError):
        place(tmp, claimed)
    assert tree(dest) == {"mine": b"x"}


def test_an_owned_folder_replaced_by_another_run_meanwhile_is_kept(tmp_path):
    """Two ``--force`` runs on one rda folder: the second finds the first's result, not the folder it
    claimed, and loses (the first's result stays)."""
    dest = tmp_path / "r"
    place(result(dest, {"detect.json": "0"}), claim(dest, "detect.json"))
    a, b = claim(dest, "detect.json"), claim(dest, "detect.json")
    place(result(dest, {"detect.json": "A"}), a)
    tmp_b = result(dest, {"detect.json": "B"})
    with pytest.raises(PlaceError, match="no longer the folder that was checked"):
        place(tmp_b, b)
    assert (dest / "detect.json").read_text() == "A" and ownership_problem(dest, "detect.json") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r", tmp_b.name])  # B's result: the caller's to drop


@pytest.mark.parametrize("round_", range(5))
def test_two_writers_of_one_new_folder_exactly_one_wins(tmp_path, round_):
    dest = tmp_path / "X"
    barrier = threading.Barrier(2, timeout=10)
    outcome = {}

    def writer(name):
        claimed = claim(dest, "detect.json")
        tmp = result(dest, {"detect.json": name, name: name})
        barrier.wait()  # both claimed an absent folder and finished; now both put theirs in place
        try:
            place(tmp, claimed)
            outcome[name] = "won"
        except PlaceError as exc:
            outcome[name] = str(exc)
            import shutil

            shutil.rmtree(tmp)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [n for n, o in outcome.items() if o == "won"]
    assert len(winners) == 1, outcome
    loser = ({"A", "B"} - set(winners)).pop()
    assert "appeared or was filled while rda ran" in outcome[loser]
    assert (dest / "detect.json").read_text() == winners[0] and ownership_problem(dest, "detect.json") is None
    assert [p.name for p in tmp_path.iterdir()] == ["X"]


def test_rename_noreplace_never_replaces(tmp_path):
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "a", tmp_path / "b")
    (tmp_path / "d").mkdir()
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        rename_noreplace(tmp_path / "d", tmp_path / "e")
    assert (tmp_path / "b").read_text() == "b" and (tmp_path / "e" / "x").read_text() == "x"
    rename_noreplace(tmp_path / "a", tmp_path / "c")
    assert (tmp_path / "c").read_text() == "a" and not (tmp_path / "a").exists()


def test_rename_noreplace_falls_back_safely_without_renameat2(tmp_path, monkeypatch):
    import rda_cli.safeio as safeio

    monkeypatch.setattr(safeio, "_renameat2", False)  # as on a system without it
    test_rename_noreplace_never_replaces(tmp_path)


def test_make_dirs_reports_only_what_this_call_created(tmp_path, monkeypatch):
    """Two processes making the same new folder: only the one whose ``mkdir`` made it may remove it again."""
    import rda_cli.safeio as safeio

    real = safeio.missing_dirs

    def someone_else_first(path):
        out = real(path)
        os.mkdir(tmp_path / "a")  # another process, between the look and the mkdir
        return out

    monkeypatch.setattr(safeio, "missing_dirs", someone_else_first)
    assert make_dirs(tmp_path / "a" / "b") == [tmp_path / "a" / "b"]


# ------------------------------------------------------------------ names and permissions
def test_temporary_names_fit_the_file_name_limit_and_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        dest = tmp_path / ("n" * 250)
        tmp = temp_dir(dest)
        assert len(tmp.name) <= 255 and stat.S_IMODE(tmp.stat().st_mode) == 0o755
        place(tmp, claim(dest))
        assert dest.is_dir()
    finally:
        os.umask(old)


def test_paths_in_messages_stay_on_one_line():
    assert show_path("results/run") == "results/run"
    assert "\n" not in show_path("r\nx") and show_path("r\nx") == repr("r\nx")
