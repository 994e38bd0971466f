"""`dhat frontier` on hand-made reports: parsing, the robust axis chosen, the Pareto front, intervals, deployments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dhat_serve.cli import app
from training.robustness.frontier import FrontierError, dominates, pareto
from training.robustness.frontier_report import build_frontier, write_frontier


def cost(modes: list[str], nbytes: int = 1000, machine: str = "test cpu, 2 cores", b1: float = 1.0) -> dict:
    return {
        "machine": machine,
        "provider": "CPUExecutionProvider",
        "artifact_bytes": nbytes * len(modes),
        "modes": {
            m: {
                "parameters": 10 * (i + 1),
                "onnx_bytes": nbytes,
                "latency": {
                    "1": {"request_ms": b1 + i, "per_image_ms": b1 + i},
                    "32": {"request_ms": 3.2, "per_image_ms": 0.1},
                },
            }
            for i, m in enumerate(modes)
        },
    }


def report(
    path: Path,
    recipe: str,
    version: str,
    acc: dict[str, dict[str, float]],
    *,
    dataset: str = "fashion-mnist",
    strong: bool = False,
    n: int = 100,
    with_cost: bool = True,
    machine: str = "test cpu, 2 cores",
    b1: float = 1.0,
) -> Path:
    """A minimal `dhat eval` report: acc = {mode: {attack or 'worst-case': accuracy}}."""
    attacks = sorted({a for row in acc.values() for a in row if a != "worst-case"})
    doc = {
        "artifact": {"name": recipe, "version": version},
        "run": {"recipe": recipe},
        "eps": 0.1,
        "data": {"dataset": dataset, "n": n},
        "attacks": attacks + (["autoattack"] if strong else []),
        "results": {
            m: {
                "attacks": {
                    a: {"graph": v, "graph_ci95": [v - 0.05, v + 0.05]} for a, v in row.items() if a != "worst-case"
                }
            }
            for m, row in acc.items()
        },
        "worst_case": {
            m: {"graph": row["worst-case"], "graph_ci95": [row["worst-case"] - 0.05, row["worst-case"] + 0.05]}
            for m, row in acc.items()
            if "worst-case" in row
        },
    }
    if with_cost:
        doc["cost"] = cost(list(acc), machine=machine, b1=b1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def p(label: str, clean: float, robust: float) -> dict:
    return {"label": label, "clean": clean, "robust": robust}


def test_pareto_front_keeps_only_points_nobody_beats_on_both_axes():
    pts = [p("a", 0.9, 0.1), p("b", 0.8, 0.5), p("c", 0.7, 0.4), p("d", 0.6, 0.6), p("e", 0.9, 0.1)]
    assert pareto(pts) == ["a", "e", "b", "d"]  # c is beaten by b; a and e tie (neither beats the other)
    assert dominates(pts[1], pts[2]) and not dominates(pts[0], pts[4]) and not dominates(pts[0], pts[1])


def test_the_robust_axis_is_the_worst_case_only_when_every_model_has_the_strong_suite(tmp_path):
    dual = {
        "main": {"clean": 0.8, "pgd20": 0.6, "worst-case": 0.55},
        "merged": {"clean": 0.82, "pgd20": 0.62, "worst-case": 0.58},
    }
    report(tmp_path / "a/dual-strong-report.json", "dual", "v1", dual, strong=True)
    report(
        tmp_path / "a/dual-pgd20-report.json",
        "dual",
        "v1",
        {m: {k: v for k, v in r.items() if k != "worst-case"} for m, r in dual.items()},
        n=1000,
    )
    report(tmp_path / "b/single-report.json", "single", "s1", {"main": {"clean": 0.85, "pgd20": 0.5}}, n=1000)
    (panel,) = build_frontier([tmp_path])["panels"]
    assert panel["robust_attack"] == "pgd20"  # `single` has no strong-suite report: the axis both share
    merged = next(q for q in panel["points"] if q["label"] == "dual:merged")
    assert merged["robust"] == 0.62 and merged["n"] == [1000]  # the larger PGD-20 report of that artifact
    (only,) = build_frontier([tmp_path / "a"])["panels"]
    assert only["robust_attack"] == "worst-case"
    assert {q["label"]: q["robust"] for q in only["points"]} == {"dual:main": 0.55, "dual:merged": 0.58}


def test_several_runs_give_a_mean_with_a_t_interval_and_one_run_its_wilson_interval(tmp_path):
    for i, (c, r) in enumerate([(0.80, 0.60), (0.82, 0.64), (0.81, 0.62)]):
        report(tmp_path / f"m-seed{i}-report.json", "m", f"v{i}", {"main": {"clean": c, "pgd20": r}})
    report(tmp_path / "one-report.json", "one", "w", {"main": {"clean": 0.9, "pgd20": 0.1}})
    (panel,) = build_frontier([tmp_path])["panels"]
    pts = {q["label"]: q for q in panel["points"]}
    m = pts["m:main"]
    assert m["runs"] == 3 and m["clean"] == pytest.approx(0.81) and m["robust"] == pytest.approx(0.62)
    assert m["robust_interval"] == "Student t over 3 runs" and m["robust_ci95"][0] < 0.60  # t(2) = 4.30 x SE 0.0115
    assert pts["one:main"]["clean_ci95"] == pytest.approx([0.85, 0.95])
    assert panel["front"] == ["one:main", "m:main"] and not any(q["dominated_by"] for q in panel["points"])


def test_deployments_give_the_switch_and_a_pair_costs_both_models(tmp_path):
    report(
        tmp_path / "dh-report.json",
        "dh",
        "d",
        {"main": {"clean": 0.9, "pgd20": 0.2}, "merged": {"clean": 0.8, "pgd20": 0.6}},
    )
    report(tmp_path / "nat-report.json", "nat", "n", {"main": {"clean": 0.92, "pgd20": 0.0}})
    report(tmp_path / "rob-report.json", "rob", "r", {"main": {"clean": 0.78, "pgd20": 0.62}})
    (panel,) = build_frontier([tmp_path], ("nat+rob",))["panels"]
    deps = {d["name"]: d for d in panel["deployments"]}
    switch = deps["dh"]["switch"]
    assert (switch["from"], switch["to"]) == ("dh:main", "dh:merged")
    assert switch["clean_points"] == pytest.approx(-10) and switch["robust_points"] == pytest.approx(40)
    assert switch["latency_b1_ms"] == pytest.approx(1.0)  # the hand-made merged graph is 1 ms slower
    pair = deps["nat + rob"]
    assert pair["bytes"] == 2000 and deps["dh"]["bytes"] == 2000 and pair["switch"]["to"] == "rob:main"
    assert deps["nat"]["switch"]["from"] == deps["nat"]["switch"]["to"]  # one model: no switch


def test_costs_come_from_the_first_run_and_the_table_names_the_machines(tmp_path):
    """A later seed timed on a faster machine must not replace seed 0's latency (the table would mix machines)."""
    report(tmp_path / "m/m-pgd20-report.json", "m", "a", {"main": {"clean": 0.8, "pgd20": 0.6}}, machine="A", b1=2.0)
    report(tmp_path / "m/m-seed2-pgd20-report.json", "m", "c", {"main": {"clean": 0.8, "pgd20": 0.6}}, machine="B")
    report(tmp_path / "m/m-seed1-strong-report.json", "m", "b", {"main": {"clean": 0.8}}, n=50, machine="B", b1=9.0)
    report(tmp_path / "o/o-pgd20-report.json", "o", "d", {"main": {"clean": 0.9, "pgd20": 0.1}}, machine="B")
    doc = write_frontier([tmp_path / "m", tmp_path / "o"], tmp_path / "out")
    pts = {q["label"]: q for q in doc["panels"][0]["points"]}
    assert (pts["m:main"]["latency_b1_ms"], pts["m:main"]["measured_on"]) == (2.0, "A")
    assert (pts["o:main"]["latency_b1_ms"], pts["o:main"]["measured_on"]) == (1.0, "B")
    assert "timed on A (1 point); B (1 point)." in (tmp_path / "out/frontier.md").read_text()


