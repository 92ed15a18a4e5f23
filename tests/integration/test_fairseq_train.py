"""fairseq-train / fairseq-generate with ``--user-dir rxf_fairseq``, as users run them."""

import os
import shutil
import socket

import numpy as np
import pytest
import torch

from rxf_repro import execution, process
from tests.helpers import (
    NO_DROPOUT,
    RESET,
    TOY_TRANSLATION,
    USER_DIR,
    classification_args,
    fairseq_cli,
    json_records,
    seq2seq_args,
)

LOG = ["--log-format", "json", "--log-interval", "1"]


def old_format_checkpoint(path: str, dest: str) -> str:
    """The layout of fairseq's released RoBERTa/BART checkpoints: options in ``args`` (a Namespace),
    no ``cfg``, numpy scalars in ``extra_state``."""
    state = torch.load(path, weights_only=False)
    state["args"] = state.pop("cfg")["model"]
    del state["criterion"]  # written only for a criterion with parameters
    state["extra_state"]["val_loss"] = np.float64(state["extra_state"]["val_loss"])
    state["extra_state"]["best"] = np.float32(1.5)
    torch.save(state, dest)
    return dest


def test_roberta_r3f_from_official_checkpoint(toy_data, pretrained_roberta, tmp_path):
    """fairseq's current layout (``cfg``); the released checkpoints' older one (``args``) loads in
    test_smart_and_its_teacher_start_from_an_official_checkpoint."""
    extra = ["--restore-file", pretrained_roberta, *RESET, "--max-update", "4", "--no-save", *LOG]
    # cwd: with --no-save fairseq still makes its --save-dir, ./checkpoints
    out = fairseq_cli("train", classification_args(toy_data["cls"], extra), cwd=str(tmp_path)).stdout
    assert "Loaded checkpoint" in out
    last = json_records(out, "train")[-1]
    assert float(last["train_symm_kl"]) > 0
    assert 0 <= float(last["train_accuracy"]) <= 100 and float(last["train_accuracy"]) > 1  # percent
    assert "valid_accuracy" in json_records(out, "valid")[-1]


def test_smart_and_its_teacher_start_from_an_official_checkpoint(toy_data, pretrained_roberta, tmp_path):
    """A released checkpoint (the older layout: options in ``args``, numpy scalars) has no "criterion" entry, which
    fairseq's trainer reads when the criterion has parameters (SMART's teacher); with --reset-optimizer a
    checkpoint's own teacher is not used either."""
    old = old_format_checkpoint(pretrained_roberta, str(tmp_path / "old.pt"))
    smart = ["--criterion", "sentence_prediction_smart", "--max-update", "3", *LOG]
    out = fairseq_cli(
        "train",
        classification_args(
            toy_data["cls"], [*smart, "--restore-file", old, *RESET, "--save-dir", str(tmp_path / "a")]
        ),
    ).stdout
    assert "Loaded checkpoint" in out
    first = json_records(out, "train_inner")
    assert len(first) == 3 and float(first[-1]["smart_bregman"]) > 0
    again = fairseq_cli(
        "train",
        classification_args(
            toy_data["cls"],
            [
                *smart,
                "--max-update",
                "1",
                "--restore-file",
                str(tmp_path / "a" / "checkpoint_last.pt"),
                *RESET,
                "--save-dir",
                str(tmp_path / "b"),
            ],
        ),
    ).stdout
    assert "the checkpoint's SMART teacher is not used" in again
    # a fresh teacher: one absorption in one update (the checkpoint's, 3 absorbed, would have made it 4)
    assert int(torch.load(str(tmp_path / "b" / "checkpoint_last.pt"))["criterion"]["teacher.absorbed"]) == 1


