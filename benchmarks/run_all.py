"""`make bench`: every CPU benchmark, one after the other (each saves its JSON under benchmarks/out/).

Needs the digits artifact for the serving cells (`make demo` builds it); uses wrk for the HTTP load when it
is installed (`apt-get install wrk`), else an async Python client. Takes about 15 minutes on 2 cores.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "artifacts" / "digits"


def main() -> None:
    """Run the benchmarks in turn; stop at the first that fails."""
    runs = [
        ["benchmarks.bench_stage2", "--repeats", "3"],
        ["benchmarks.bench_export", "--repeats", "10"],
        ["benchmarks.bench_eval", "--images", "4", "--repeats", "1"],
        ["benchmarks.bench_oip", "--arch", "wrn-34-10", "--seconds", "20"],
        ["benchmarks.bench_sigterm", "--requests", "400", "--after", "0.2"],
    ]
    if (DIGITS / "manifest.json").is_file():
        runs += [["benchmarks.bench_oip", "--artifact", str(DIGITS), "--workers", str(w)] for w in (1, 2)]
    for args in runs:
        print("$ python -m " + " ".join(args), flush=True)
        subprocess.run([sys.executable, "-m", *args], cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
