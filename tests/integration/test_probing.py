"""The linear probe: frozen encoder (bit-identical), no encoder dropout, only one linear layer trains."""

import os

import pytest
import torch

from rxf.probing import LinearProbeHead
from tests.helpers import TINY_ROBERTA, build, built_once, classification_args, fairseq_cli


@pytest.fixture(scope="session")
def finetuned_r4f(toy_data, pretrained_roberta, tmp_path_factory):
    """An R4F model (spectral-norm head) fine-tuned from the pretrained one: what the probes below read, once per
    test run."""

    def finetune(folder):
        extra = ["--max-update", "4", "--save-dir", str(folder), "--no-epoch-checkpoints"]
        task = "sentence_prediction_r4f"
        fairseq_cli("train", classification_args(toy_data["cls"], extra, task=task, restore=pretrained_roberta))

    return str(built_once(tmp_path_factory, "probing-r4f", finetune) / "checkpoint_last.pt")


def probe_args(data, restore, save_dir, extra=()):
    options = ["--lr", "1e-2", "--weight-decay", "0.01", "--max-update", "6", "--save-dir", save_dir]
    options += ["--no-epoch-checkpoints", "--seed", "2", "--dropout", "0.3", "--attention-dropout", "0.3"]
    return classification_args(
        data, [*options, *extra], task="sentence_prediction_probe", criterion="sentence_prediction", restore=restore
    )


def encoder_state(path):
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    return {k: v for k, v in state.items() if not k.startswith("classification_heads.")}, {
        k: v for k, v in state.items() if k.startswith("classification_heads.")
    }


