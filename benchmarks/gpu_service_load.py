"""POST /predict with batches of 1, 64 and 256 CIFAR-shaped images per request, per mode: images/s."""

from __future__ import annotations

import json
import sys
import time

import httpx
import numpy as np

from dhat_serve.contract import MODES


def main() -> None:
    url = sys.argv[1]
    out = {}
    with httpx.Client(timeout=300) as client:
        for mode in MODES:
            for batch in (1, 64, 256):
                body = json.dumps(
                    {"inputs": np.random.default_rng(0).random((batch, 3, 32, 32)).round(4).tolist(), "mode": mode}
                )
                headers = {"content-type": "application/json"}
                client.post(f"{url}/predict", content=body, headers=headers).raise_for_status()
                n, start = 0, time.perf_counter()
                while time.perf_counter() - start < 3:
                    client.post(f"{url}/predict", content=body, headers=headers).raise_for_status()
                    n += batch
                out[f"{mode}_b{batch}"] = round(n / (time.perf_counter() - start), 1)
    print("SERVICE " + json.dumps(out))


if __name__ == "__main__":
    main()
