#!/usr/bin/env python
"""Check the paper's claims on a CI-scale run; write a claims table; exit 1 if any claim fails.

Usage: python scripts/check_claims.py [RESULTS_DIR]
(default: results/ci, holding outliers/, denoise/ and, if present, features/)
"""

import sys
from pathlib import Path

from rda_cli.experiments.claims import check_claims, claims_table


def main(argv):
    root = Path(argv[1]) if len(argv) > 1 else Path("results/ci")
    features = root / "features"
    claims = check_claims(root / "outliers", root / "denoise", features_dir=features if features.exists() else None)
    table = claims_table(claims)
    (root / "claims.md").write_text(table)
    print(table)
    failed = [c for c in claims if not c.passed]
    print(f"{len(claims) - len(failed)} of {len(claims)} claims hold; table written to {root / 'claims.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
