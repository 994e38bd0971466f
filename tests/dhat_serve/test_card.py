"""The robustness card: bound to the artifact's graphs, refused when it is not, shown on every surface."""

from __future__ import annotations

import json
import re
import shutil
from contextlib import closing

import grpc
import httpx
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc
from typer.testing import CliRunner

from dhat_serve.card import CARD_FILE, CARD_SCHEMA, NOT_EVALUATED, load_card, seal
from dhat_serve.cli import app
from dhat_serve.local_server import serving
from dhat_serve.manifest import ArtifactError, Manifest, load_manifest
from dhat_serve.oip.grpc_service import CARD_METADATA

ACCURACY = {"main": (0.91, 0.42), "second": (0.93, 0.31), "merged": (0.92, 0.47)}  # clean, pgd20 (hand-made)


def hand_card(manifest: Manifest) -> dict:
    """A sealed card of ``manifest``'s graphs, numbers made up (the card's format is under test, not a model)."""
    modes = {}
    for mode, (clean, pgd) in ACCURACY.items():
        modes[mode] = {
            "attacks": [
                {"attack": "clean", "accuracy": clean, "ci95": [clean - 0.05, clean + 0.03], "n": 100},
                {"attack": "pgd20", "accuracy": pgd, "ci95": [pgd - 0.1, pgd + 0.1], "n": 100, "steps": 20},
            ],
            "worst_case": {"accuracy": pgd - 0.02, "ci95": [pgd - 0.12, pgd + 0.08], "n": 100},
        }
    return seal(
        {
            "schema": CARD_SCHEMA,
            "graphs": {m: g.sha256 for m, g in manifest.modes.items()},
            "eps": 0.1,
            "data": {"dataset": "digits", "n": 100, "split": "test", "labels_sha256": "ab" * 32},
            "report": {"sha256": "cd" * 32, "attacks": ["clean", "pgd20"]},
            "date": "2026-12-06T00:00:00+00:00",
            "modes": modes,
        }
    )


@pytest.fixture(scope="module")
def carded(tmp_path_factory, symmetric_artifact):
    copy = tmp_path_factory.mktemp("carded") / "artifact"
    shutil.copytree(symmetric_artifact[1], copy)
    (copy / CARD_FILE).write_text(json.dumps(hand_card(load_manifest(copy)), indent=2))
    return copy


def test_a_card_of_these_graphs_loads_and_an_artifact_without_one_is_not_evaluated(carded, symmetric_artifact):
    _, plain = symmetric_artifact
    assert load_card(plain, load_manifest(plain)) is None
    card = load_card(carded, load_manifest(carded))
    assert card.of("main")["attacks"][1]["accuracy"] == 0.42
    assert card.of("all")["worst_case"]["accuracy"] == pytest.approx(0.45)  # merged's, the heads beside it
    assert card.of("all")["heads"]["main_logits"]["attacks"][0]["accuracy"] == 0.91
    assert card.brief("second") == {
        "evaluated": True,
        "eps": 0.1,
        "n": 100,
        "accuracy": {"clean": 0.93, "pgd20": 0.31},
        "worst_case": pytest.approx(0.29),
        "report_sha256": "cd" * 32,
    }
    assert ("merged", "worst-case", pytest.approx(0.45)) in card.gauges()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["modes"]["merged"]["attacks"][1].update(accuracy=0.99), "digest does not match"),
        (lambda d: seal({**d, "graphs": {**d["graphs"], "second": "00" * 32}}), "measured other graphs than"),
        (lambda d: seal({**d, "graphs": {}}), "main, second, merged: sha256 differs"),
        (lambda d: {"schema": "other"}, "not a robustness card"),
        (lambda d: seal({**d, "graphs": "main"}), "not a robustness card"),  # sealed, but a field mistyped
        (lambda d: seal({**d, "modes": {"main": {"worst_case": None}}}), "not a robustness card"),
        (lambda d: seal({k: v for k, v in d.items() if k != "eps"}), "not a robustness card"),
    ],
)
def test_an_edited_or_foreign_card_is_refused_naming_the_file_and_the_fix(tmp_path, carded, edit, message):
    copy = tmp_path / "artifact"
    shutil.copytree(carded, copy)
    doc = json.loads((copy / CARD_FILE).read_text())
    doc = edit(doc) or doc
    (copy / CARD_FILE).write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=message) as info:
        load_card(copy, load_manifest(copy))
    assert CARD_FILE in str(info.value) and "--card" in str(info.value)
    for command in (["info", str(copy)], ["serve", str(copy)]):  # refused before BentoML starts
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and CARD_FILE in result.output, result.output


def test_info_prints_the_card_or_says_not_evaluated(carded, symmetric_artifact):
    result = CliRunner().invoke(app, ["info", str(carded)], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "robustness card" in result.output and "42.00 %" in result.output
    assert "worst-case" in result.output
    plain = CliRunner().invoke(app, ["info", str(symmetric_artifact[1]), "--json"])
    assert json.loads(plain.output)["card"] == NOT_EVALUATED


@pytest.fixture(scope="module")
def server(tmp_path_factory, carded):
    with serving(carded, tmp_path_factory.mktemp("cardlog") / "server.log", grpc=True, DHAT_PROVIDER="cpu") as srv:
        yield srv


def test_every_surface_shows_the_mode_card_and_stock_clients_still_parse(server):
    info = httpx.get(f"{server.url}/info", timeout=10).json()["robustness"]
    assert info["evaluated"] and info["report"]["sha256"] == "cd" * 32
    assert info["modes"]["second"]["attacks"][1]["accuracy"] == 0.31
    with closing(thttp.InferenceServerClient(server.url.removeprefix("http://"))) as client:
        meta = client.get_model_metadata("main")
        assert meta["outputs"][0]["name"] == "logits"
        assert meta["parameters"]["robustness"]["worst_case"]["accuracy"] == pytest.approx(0.40)
        config = client.get_model_config("merged")
        assert json.loads(config["parameters"]["robustness"]["string_value"])["accuracy"]["pgd20"] == 0.47
    with closing(tgrpc.InferenceServerClient(server.grpc_url)) as client:
        assert client.get_model_metadata("merged").outputs[0].name == "logits"  # the stock client parses it
        config = client.get_model_config("main").config
        assert json.loads(config.parameters["robustness"].string_value)["accuracy"]["clean"] == 0.91
    with grpc.insecure_channel(server.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        _, call = stub.ModelMetadata.with_call(pb.ModelMetadataRequest(name="all"))
        brief = json.loads(dict(call.trailing_metadata())[CARD_METADATA])
        assert brief["accuracy"] == {"clean": 0.92, "pgd20": 0.47} and brief["n"] == 100
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    gauges = {
        tuple(re.findall(r'(?:attack|mode)="([^"]+)"', line)): float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("dhat_robust_accuracy{")  # each worker's own series (a pid label)
    }
    assert gauges[("pgd20", "second")] == 0.31 and gauges[("worst-case", "merged")] == pytest.approx(0.45)
    assert len(gauges) == 9  # 3 modes x (clean, pgd20, worst case)
