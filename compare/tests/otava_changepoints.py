"""Apache Otava's change points for the series in a JSON file (tests/otava_agreement.rs).

Input:  {"window_len": 50, "max_pvalue": 0.001, "min_magnitude": 0.0, "series": [[x, ...], ...]}
Output (stdout): {"otava_version": "...", "results": [[{"index", "pvalue", "mean_before",
"mean_after"}, ...], ...]}, one list per series, in order.
"""

import json
import sys
from importlib.metadata import version

from otava.analysis import compute_change_points


def main() -> None:
    with open(sys.argv[1]) as f:
        job = json.load(f)
    results = []
    for series in job["series"]:
        # A list, as Otava's own callers pass: compute_change_points slices it per window.
        cps, _ = compute_change_points(
            [float(x) for x in series],
            window_len=job["window_len"],
            max_pvalue=job["max_pvalue"],
            min_magnitude=job["min_magnitude"],
        )
        results.append(
            [
                {
                    "index": int(cp.index),
                    "pvalue": float(cp.stats.pvalue),
                    "mean_before": float(cp.stats.mean_1),
                    "mean_after": float(cp.stats.mean_2),
                }
                for cp in cps
            ]
        )
    json.dump({"otava_version": version("apache-otava"), "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
