"""The KServe SDK's own clients against a running ``dhat serve`` with a robustness card and a tiered key (issue 38).

KServe 0.21's ``InferenceRESTClient`` and ``InferenceGRPCClient`` have no model-metadata call (only infer and the
readiness checks): this checks that those calls still work against a carded artifact, that a tiered key is refused
another mode with KServe's own exception, and reads the card from the metadata route with plain HTTP, as a KServe
client would. Run it with the KServe venv ``benchmarks/bench_peers.py`` builds (``kserve`` is not a dependency):

    benchmarks/out/peer-venvs/kserve/bin/python scripts/kserve_sdk_check.py --url 127.0.0.1:3000 --grpc 127.0.0.1:8001 \
        --key KEY --tier-key TIER_KEY
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import httpx
import numpy as np


async def main(url: str, grpc_url: str, key: str, tier_key: str) -> dict:
    """Each client, each key, an allowed and a refused mode; then the card from the metadata route."""
    from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

    x = np.full((2, 1, 16, 16), 0.5, np.float32)
    out: dict = {}
    for name, who in (("full", key), ("tier", tier_key)):
        headers = {"Authorization": f"Bearer {who}"}
        rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        inp = InferInput("images", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=False)
        for mode in ("merged", "main"):
            try:
                res = await rest.infer(f"http://{url}", InferRequest(mode, [inp]), model_name=mode, headers=headers)
                out[f"rest {name} {mode}"] = f"ok {res.outputs[0].shape}"
            except Exception as exc:  # what a KServe user sees (httpx.HTTPStatusError, grpc.RpcError)
                out[f"rest {name} {mode}"] = f"{type(exc).__name__}: {str(exc)[:160]}"
        out[f"rest {name} ready"] = await rest.is_model_ready(f"http://{url}", "merged", headers=headers)
        await rest.close()
        grpc = InferenceGRPCClient(grpc_url, timeout=30)
        ginp = InferInput("images", list(x.shape), "FP32")
        ginp.set_data_from_numpy(x)
        for mode in ("merged", "main"):
            try:
                res = await grpc.infer(InferRequest(mode, [ginp]), headers=(("authorization", f"Bearer {who}"),))
                out[f"grpc {name} {mode}"] = f"ok {res.outputs[0].shape}"
            except Exception as exc:  # what a KServe user sees (httpx.HTTPStatusError, grpc.RpcError)
                out[f"grpc {name} {mode}"] = f"{type(exc).__name__}: {str(exc)[:160]}"
        await grpc.close()
    meta = httpx.get(f"http://{url}/v2/models/merged", headers={"Authorization": f"Bearer {tier_key}"}).json()
    out["metadata card (merged, worst case)"] = meta["parameters"]["robustness"]["worst_case"]["accuracy"]
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="127.0.0.1:3000")
    p.add_argument("--grpc", default="127.0.0.1:8001")
    p.add_argument("--key", required=True)
    p.add_argument("--tier-key", required=True)
    a = p.parse_args()
    sys.argv = sys.argv[:1]  # kserve parses the command line when it is imported
    print(json.dumps(asyncio.run(main(a.url, a.grpc, a.key, a.tier_key)), indent=2))
