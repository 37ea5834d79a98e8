"""Figures from synthetic cells: what each figure shows (read back from the Figure before it is saved),
that the files are PNGs, and that partial runs don't crash."""

import json
from pathlib import Path

import numpy as np
import pytest

from rda_cli.experiments.figures import denoise_figures, outlier_figures

PNG = b"\x89PNG\r\n\x1a\n"
KS = [0, 50, 100, 150, 200]
LAMS = [0.0005, 0.001, 0.005, 0.01, 0.05]


def _digits(rng, m):
    """Blob-like 28x28 'images' in [0, 1] so the pictures look like something."""
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.zeros((m, 784))
    for i in range(m):
        cy, cx = rng.uniform(9, 19, 2)
        r = rng.uniform(4, 8)
        ring = np.exp(-((np.hypot(yy - cy, xx - cx) - r) ** 2) / 3.0)
        out[i] = ring.ravel()
    return out


def _history(rng, n=12):
    h, obj, c1, c2 = [], 50.0 * rng.uniform(1, 2), 1.0, 1.0
    for it in range(1, n + 1):
        obj *= rng.uniform(0.7, 0.95)
        c1 *= rng.uniform(0.3, 0.7)
        c2 *= rng.uniform(0.3, 0.7)
        h.append({"iteration": it, "objective": obj, "c1": c1, "c2": c2,
                  "nonzero_entries": int(rng.integers(0, 1000))})
    return h


def _write(run_dir, cell, arrays=None):
    cdir = run_dir / "cells"
    cdir.mkdir(parents=True, exist_ok=True)
    (cdir / f"{cell['id']}.json").write_text(json.dumps(cell))
    if arrays is not None:
        np.savez_compressed(cdir / f"{cell['id']}.npz", **arrays)
    return cell


def make_denoise_run(run_dir: Path, with_npz=True, seed=0):
    rng = np.random.default_rng(seed)
    m = 10
    clean = _digits(rng, m)
    cells = []
    for k in KS:
        corrupted = clean.copy()
        for i in range(m):
            idx = rng.choice(784, k, replace=False)
            corrupted[i, idx] = np.where(corrupted[i, idx] > 0.5, 0.0, 1.0)
        ae_err = 0.05 + 0.001 * k + rng.normal(0, 0.01)
        ae_rec = np.clip(corrupted * 0.7 + clean * 0.3, 0, 1)
        cells.append(_write(run_dir, {"id": f"ae_k{k}", "kind": "ae", "k": k, "error": ae_err},
                            {"corrupted": corrupted, "L": ae_rec} if with_npz else None))
        for lam in LAMS:
            S = np.where(np.abs(corrupted - clean) > 0.5, corrupted - clean, 0.0)
            S = S * (rng.random(S.shape) < 0.8)
            cells.append(_write(
                run_dir,
                {"id": f"rda_k{k}_lam{lam}", "kind": "rda", "k": k, "lam": lam,
                 "error": ae_err + rng.normal(0.01, 0.02), "history": _history(rng)},
                {"corrupted": corrupted.astype(np.float16), "L": corrupted - S, "S": S,
                 "clean": clean} if with_npz else None))
    return cells


def make_outlier_run(run_dir: Path, with_npz=True, seed=1):
    rng = np.random.default_rng(seed)
    m = 40
    X = _digits(rng, m)
    is_out = np.zeros(m, bool)
    is_out[rng.choice(m, 5, replace=False)] = True
    X[is_out] = rng.random((5, 784))
    cells = []
    lams = [0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01]
    for j, lam in enumerate(lams):
        keep = rng.random(m) < (0.9 - 0.1 * j)
        rows = is_out | (keep & (rng.random(m) < 0.3))
        S = np.where(rows[:, None], X - 0.3, 0.0)
        p, r = min(1.0, 0.2 + 0.1 * j), max(0.0, 1.0 - 0.08 * j)
        cells.append(_write(
            run_dir,
            {"id": f"rda_{j}", "kind": "rda", "lam": lam, "precision": p, "recall": r,
             "f1": 2 * p * r / (p + r), "history": _history(rng)},
            {"X": X, "S": S, "is_outlier": is_out} if with_npz else None))
    cells.append(_write(run_dir, {"id": "ae", "kind": "ae", "f1": 0.41}))
    fr = [0.01, 0.02, 0.05, 0.1, 0.15, 0.2]
    prec = [0.9, 0.8, 0.6, 0.4, 0.3, 0.25]
    rec = [0.1, 0.2, 0.45, 0.7, 0.8, 0.9]
    cells.append(_write(run_dir, {
        "id": "iforest", "kind": "iforest", "fractions": fr, "precision": prec, "recall": rec,
        "f1": [2 * a * b / (a + b) for a, b in zip(prec, rec)]}))
    return cells


def _check(paths, names):
    assert sorted(p.name for p in paths) == sorted(names)
    for p in paths:
        assert p.is_file()
        data = p.read_bytes()
        assert data[:8] == PNG
        assert len(data) > 10_000, (p.name, len(data))