def test_r4f_spectral_norms_stay_at_most_one_after_training(toy_data, pretrained_roberta, tmp_path):
    args = classification_args(
        toy_data["cls"],
        [
            "--restore-file",
            pretrained_roberta,
            *RESET,
            "--max-update",
            "30",
            "--lr",
            "1e-2",
            "--save-dir",
            str(tmp_path),
            "--no-epoch-checkpoints",
            *LOG,
        ],
    )
    args[args.index("sentence_prediction")] = "sentence_prediction_r4f"
    out = fairseq_cli("train", args).stdout
    assert "R4F: spectrally normalised dense, out_proj" in out
    state = torch.load(str(tmp_path / "checkpoint_last.pt"))  # loads with weights_only (our allow-list)
    prefix = "classification_heads.sentence_classification_head."
    for layer in ("dense", "out_proj"):
        w = state["model"][prefix + layer + ".weight"].double()
        u, v = state["model"][prefix + layer + ".sn_u"].double(), state["model"][prefix + layer + ".sn_v"].double()
        sigma_hat = u @ w @ v
        assert torch.linalg.matrix_norm(w / sigma_hat, ord=2).item() == pytest.approx(1.0, abs=1e-3)
    # the hub interface (Python) loads and predicts with it once rxf_fairseq is imported (as it is here)
    assert hub_prediction_shape(str(tmp_path), toy_data["cls"]) == (1, 2)
    # and fairseq-validate rebuilds the R4F model from its own checkpoint
    fairseq_cli(
        "validate",
        [
            toy_data["cls"],
            "--user-dir",
            USER_DIR,
            "--path",
            str(tmp_path / "checkpoint_last.pt"),
            "--task",
            "sentence_prediction_r4f",
            "--criterion",
            "sentence_prediction_r3f",
            "--num-classes",
            "2",
            "--batch-size",
            "16",
            "--cpu",
            "--valid-subset",
            "valid",
        ],
    )


def hub_prediction_shape(model_dir: str, data: str) -> tuple:
    from fairseq.models.roberta import RobertaModel

    model = RobertaModel.from_pretrained(
        model_dir, "checkpoint_last.pt", data_name_or_path=data, bpe="characters"
    )  # offline: no GPT-2 BPE download
    model.eval()
    words = model.task.source_dictionary.encode_line("not bad at all", append_eos=True, add_if_not_exist=False)
    tokens = torch.tensor([0] + words.tolist(), dtype=torch.long)  # <s> sentence </s>, as --init-token 0
    with torch.no_grad():
        return tuple(model.predict("sentence_classification_head", tokens).shape)


def test_bart_r3f_summarisation_then_generate(toy_data, tmp_path):
    out = fairseq_cli(
        "train",
        seq2seq_args(
            toy_data["s2s"], ["--max-update", "8", "--save-dir", str(tmp_path), "--no-epoch-checkpoints", *LOG]
        ),
    ).stdout
    assert float(json_records(out, "train")[-1]["train_symm_kl"]) > 0
    gen = fairseq_cli(
        "generate",
        [
            toy_data["s2s"],
            "--user-dir",
            USER_DIR,
            "--path",
            str(tmp_path / "checkpoint_last.pt"),
            *TOY_TRANSLATION,
            "--gen-subset",
            "valid",
            "--beam",
            "2",
            "--max-len-b",
            "12",
            "--batch-size",
            "8",
            "--cpu",
        ],
    ).stdout
    hypotheses = [line for line in gen.splitlines() if line.startswith("H-")]
    assert len(hypotheses) == 40


METHOD_FLAGS = {
    "r3f": ["--eps", "1e-2"],
    "r4f": ["--eps", "1e-2", "--task", "sentence_prediction_r4f"],  # power-iteration vectors in the model's state
    "smart": [
        "--criterion",
        "sentence_prediction_smart",
        "--smart-sigma",
        "1e-2",
        "--smart-eps",
        "1e-2",
    ],  # its teacher
}


@pytest.mark.parametrize("method", sorted(METHOD_FLAGS))
def test_resume_after_interruption_equals_uninterrupted_run(toy_data, tmp_path, method):
    """A run killed after its save at update 3 (mid-epoch: 25 batches an epoch) and run again from that checkpoint
    ends bit for bit where the uninterrupted run ends: the uninterrupted run's own save at update 3 is what the
    killed run would have left."""
    common = classification_args(
        toy_data["cls"], ["--restore-file", "checkpoint_last.pt", "--no-epoch-checkpoints", *LOG, *METHOD_FLAGS[method]]
    )
    common += ["--max-update", "6", "--save-interval-updates", "3"]
    fairseq_cli("train", common + ["--save-dir", str(tmp_path / "whole")])
    (tmp_path / "split").mkdir()
    shutil.copy(tmp_path / "whole" / "checkpoint_1_3.pt", tmp_path / "split" / "checkpoint_last.pt")
    resumed = fairseq_cli("train", common + ["--save-dir", str(tmp_path / "split")]).stdout
    assert "Loaded checkpoint" in resumed and "@ 3 updates" in resumed
    whole = torch.load(str(tmp_path / "whole" / "checkpoint_last.pt"))
    split = torch.load(str(tmp_path / "split" / "checkpoint_last.pt"))
    for part in ("model", "criterion"):  # the criterion: SMART's teacher (None for the others)
        if method != "smart" and part == "criterion":
            assert whole[part] is None and split[part] is None
            continue
        assert whole[part].keys() == split[part].keys()
        for key in whole[part]:
            assert torch.equal(whole[part][key], split[part][key]), (part, key)
    if method == "smart":
        assert int(split["criterion"]["teacher.absorbed"]) == 6  # theta_0 and the first 5 updates
    if method == "r4f":
        assert any(key.endswith("sn_u") for key in whole["model"])


