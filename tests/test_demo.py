"""``make demo`` end to end, at a size that fits the test suite."""

import json

from rxf_fairseq import demo


def test_demo_runs_standard_r3f_r4f_side_by_side(tmp_path, capsys):
    demo.main(["--output", str(tmp_path / "demo"), "--pretrain-updates", "20", "--finetune-updates", "10"])
    printed = capsys.readouterr().out
    for method in ("| standard |", "| R3F |", "| R4F |"):
        assert method in printed
    results = json.load(open(tmp_path / "demo" / "results.json"))["results"]
    assert [r["method"] for r in results] == ["standard", "R3F", "R4F"]
    assert results[0]["symm_kl"] is None and results[1]["symm_kl"] > 0 and results[2]["symm_kl"] > 0
    assert all(0 <= r["best_valid_accuracy"] <= 100 for r in results)
    assert "majority-class baseline" in printed