@pytest.fixture
def drawn(monkeypatch):
    """``{file name: matplotlib Figure}`` of every figure written: each figure module's ``_save`` is
    wrapped, so the Figure can be read back (its axes, lines and images) after the call."""
    from rda_cli.experiments.figures import _shared, denoise, outliers

    figures = {}
    original = _shared._save

    def recording(fig, path):
        figures[Path(path).name] = fig
        return original(fig, path)

    for module in (_shared, denoise, outliers):
        monkeypatch.setattr(module, "_save", recording)
    return figures


def _line(ax, label):
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return line.get_xdata(), line.get_ydata()


def _assert_convergence_shows(fig, cells):
    """Both panels: a cell's objective, and its c1 and c2, per outer iteration, for each line drawn."""
    ax_o, ax_c = fig.axes[:2]
    histories = {}
    for c in cells:
        if c.get("history"):
            histories.setdefault(f"λ={c['lam']:g}", []).append(c["history"])
    shown = [ln for ln in ax_o.get_lines() if ln.get_label() in histories]
    assert shown
    c_lines = {ln.get_label(): ln for ln in ax_c.get_lines() if ln.get_linestyle() == "-"}  # c1 is solid
    for ln in shown:
        (h,) = [h for h in histories[ln.get_label()] if np.allclose(ln.get_ydata(), [r["objective"] for r in h])]
        np.testing.assert_allclose(ln.get_xdata(), [r["iteration"] for r in h])
        np.testing.assert_allclose(c_lines[ln.get_label()].get_ydata(), [r["c1"] for r in h])


def test_denoise_full(tmp_path, drawn):
    cells = make_denoise_run(tmp_path)
    paths = denoise_figures(tmp_path, cells)
    _check(paths, ["heatmap.png", "examples.png", "convergence.png"])
    assert all(p.parent == tmp_path for p in paths)
    # the heatmap's cells: AE error minus RDA error per (lambda, k), lambdas up, k across
    ae = {c["k"]: c["error"] for c in cells if c["kind"] == "ae"}
    expect = np.array([[ae[k] - next(c["error"] for c in cells if c["kind"] == "rda" and c["k"] == k
                                     and c["lam"] == lam) for k in KS] for lam in LAMS])
    (image,) = drawn["heatmap.png"].axes[0].get_images()
    np.testing.assert_allclose(np.ma.filled(image.get_array(), np.nan), expect)
    ax = drawn["heatmap.png"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(k) for k in KS]
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{lam:g}" for lam in LAMS]
    _assert_convergence_shows(drawn["convergence.png"], [c for c in cells if c["kind"] == "rda"])


def test_outlier_full(tmp_path, drawn):
    cells = make_outlier_run(tmp_path)
    paths = outlier_figures(tmp_path, cells)
    _check(paths, ["f1_vs_lambda.png", "iforest.png", "s_tiles.png", "convergence.png"])
    rda = sorted((c for c in cells if c["kind"] == "rda"), key=lambda c: c["lam"])
    ax = drawn["f1_vs_lambda.png"].axes[0]
    for label, key in (("precision", "precision"), ("recall", "recall"), ("F1", "f1")):
        x, y = _line(ax, label)
        np.testing.assert_allclose(x, [c["lam"] for c in rda])
        np.testing.assert_allclose(y, [c[key] for c in rda])
    best = max(rda, key=lambda c: c["f1"])
    np.testing.assert_allclose(np.ravel(_line(ax, "best F1")), [best["lam"], best["f1"]])
    ae_line = [ln for ln in ax.get_lines() if ln.get_label().startswith("plain AE best F1")]
    assert len(ae_line) == 1 and np.allclose(ae_line[0].get_ydata(), 0.41)
    forest = next(c for c in cells if c["kind"] == "iforest")
    ax = drawn["iforest.png"].axes[0]
    for label, key in (("precision", "precision"), ("recall", "recall"), ("F1", "f1")):
        x, y = _line(ax, label)
        np.testing.assert_allclose(x, forest["fractions"])
        np.testing.assert_allclose(y, forest[key])
    # s_tiles: X first (tile i = row i as a 28 x 28 image), then S of up to 4 lambdas, smallest first
    fig = drawn["s_tiles.png"]
    panels = [a for a in fig.axes if a.get_visible() and a.get_images() and a.get_title()]
    assert [a.get_title().split("\n")[0] for a in panels[1:]] == [
        f"S, λ={c['lam']:g}  ({int(np.any(np.load(tmp_path / 'cells' / (c['id'] + '.npz'))['S'] != 0, axis=1).sum())}"
        " non-zero rows)" for c in (rda[0], rda[2], rda[5], rda[7])]
    with np.load(tmp_path / "cells" / f"{rda[0]['id']}.npz") as z:
        X, S = z["X"], z["S"]
    mosaic_x = panels[0].get_images()[0].get_array()
    np.testing.assert_allclose(mosaic_x[1:29, 1:29], X[0].reshape(28, 28))
    np.testing.assert_allclose(panels[1].get_images()[0].get_array()[1:29, 30:58], S[1].reshape(28, 28))
    _assert_convergence_shows(drawn["convergence.png"], rda)