def test_probe_freezes_the_encoder_bit_for_bit_and_trains_one_linear_layer(toy_data, finetuned_r4f, tmp_path):
    source = finetuned_r4f  # an R4F model (spectral-norm head)
    fairseq_cli("train", probe_args(toy_data["cls"], source, str(tmp_path / "probe")))
    before, old_head = encoder_state(source)
    after, new_head = encoder_state(str(tmp_path / "probe" / "checkpoint_last.pt"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "the frozen encoder changed"
    # the fine-tuned MLP head is gone; the probe is one linear layer, and it moved
    assert set(new_head) == {
        "classification_heads.sentence_classification_head.out_proj.weight",
        "classification_heads.sentence_classification_head.out_proj.bias",
        "classification_heads.sentence_classification_head.dense.weight",
    }
    assert new_head["classification_heads.sentence_classification_head.dense.weight"].numel() == 0
    # the probe's checkpoint loads back (resume): two more updates move only the probe
    fairseq_cli(
        "train",
        probe_args(
            toy_data["cls"],
            str(tmp_path / "probe" / "checkpoint_last.pt"),
            str(tmp_path / "probe"),
            ["--max-update", "8"],
        ),
    )
    resumed, resumed_head = encoder_state(str(tmp_path / "probe" / "checkpoint_last.pt"))
    assert all(torch.equal(before[k], resumed[k]) for k in before)
    weight = "classification_heads.sentence_classification_head.out_proj.weight"
    assert not torch.equal(new_head[weight], resumed_head[weight])


def test_probe_model_has_no_trainable_encoder_and_no_dropout(toy_data):
    task, model, criterion, cfg = build(probe_args(toy_data["cls"], "none", "unused"))
    head = model.classification_heads["sentence_classification_head"]
    assert isinstance(head, LinearProbeHead)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [
        "classification_heads.sentence_classification_head.out_proj.weight",
        "classification_heads.sentence_classification_head.out_proj.bias",
    ]
    dropouts = [m for m in model.encoder.modules() if hasattr(m, "p") and isinstance(m.p, float)]
    assert dropouts and all(m.p == 0.0 for m in dropouts)  # --dropout 0.3 asked for, removed in the encoder
    # so in train mode the encoder is deterministic
    model.train()
    tokens = torch.tensor([[0, 5, 6, 7, 2]])
    first = model(tokens, features_only=True)[0]
    assert torch.equal(first, model(tokens, features_only=True)[0])
    logits = model(tokens, classification_head_name="sentence_classification_head")[0]
    assert logits.shape == (1, 2)


def test_the_cached_probe_is_the_layer_fairseqs_own_validation_scores_the_same(toy_data, finetuned_r4f, tmp_path):
    """python -m rxf_repro.probe_features: the features it caches are those the probe's head reads (the accuracy
    it logs is what fairseq's criterion computes through the model with the fitted layer as its head), and the
    encoder it probes is the fine-tuned checkpoint's, frozen."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from rxf_repro import probe_features

    source = finetuned_r4f
    argv = probe_args(toy_data["cls"], source, str(tmp_path / "unused"))
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
    accuracy, model = probe_features.main(cfg)
    before, _ = encoder_state(source)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items() if k in before)
    task, _, criterion, _ = build(argv)
    task.load_dataset("valid")
    itr = task.get_batch_iterator(task.dataset("valid"), max_sentences=7, seed=1).next_epoch_itr(shuffle=False)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for sample in itr:
            _, _, logging_output = criterion(model, sample)
            correct += int(logging_output["ncorrect"])
            total += int(logging_output["nsentences"])
    # the same examples right: two paths (cached features, batches of 7 here) whose last bits may differ by machine,
    # so one near-tie may fall the other way
    assert total == 96 and accuracy == pytest.approx(100.0 * correct / total, abs=100.0 / total + 1e-9)
    assert 50 < accuracy <= 100  # the toy task's sentiment word is in the features


def test_the_degradation_protocol_end_to_end(toy_data, pretrained_roberta, tmp_path):
    """run_scripts/probe.sh on tiny data: every fine-tuning and probing step of a protocol runs, one record per probe,
    each probe reading the checkpoint of the step before it. The order of every protocol's steps (Figures 3, 4 and 5)
    is its plan's, checked in tests/unit/test_protocols.py."""
    import shutil
    import subprocess

    from rxf_repro.records import read_records
    from tests.helpers import REPO

    glue_bin = tmp_path / "glue-bin"
    for task in ("SST-2", "RTE"):
        shutil.copytree(toy_data["cls"], glue_bin / f"{task}-bin")
    env = dict(
        os.environ, CPU="1", GLUE_BIN=str(glue_bin), ROBERTA=pretrained_roberta, SAVE_ROOT=str(tmp_path / "runs")
    )
    tiny = [
        "--tiny",
        "--set",
        "optimization.max_update=3",
        "--set",
        "lr_scheduler.warmup_updates=1",
        "--set",
        "lr_scheduler.total_num_update=3",
        "--set",
        "optimization.lr=[0.001]",
        "--",
        *TINY_ROBERTA,
        "--batch-size",
        "16",
        "--no-last-checkpoints",
    ]
    # the paper's chain has four tasks; two keep the test short (the order logic is the plan's)
    args = ["degradation", "r4f", "1", "--chain", "SST-2", "RTE", *tiny]
    proc = subprocess.run(
        ["bash", os.path.join(REPO, "run_scripts", "probe.sh"), *args], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    found = [dict(r.to_dict(), path=r.path) for r in read_records([str(tmp_path / "runs")])]
    probes = [r for r in found if r["kind"] == "probe"]
    assert all(r["method"] == "r4f" and r["tiny"] for r in found)
    assert [r["kind"] for r in found] == ["probe", "probe"]  # the chain's fine-tunes are steps (finetune.json)
    assert sorted((r["probe"]["step"], r["task"], r["probe"]["finetuned_on"]) for r in probes) == [
        (0, "SST-2", "SST-2"),
        (1, "SST-2", "RTE"),
    ]
    # each probe read the checkpoint of the step before it
    assert all(
        r["probed_checkpoint"].endswith(f"step{r['probe']['step']}-{r['probe']['finetuned_on']}/checkpoint_best.pt")
        for r in probes
    )
    assert all(0 <= r["metrics"]["accuracy"] <= 100 for r in probes)
    # the aggregator turns them into the table and plot of Figure 4
    from rxf_repro import report

    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    for name in ("probing_degradation.md", "figure4_degradation.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0, name
    assert "tiny runs (tests, make demo)" in (tmp_path / "report" / "probing_degradation.md").read_text()


def test_probe_dry_run_settings_and_method_options(tmp_path):
    """The method's options (--set criterion.*, --sweep) reach the fine-tuning steps only; each setting has its own
    folder, and the probes record the setting of the encoder they probed; probes keep no checkpoint."""
    from tests.helpers import flag, rxf_run_dry

    base = [
        "probe",
        "degradation",
        "r3f",
        "--data",
        "/glue-bin",
        "--checkpoint",
        "/m.pt",
        "--seeds",
        "1",
        "--save-root",
        str(tmp_path),
        "--chain",
        "SST-2",
        "RTE",
    ]
    commands = rxf_run_dry(
        *base,
        "--set",
        "criterion.r3f_lambda=0.5",
        "--set",
        "optimization.lr=[2e-05]",
        "--set",
        "optimization.max_update=30",
        "--probe-set",
        "dataset.batch_size=4",
        "--probe-set",
        "optimization.lr=[0.01]",
    )
    tasks = [flag(c, "--task") for c in commands]
    assert tasks == ["sentence_prediction", "sentence_prediction_probe"] * 2
    for command, task in zip(commands, tasks):
        assert flag(command, "--max-update") == "30"  # --set: fine-tuning and probes
        if task == "sentence_prediction_probe":  # --probe-set wins over --set for the probes
            assert "--r3f-lambda" not in command and flag(command, "--criterion") == "sentence_prediction"
            assert (
                "--no-save" in command and flag(command, "--batch-size") == "4" and float(flag(command, "--lr")) == 0.01
            )
        else:
            assert float(flag(command, "--r3f-lambda")) == 0.5 and flag(command, "--batch-size") != "4"
            assert float(flag(command, "--lr")) == 2e-05
        assert "/probing/degradation/r3f/noise_type=uniform,r3f_lambda=0.5/seed1/" in flag(command, "--save-dir")
    swept = rxf_run_dry(*base, "--sweep")
    finetunes = [c for c in swept if flag(c, "--task") == "sentence_prediction"]
    assert (
        len(finetunes) == 2 * 8
        and len({os.path.dirname(os.path.dirname(flag(c, "--save-dir"))) for c in finetunes}) == 8
    )


def test_method_none_probes_the_pretrained_model_itself(tmp_path):
    from tests.helpers import flag, rxf_run_dry, rxf_run_error

    commands = rxf_run_dry(
        "probe",
        "generalisation",
        "none",
        "--data",
        "/glue-bin",
        "--checkpoint",
        "/m.pt",
        "--seeds",
        "1",
        "--save-root",
        str(tmp_path),
    )
    assert [c[3] for c in commands] == [
        f"/glue-bin/{t}-bin" for t in ("SST-2", "MNLI", "QNLI", "QQP", "RTE", "MRPC", "CoLA")
    ]
    assert all(
        flag(c, "--task") == "sentence_prediction_probe" and flag(c, "--restore-file") == "/m.pt" for c in commands
    )
    assert flag(commands[0], "--save-dir") == str(tmp_path / "probing/generalisation/none/default/seed1/probe-SST-2")
    for args in (("degradation", "none"), ("generalisation", "none", "--sweep")):
        code, err = rxf_run_error("probe", *args, "--data", "/g", "--checkpoint", "/m.pt", "--dry-run")
        assert code == 1 and "method none" in err, err
