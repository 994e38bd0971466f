"""`make demo`: digits from nothing to a served, evaluated dual-head model with a switch, reusing whatever exists.

train (3 stages) -> export (3 ONNX graphs + manifest) -> evaluate on the graphs (clean, PGD-20, and
AutoAttack on a bounded subset) -> serve -> one real request per mode and one bad request -> table.
`--serve-only` builds what is missing and then serves in the foreground (`make serve`).

The recipe is `digits-natural-trades`, Table II's switch design (a naturally trained main head, a TRADES second
head and merger): the closing table shows what a request buys by switching from `main` to a robust mode, in clean
accuracy, robust accuracy and milliseconds. Issue 36: on digits the TRADES heads lose almost no clean accuracy,
so the switch buys robustness and costs latency, not accuracy; `docs/experiments.md` has the Fashion-MNIST frontier.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from dhat_serve.contract import ALL, MAIN, MERGED, MODES
from training.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RECIPE = "digits-natural-trades"
RUN, ARTIFACT, REPORT, REPORT_AA = (
    ROOT / p for p in (f"runs/{RECIPE}", f"artifacts/{RECIPE}", f"reports/{RECIPE}", f"reports/{RECIPE}-aa")
)


def step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def dhat(*args: str) -> None:
    cmd = [str(BIN / "dhat"), *args]
    print("$ dhat " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def build(aa_n: int) -> None:
    step(f"1/4 train {RECIPE}: a natural main head, a TRADES second head and merger (reused if complete)")
    run = RunDir(RUN)
    if run.stage_complete(3):
        print(f"complete run found in {RUN}")
    else:
        dhat("train", RECIPE, "--out", str(RUN), *(["--resume"] if run.is_run() else []))
    step("2/4 export main.onnx, second.onnx, merged.onnx + manifest (parity-checked)")
    if (ARTIFACT / "manifest.json").is_file():
        print(f"artifact found in {ARTIFACT}")
    else:
        dhat("export", str(RUN), "--out", str(ARTIFACT))
    step(f"3/4 evaluate the graphs: clean + PGD-20 on the 270 test images, AutoAttack on merged's first {aa_n}")
    if not (REPORT / "report.json").is_file():
        # no accuracy-vs-eps curve: its five extra PGD-20 runs per mode took 66 of this step's 89 s here
        dhat(
            "eval",
            str(ARTIFACT),
            "--run",
            str(RUN),
            "--attacks",
            "clean,pgd20",
            "--n",
            "270",
            "--batch-size",
            "270",
            "--no-curve",
            "--out",
            str(REPORT),
        )
    if not (REPORT_AA / "report.json").is_file():
        # merged only, the mode a robust deployment serves: the standard ensemble costs minutes per mode here
        dhat(
            "eval",
            str(ARTIFACT),
            "--run",
            str(RUN),
            "--attacks",
            "clean,autoattack",
            "--n",
            str(aa_n),
            "--batch-size",
            str(aa_n),
            "--modes",
            MERGED,
            "--no-transfer",
            "--no-curve",
            "--out",
            str(REPORT_AA),
        )
    print(f"reports in {REPORT} and {REPORT_AA}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png_of_test_digit(index: int) -> tuple[bytes, int]:
    from PIL import Image

    from training.datasets.digits import load_digits_splits

    x, y = load_digits_splits(16).test.tensors
    buf = io.BytesIO()
    Image.fromarray((x[index, 0].numpy() * 255).round().astype("uint8")).save(buf, format="PNG")
    return buf.getvalue(), int(y[index])


def serve_and_query() -> dict[str, float]:
    import httpx

    step("4/4 serve the artifact and send one request per mode (and one bad request)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(ROOT / "reports/demo-server.log", "w")
    proc = subprocess.Popen(
        [str(BIN / "dhat"), "serve", str(ARTIFACT), "--port", str(port)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    latency: dict[str, float] = {}
    client = httpx.Client(timeout=30)  # one keep-alive connection, as a real client holds: a fresh one costs ~50 ms
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        png, label = png_of_test_digit(0)
        for mode in (*MODES, ALL):
            times = []
            for _ in range(6):  # the first is a warm-up; the median of the other five is shown
                start = time.perf_counter()
                r = client.post(f"{url}/classify", files={"image": ("d.png", png, "image/png")}, data={"mode": mode})
                times.append(time.perf_counter() - start)
            latency[mode] = 1000 * sorted(times[1:])[2]
            body = r.json()
            shown = body["modes"][MERGED]["label"] if mode == ALL else body.get("label")  # `all` answers per mode
            extra = f", heads agree: {body['heads_agree']}" if mode == ALL else f", confidence {body['confidence']:.3f}"
            print(
                f"POST /classify mode={mode}: HTTP {r.status_code}, label {shown} (true {label}){extra}, "
                f"{latency[mode]:.1f} ms"
            )
        r = client.post(
            f"{url}/classify", files={"image": ("notes.txt", b"not an image", "text/plain")}, data={"mode": MAIN}
        )
        print(f"POST /classify with a text file: HTTP {r.status_code} {r.text}")
        r = client.post(f"{url}/predict", json={"inputs": [[[0.5] * 16] * 16], "mode": MERGED})
        print(f"POST /predict with a (1, 16, 16) tensor: HTTP {r.status_code} {r.text}")
    finally:
        client.close()  # an open keep-alive connection would hold the server's graceful shutdown
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        print("service stopped")
    return latency


def table(latency: dict[str, float], aa_n: int) -> None:
    """Each mode's accuracy (clean, PGD-20, AutoAttack on merged's subset) and cost, then what the switch buys."""
    main = json.loads((REPORT / "report.json").read_text())
    aa = json.loads((REPORT_AA / "report.json").read_text())
    cost = main.get("cost", {}).get("modes", {})
    print(
        f"\n{'mode':<8} {'clean (270)':>12} {'PGD-20 (270)':>13} {f'AutoAttack ({aa_n})':>17} {'ORT b1':>9} {'HTTP':>9}"
    )
    for mode in MODES:
        r, a = main["results"][mode]["attacks"], aa["results"].get(mode)
        robust = f"{100 * a['attacks']['autoattack']['graph']:.2f}%" if a else "-"
        ort_ms = cost.get(mode, {}).get("latency", {}).get("1", {}).get("request_ms", float("nan"))
        print(
            f"{mode:<8} {100 * r['clean']['graph']:>11.2f}% {100 * r['pgd20']['graph']:>12.2f}% "
            f"{robust:>17} {ort_ms:>6.3f} ms {latency.get(mode, float('nan')):>6.1f} ms"
        )
    switch(main)
    print(
        f"(eps = {main['eps']:.3g}, accuracies scored by ONNX Runtime on the exported graphs; ORT b1: one image "
        f"through the graph alone; HTTP: median /classify round trip on a kept-alive connection; 'all' mode "
        f"{latency.get(ALL, float('nan')):.1f} ms)"
    )
    print(f"\nrun dir:   {RUN}  (training_curves.png, metrics.jsonl, stage*/best|last)")
    print(f"artifact:  {ARTIFACT}  (main.onnx, second.onnx, merged.onnx, manifest.json)")
    print(
        f"reports:   {REPORT}/report.md, {REPORT_AA}/report.md  (accuracy vs eps: the same `dhat eval` without "
        "--no-curve writes robustness.png)"
    )


def switch(report: dict) -> None:
    """The step a request takes from ``main`` (the natural head) to ``merged``: points of clean and PGD-20 accuracy,
    and milliseconds of ONNX Runtime at batch 1."""
    r = report["results"]
    clean = 100 * (r[MERGED]["attacks"]["clean"]["graph"] - r[MAIN]["attacks"]["clean"]["graph"])
    robust = 100 * (r[MERGED]["attacks"]["pgd20"]["graph"] - r[MAIN]["attacks"]["pgd20"]["graph"])
    lat = report.get("cost", {}).get("modes", {})
    ms = lat[MERGED]["latency"]["1"]["request_ms"] - lat[MAIN]["latency"]["1"]["request_ms"] if lat else float("nan")
    print(f"switch main -> merged: clean {clean:+.2f} points, PGD-20 {robust:+.2f} points, {ms:+.3f} ms per image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve-only", action="store_true", help="build what is missing, then serve in the foreground")
    parser.add_argument(
        "--aa-n",
        type=int,
        default=10,
        help="test images for AutoAttack on merged (on 2 cores 25 took 168 s, "
        "10 took 139 s: the cost is mostly per iteration, not per image)",
    )
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args()
    (ROOT / "reports").mkdir(exist_ok=True)
    if args.serve_only:
        if not (ARTIFACT / "manifest.json").is_file():
            build(args.aa_n)
        os.execv(str(BIN / "dhat"), [str(BIN / "dhat"), "serve", str(ARTIFACT), "--port", str(args.port)])
    start = time.time()
    build(args.aa_n)
    latency = serve_and_query()
    table(latency, args.aa_n)
    print(f"\ndemo finished in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
