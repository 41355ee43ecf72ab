"""Write results/reference/qam_2601.14234_domain_curves.csv from the QAM authors' released data.

    python tools/extract_qam_domain_series.py QAM_CHECKOUT/exp_data/qam-exp-data.pkl

The QAM repository (github.com/ColinQiyangLi/qam, exp_data/) releases, besides the per-task
series already in ``qam_2601.14234_curves.csv``, a series per domain (and ``all``) for every
method: 12 seeds, each the mean over the domain's five tasks of the runs *the authors grouped
as one seed*. That grouping is not seed i of every task (issue 30, item 3): the per-seed spread
of a domain mean is only the authors' when it is read from these series. The values are copied
unchanged; the layout is the per-task file's (``domain`` in place of ``task``): offline
evaluations at 50K..1M steps, online at 1.05M..1.5M (RLPD: online only).
"""

from __future__ import annotations

import csv
import pickle
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "results" / "reference" / "qam_2601.14234_domain_curves.csv"


def main(pickle_path: str) -> None:
    with open(pickle_path, "rb") as f:
        data = pickle.load(f)  # the authors' released file: {(task|domain|'all', METHOD): array (evaluations, seeds)}
    rows = []
    for (key, method), values in sorted(data.items()):
        if "singletask" in key:
            continue  # per task: already in qam_2601.14234_curves.csv
        evaluations, seeds = values.shape
        first = 1_000_000 if evaluations == 10 else 0  # RLPD's 10 evaluations are the online phase's
        for i in range(evaluations):
            step = first + 50_000 * (i + 1)
            rows.append({"domain": key, "method": method, "phase": "offline" if step <= 1_000_000 else "online",
                         "step": step, "n_seeds": seeds, **{f"seed{s}": repr(float(values[i, s])) for s in range(seeds)}})
    with open(OUT, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {OUT}: {len(rows)} rows")


if __name__ == "__main__":
    main(sys.argv[1])