def write_malicious_checkpoint(path: str, marker: str) -> None:
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": {}, "args": Payload()}, path)


def test_malicious_checkpoint_is_refused_and_never_runs(toy_data, tmp_path):
    evil, marker = str(tmp_path / "evil.pt"), str(tmp_path / "pwned")
    write_malicious_checkpoint(evil, marker)
    train = fairseq_cli(
        "train",
        classification_args(toy_data["cls"], ["--restore-file", evil, *RESET, "--max-update", "1", "--no-save"]),
        cwd=str(tmp_path),  # fairseq makes ./checkpoints, --no-save or not
        check=False,
    )
    generate = fairseq_cli(
        "generate", [toy_data["s2s"], "--user-dir", USER_DIR, "--path", evil, *TOY_TRANSLATION, "--cpu"], check=False
    )
    for proc in (train, generate):
        assert proc.returncode != 0
        assert "refused to load checkpoint" in proc.stdout and "evil.pt" in proc.stdout
    assert not os.path.exists(marker)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("method", ["r3f", "smart"])
def test_two_cpu_workers_match_one_worker_with_update_freq_2(toy_data, pretrained_roberta, tmp_path, method):
    common = classification_args(
        toy_data["cls"],
        [
            "--restore-file",
            pretrained_roberta,
            *RESET,
            *NO_DROPOUT,
            *({"r3f": [], "smart": ["--criterion", "sentence_prediction_smart"]}[method]),  # their defaults
            "--max-update",
            "4",
            "--batch-size",
            "8",
            "--required-batch-size-multiple",
            "1",
            "--no-epoch-checkpoints",
            "--ddp-backend",
            "legacy_ddp",
            *LOG,
        ],
    )
    single = fairseq_cli("train", common + ["--update-freq", "2", "--save-dir", str(tmp_path / "one")]).stdout

    port = free_port()
    distributed = ["--distributed-world-size", "2", "--distributed-no-spawn", "--distributed-backend", "gloo"]
    distributed += ["--distributed-init-method", f"tcp://127.0.0.1:{port}", "--save-dir", str(tmp_path / "two")]
    execution.preload("fairseq_cli.train")
    with process.children() as workers:  # two forks of this interpreter, as fairseq_cli runs one
        for rank in (0, 1):
            with open(tmp_path / f"rank{rank}.log", "w") as out:
                argv = common + [*distributed, "--distributed-rank", str(rank)]
                workers.append(
                    process.ForkedChild(execution.fairseq_main, ("fairseq_cli.train", argv), output_fd=out.fileno())
                )
        codes = [worker.wait(timeout=150) for worker in workers]
    outputs = [(tmp_path / f"rank{rank}.log").read_text() for rank in (0, 1)]
    assert codes == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    one = torch.load(str(tmp_path / "one" / "checkpoint_last.pt"))
    two = torch.load(str(tmp_path / "two" / "checkpoint_last.pt"))
    for part in ("model", "criterion") if method == "smart" else ("model",):  # SMART: its teacher too
        for key, value in one[part].items():
            torch.testing.assert_close(two[part][key], value, rtol=1e-4, atol=1e-5, msg=key)
    term = "smart_symm_kl" if method == "smart" else "symm_kl"
    for a, b in zip(json_records(single, "train_inner"), json_records(outputs[0], "train_inner"), strict=True):
        assert a["bsz"] == b["bsz"] == "16"
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), abs=2e-3)  # logged with 3 decimals
        # each setup draws its own noise, so the KL agrees in scale, not digit for digit
        assert 0.1 < float(a[term]) / float(b[term]) < 10
        if method == "smart":
            assert float(a["smart_bregman"]) == pytest.approx(float(b["smart_bregman"]), rel=0.1, abs=1e-6)