def test_reports_split_by_data_set_and_old_reports_have_no_cost(tmp_path):
    report(
        tmp_path / "d-report.json",
        "digits",
        "a",
        {"main": {"clean": 0.9, "pgd20": 0.7}},
        dataset="digits",
        with_cost=False,
    )
    report(tmp_path / "f-report.json", "fm", "b", {"main": {"clean": 0.8, "pgd20": 0.6}})
    (tmp_path / "summary-report.json").write_text(json.dumps({"rows": []}))  # not an eval report: skipped
    doc = write_frontier([tmp_path], tmp_path / "out")
    assert [pn["dataset"] for pn in doc["panels"]] == ["digits", "fashion-mnist"]
    assert doc["panels"][0]["points"][0]["parameters"] is None
    md = (tmp_path / "out/frontier.md").read_text()
    assert "| digits:main | 1 | 100 | 90.00 [85.00, 95.00] | 70.00 [65.00, 75.00] | yes | - | - | - | - | - |" in md
    assert (tmp_path / "out/frontier.png").stat().st_size > 5000
    assert json.loads((tmp_path / "out/frontier.json").read_text()) == json.loads(json.dumps(doc))


def test_cli_writes_the_frontier_and_names_what_is_wrong(tmp_path):
    report(tmp_path / "r/a-report.json", "a", "v", {"main": {"clean": 0.8, "pgd20": 0.6}})
    ok = CliRunner().invoke(app, ["frontier", str(tmp_path / "r"), "--out", str(tmp_path / "out")])
    assert ok.exit_code == 0, ok.output
    assert "front: a:main" in ok.output and (tmp_path / "out/frontier.md").exists()
    missing = CliRunner().invoke(app, ["frontier", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
    empty = tmp_path / "empty"
    empty.mkdir()
    none = CliRunner().invoke(app, ["frontier", str(empty), "--out", str(tmp_path / "o3")])
    assert none.exit_code == 2 and "no eval report" in none.output
    pair = CliRunner().invoke(app, ["frontier", str(tmp_path / "r"), "--out", str(tmp_path / "o4"), "--pair", "a+zz"])
    assert pair.exit_code == 2 and "--pair names zz" in pair.output
    bad = CliRunner().invoke(app, ["frontier", str(tmp_path / "r"), "--out", str(tmp_path / "o5"), "--pair", "a"])
    assert bad.exit_code == 2 and "joined by '+'" in bad.output
    with pytest.raises(FrontierError, match="not readable JSON"):
        (tmp_path / "r/broken-report.json").write_text("{")
        build_frontier([tmp_path / "r"])


def test_the_committed_experiments_draw_on_a_fresh_clone(tmp_path):
    # what the README shows: the committed reports alone, no artifact or run
    root = Path(__file__).resolve().parents[3]
    doc = write_frontier([root / "experiments"], tmp_path)
    assert {pn["dataset"] for pn in doc["panels"]} >= {"digits", "fashion-mnist"}
    assert all(pn["front"] for pn in doc["panels"])
