"""Print a Markdown table: our IForest, KNN and ECOD test AUROC beside ADBench's published ones.

Usage: python scripts/benchmark_published.py RUN_DIR   (a finished ``rda benchmark`` run folder)

The published values are the means over ADBench's three seeds (the rows ``(set, 0.0, 1..3)``) of
the result file ``result/AUCROC_DB_test_Tabular_None_None_unsupervise.csv`` in the ADBench
repository (Minqi824/ADBench, commit 6a9c8b0): the unsupervised setting, a stratified 70/30
split, scores of the 30% test rows, PyOD's default settings. That file covers 16 of our 29 sets
(some under their DAMI names, e.g. Pima_withoutdupl_35); the three seed values are copied here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

# set: {detector: three seeds' test AUROC}, from the ADBench result file named above
PUBLISHED = {
    "breastw": {"iforest": (0.9790, 0.9855, 0.9883), "ecod": (0.9898, 0.9939, 0.9914), "knn": (0.9663, 0.9769, 0.9672)},
    "cardio": {"iforest": (0.9428, 0.9404, 0.9446), "ecod": (0.9463, 0.9501, 0.9101), "knn": (0.7815, 0.7446, 0.7732)},
    "glass": {"iforest": (0.7628, 0.7355, 0.7734), "ecod": (0.6443, 0.6116, 0.7190), "knn": (0.7087, 0.8799, 0.8802)},
    "Hepatitis": {"iforest": (0.6990, 0.6574, 0.7040), "ecod": (0.7175, 0.7745, 0.7645),
                  "knn": (0.4438, 0.5928, 0.5463)},
    "InternetAds": {"iforest": (0.6892, 0.6754, 0.6833), "ecod": (0.6304, 0.6916, 0.6914),
                    "knn": (0.6761, 0.7062, 0.7173)},
    "Ionosphere": {"iforest": (0.8566, 0.8260, 0.8419), "ecod": (0.7472, 0.7064, 0.7409),
                   "knn": (0.9294, 0.8274, 0.8909)},
    "letter": {"iforest": (0.6450, 0.6001, 0.6164), "ecod": (0.5832, 0.5513, 0.5469), "knn": (0.8564, 0.8406, 0.8886)},
    "Lymphography": {"iforest": (0.9962, 1.0, 1.0), "ecod": (0.9904, 0.9972, 0.9981), "knn": (0.4685, 0.4413, 0.7674)},
    "Pima": {"iforest": (0.7569, 0.7337, 0.6821), "ecod": (0.6534, 0.6364, 0.6017), "knn": (0.7521, 0.7392, 0.7116)},
    "Stamps": {"iforest": (0.9304, 0.9048, 0.9295), "ecod": (0.9073, 0.8620, 0.8667), "knn": (0.7442, 0.7036, 0.6105)},
    "vertebral": {"iforest": (0.4114, 0.3365, 0.3823), "ecod": (0.4051, 0.3655, 0.4493),
                  "knn": (0.3705, 0.2363, 0.4069)},
    "vowels": {"iforest": (0.7686, 0.7803, 0.8052), "ecod": (0.6188, 0.6196, 0.6288), "knn": (0.9742, 0.9803, 0.9633)},
    "WBC": {"iforest": (0.9938, 0.9950, 0.9770), "ecod": (0.9903, 0.9945, 0.9885), "knn": (0.8874, 0.9273, 0.9007)},
    "wine": {"iforest": (0.7228, 0.8524, 0.7786), "ecod": (0.7672, 0.8057, 0.7437), "knn": (0.5010, 0.3876, 0.4606)},
    "WPBC": {"iforest": (0.4524, 0.4226, 0.5100), "ecod": (0.4989, 0.4049, 0.4956), "knn": (0.3969, 0.4265, 0.5744)},
    "yeast": {"iforest": (0.3843, 0.3562, 0.4169), "ecod": (0.4208, 0.4209, 0.4716), "knn": (0.3689, 0.3793, 0.4238)},
}
DETECTORS = ("iforest", "knn", "ecod")
NAMES = {"iforest": "IForest", "knn": "KNN", "ecod": "ECOD"}


def table(summary):
    """The Markdown lines: per set, ours (mean over our seeds) / published (mean of three), and the means."""
    lines = ["| data set | " + " | ".join(f"{NAMES[d]} ours / ADBench" for d in DETECTORS) + " |",
             "|---|" + "---|" * len(DETECTORS)]
    diffs = {d: [] for d in DETECTORS}
    for name, pub in PUBLISHED.items():
        rec = summary["sets"].get(name)
        if rec is None:
            continue
        cells = []
        for d in DETECTORS:
            ours = rec["detectors"].get(d, {}).get("auroc", {}).get("mean")
            theirs = float(np.mean(pub[d]))
            if ours is None:
                cells.append(f"— / {theirs:.3f}")
                continue
            diffs[d].append(ours - theirs)
            cells.append(f"{ours:.3f} / {theirs:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| mean difference (ours − ADBench) | " + " | ".join(
        f"{np.mean(diffs[d]):+.3f} over {len(diffs[d])} sets" if diffs[d] else "—" for d in DETECTORS) + " |")
    # ADBench's generator bootstraps sets under 1,000 rows up to 1,000 before splitting: split the means
    small = [name in summary["sets"] and summary["sets"][name]["n_rows"] < 1000
             for name in PUBLISHED if name in summary["sets"]]
    for label, want in (("under 1,000 rows", True), ("1,000 rows or more", False)):
        cells = []
        for d in DETECTORS:
            vals = [v for v, s in zip(diffs[d], small) if s == want]
            cells.append(f"{np.mean(vals):+.3f} over {len(vals)} sets" if vals else "—")
        lines.append(f"| … on sets {label} | " + " | ".join(cells) + " |")
    return lines


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    summary = json.loads((Path(argv[1]) / "summary.json").read_text())
    print("\n".join(table(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