def test_denoise_without_npz_or_history(tmp_path):
    cells = make_denoise_run(tmp_path, with_npz=False)
    for c in cells:
        c.pop("history", None)
    paths = denoise_figures(tmp_path, cells)
    assert [p.name for p in paths] == ["heatmap.png"]


def test_outlier_without_npz_or_history(tmp_path):
    cells = make_outlier_run(tmp_path, with_npz=False)
    for c in cells:
        c.pop("history", None)
    paths = outlier_figures(tmp_path, cells)
    assert sorted(p.name for p in paths) == ["f1_vs_lambda.png", "iforest.png"]


def test_only_ae_cell(tmp_path):
    cells = [c for c in make_denoise_run(tmp_path) if c["kind"] == "ae"][:1]
    assert denoise_figures(tmp_path, cells) == []
    assert outlier_figures(tmp_path, [{"id": "ae", "kind": "ae", "f1": 0.3}]) == []


def test_partial_and_messy_cells(tmp_path):
    cells = make_denoise_run(tmp_path)
    # an unfinished run: errors missing, a corrupt npz, histories absent or truncated
    for c in cells[1::4]:
        c["error"] = None
    (tmp_path / "cells" / "rda_k150_lam0.0005.npz").write_bytes(b"not an npz")
    for c in cells[1::2]:
        c.pop("history", None)
    cells[2]["history"] = [{"iteration": 1, "objective": None}]
    paths = denoise_figures(tmp_path, cells)
    assert {p.name for p in paths} <= {"heatmap.png", "examples.png", "convergence.png"}
    assert "heatmap.png" in {p.name for p in paths}


def test_outlier_partial(tmp_path):
    cells = make_outlier_run(tmp_path)
    rda = [c for c in cells if c["kind"] == "rda"][:2]
    rda[0].pop("precision")
    paths = outlier_figures(tmp_path, rda)
    assert sorted(p.name for p in paths) == ["convergence.png", "f1_vs_lambda.png", "s_tiles.png"]


@pytest.mark.parametrize("fn", [denoise_figures, outlier_figures])
def test_empty(tmp_path, fn):
    assert fn(tmp_path, []) == []
    assert list(tmp_path.iterdir()) == []


def test_a_cell_npz_is_read_only_for_the_named_members(tmp_path, monkeypatch):
    """`rda plot` inflates only the members a figure names, each after its declared size is checked: an
    extra member (here one declaring 8 TB) is never read; a named member over the cap: the figure goes
    without it."""
    import io
    import zipfile

    from rda_cli.experiments.figures import _shared

    cell = _write(tmp_path, {"id": "c1", "kind": "rda"}, {"S": np.ones((3, 784)), "X": np.zeros((3, 784))})
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(tmp_path / "cells" / "c1.npz", "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("extra.npy", header.getvalue() + b"\0" * 64)
    z = _shared._load_npz(tmp_path, cell, ["S"], ["X", "is_outlier"])
    assert sorted(z) == ["S", "X"] and z["S"].shape == (3, 784)
    assert _shared._load_npz(tmp_path, cell, ["extra"]) is None
    monkeypatch.setattr(_shared, "FIGURE_ARRAY_MAX_BYTES", 3 * 784 * 8 - 1)
    assert _shared._load_npz(tmp_path, cell, ["S"]) is None


def test_a_cell_npz_is_read_only_for_the_arrays_figures_draw(tmp_path):
    """Issue 27 item 9: ``rda plot`` decompresses only the arrays it draws; another member of a cell's
    ``.npz`` (here one whose header declares 8 TB, deflated) is never inflated, and a bomb in a drawn
    array makes the cell unreadable (skipped), not a MemoryError."""
    import io
    import zipfile

    from rda_cli.experiments.figures._shared import _load_npz

    def npy(a=None, shape=None):
        buf = io.BytesIO()
        if a is not None:
            np.save(buf, a)
        else:
            np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
            buf.write(b"\0" * 64)
        return buf.getvalue()

    (tmp_path / "cells").mkdir()
    S = np.arange(6.0).reshape(2, 3)
    with zipfile.ZipFile(tmp_path / "cells" / "c.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("S.npy", npy(S))
        z.writestr("junk.npy", npy(shape=(10 ** 12,)))
    z = _load_npz(tmp_path, {"id": "c"}, ["S"])
    assert set(z) == {"S"} and np.array_equal(z["S"], S)
    with zipfile.ZipFile(tmp_path / "cells" / "d.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("S.npy", npy(shape=(10 ** 12,)))
    assert _load_npz(tmp_path, {"id": "d"}, ["S"]) is None
