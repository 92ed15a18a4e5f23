"""examples/hf_glue.py: a GLUE-layout TSV fine-tuned through transformers' Trainer with R4F and SMART on the real
MiniLM, run as a user runs it; bad input is one line naming the file, exit 1, nothing written."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("transformers")

from tests.helpers import MINILM, REPO  # noqa: E402

SCRIPT = os.path.join(REPO, "examples", "hf_glue.py")


def write_sst2(folder, rows=24):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["sentence\tlabel"]
    for i in range(rows):
        lines += [f"a dog runs past house {i}\t1", f"the cat sleeps in room {i}\t0"]
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def run_example(tmp_path, *extra, train=True):
    argv = [
        sys.executable,
        SCRIPT,
        "--model_name_or_path",
        MINILM,
        "--task_name",
        "sst2",  # run_glue.py's spelling of SST-2
        "--output_dir",
        str(tmp_path / "out"),
        *(["--do_train"] if train else []),
        "--do_eval",
        "--max_steps",
        "4",
        "--per_device_train_batch_size",
        "8",
        "--learning_rate",
        "1e-4",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--use_cpu",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))


def test_r4f_fine_tunes_saves_and_reloads_with_the_same_predictions(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rxf.hf import load_r4f

    proc = run_example(tmp_path, "--data_dir", str(write_sst2(tmp_path / "SST-2")), "--method", "r4f")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    results = json.load(open(out / "eval_results.json"))
    assert results["eval_samples"] == 48 and 0 <= results["eval_accuracy"] <= 1 and "eval_mcc" in results
    history = json.load(open(out / "trainer_state.json"))["log_history"]
    assert sum("symm_kl" in entry for entry in history) == 4  # one logged term per update
    model = load_r4f(AutoModelForSequenceClassification, str(out)).eval()
    assert model.config.rxf_r4f_layers == ["classifier", "bert.pooler.dense"]
    inputs = AutoTokenizer.from_pretrained(str(out))(["a dog runs past house 3"], return_tensors="pt")
    with torch.no_grad():
        again = load_r4f(AutoModelForSequenceClassification, str(out)).eval()
        assert torch.equal(model(**inputs).logits, again(**inputs).logits)
    # evaluation only, of the saved model: its R4F head and its label ids, the same accuracy
    argv = ["--model_name_or_path", str(out), "--output_dir", str(tmp_path / "eval")]
    proc = run_example(tmp_path, "--data_dir", str(tmp_path / "SST-2"), "--method", "std", *argv, train=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.load(open(tmp_path / "eval" / "eval_results.json"))
    assert again["eval_accuracy"] == results["eval_accuracy"]
    assert again["eval_loss"] == pytest.approx(results["eval_loss"], rel=1e-5)


def test_sts_b_is_regression_with_the_squared_change(tmp_path):
    data = tmp_path / "STS-B"
    data.mkdir()
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    rows = [header] + [
        f"{i}\tmain\tf\t2012\t{i}\ts\ts\ta man plays a guitar {i}\ta man plays music {i}\t{i % 6 * 0.9:.1f}"
        for i in range(16)
    ]
    for name in ("train.tsv", "dev.tsv"):
        (data / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    proc = run_example(tmp_path, "--data_dir", str(data), "--method", "r3f", "--task_name", "STS-B")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.load(open(tmp_path / "out" / "eval_results.json"))
    assert -1 <= results["eval_pearson"] <= 1
    history = json.load(open(tmp_path / "out" / "trainer_state.json"))["log_history"]
    assert all(entry["noise_sq_err"] >= 0 for entry in history if "loss" in entry)


def test_smart_runs_with_its_options_from_the_command_line(tmp_path):
    data = write_sst2(tmp_path / "SST-2", rows=8)
    proc = run_example(
        tmp_path, "--data_dir", str(data), "--method", "smart", "--smart_steps", "2", "--smart_mu", "0.5"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.load(open(tmp_path / "out" / "trainer_state.json"))["log_history"]
    bregman = [entry["smart_bregman"] for entry in history if "smart_bregman" in entry]
    # the teacher starts at theta_0 (only dropout, which its pass has not, separates them) and lags more and more
    assert len(bregman) == 4 and bregman == sorted(bregman) and bregman[-1] > 10 * bregman[0]


def test_a_bad_row_is_one_line_naming_the_file_and_nothing_is_written(tmp_path):
    data = write_sst2(tmp_path / "SST-2", rows=2)
    (data / "train.tsv").write_text("sentence\tlabel\na fine sentence\t7\n", encoding="utf-8")
    proc = run_example(tmp_path, "--data_dir", str(data), "--method", "r3f")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"hf_glue.py: {data / 'train.tsv'}:2: label '7'")
    assert not (tmp_path / "out").exists()
    proc = run_example(tmp_path, "--data_dir", str(data), "--method", "r5f")
    assert (
        proc.returncode == 1 and "--method 'r5f': expected one of std, r3f, r4f, fast-r3f, smart, rdrop" in proc.stderr
    )


# ------------------------------------------------------------------------------ a tiny BERT, run in this process

WORDS = "a dog runs past house the cat sleeps in room is not an animal it rains today".split()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """tests.helpers.tiny_bert (32 positions) saved with a WordPiece tokenizer of the test sentences' words."""
    from transformers import BertTokenizerFast

    from tests.helpers import tiny_bert

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    tiny_bert().bert.save_pretrained(str(folder))  # an encoder without a head, as MiniLM's folder is
    tokenizer.save_pretrained(str(folder))
    return folder


def hf_glue(tmp_path, model, *extra, train=True, out="out"):
    """examples/hf_glue.py's main(ARGV) in this process (tests.helpers.call_main): 2 updates of the tiny BERT on
    SST-2 unless EXTRA says otherwise."""
    import importlib.util

    from tests.helpers import call_main

    spec = importlib.util.spec_from_file_location("hf_glue_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--model_name_or_path", str(model), "--output_dir", str(tmp_path / out), "--use_cpu", "true"]
    argv += ["--task_name", "SST-2"] if "--task_name" not in extra else []
    argv += ["--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no"]
    argv += ["--per_device_train_batch_size", "4", *(["--do_train"] if train else [])]
    if not any(a in extra for a in ("--max_steps", "--num_train_epochs")):
        argv += ["--max_steps", "2"]
    return call_main(module.main, [*argv, *map(str, extra)], "hf_glue.py")


def one_line_error(proc, *fragments, out=None):
    """Exit 1, the last line of stderr names the fragments, one line (no traceback), nothing written."""
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("hf_glue.py: ") and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in last, last
    if out is not None:
        assert not out.exists()
    return last


def write_tsv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(["\t".join(header)] + ["\t".join(map(str, r)) for r in rows]) + "\n", encoding="utf-8")
    return path


def rte(folder, rows):
    header = ("index", "sentence1", "sentence2", "label")
    labels = ("entailment", "not_entailment")
    data = [(i, "a dog runs", "a dog is an animal", labels[i % 2]) for i in range(rows)]
    for name in ("train", "dev", "test"):
        write_tsv(
            folder / f"{name}.tsv",
            header if name != "test" else header[:3],
            [r[:3] if name == "test" else r for r in data],
        )
    return folder


def history(out):
    return json.load(open(out / "trainer_state.json"))["log_history"]


def test_the_label_set_is_the_tasks_not_the_training_rows(tmp_path, tiny_model):
    from transformers import AutoConfig

    data = write_sst2(tmp_path / "SST-2", rows=4)
    write_tsv(data / "train.tsv", ("sentence", "label"), [("a dog runs", 1)] * 8)  # one class only
    proc = hf_glue(tmp_path, tiny_model, "--data_dir", data, "--do_eval", "--logging_steps", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = AutoConfig.from_pretrained(str(tmp_path / "out"))
    assert (config.num_labels, config.problem_type) == (2, "single_label_classification")
    assert config.id2label == {0: "0", 1: "1"}
    assert all("symm_kl" in e and "noise_sq_err" not in e for e in history(tmp_path / "out") if "loss" in e)
    # one training row of RTE: the dev file's other label is the task's, not an unseen one
    rte(tmp_path / "RTE", 6)
    proc = hf_glue(
        tmp_path,
        tiny_model,
        "--task_name",
        "RTE",
        "--data_dir",
        tmp_path / "RTE",
        "--do_eval",
        "--max_train_samples",
        "1",
        out="rte",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.load(open(tmp_path / "rte" / "eval_results.json"))["eval_samples"] == 6
    # a head that names the task's labels otherwise (roberta-large-mnli's upper case, its own order) keeps its ids
    config_file = tmp_path / "rte" / "config.json"
    saved = json.load(open(config_file))
    saved.update(id2label={"0": "NOT_ENTAILMENT", "1": "ENTAILMENT"}, label2id={"NOT_ENTAILMENT": 0, "ENTAILMENT": 1})
    config_file.write_text(json.dumps(saved))
    rte_eval = ["--task_name", "RTE", "--data_dir", tmp_path / "RTE", "--do_eval"]
    proc = hf_glue(tmp_path, tmp_path / "rte", *rte_eval, out="upper")  # trained on: the saved model shows its ids
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr[-3000:]
    assert AutoConfig.from_pretrained(str(tmp_path / "upper")).id2label == {0: "not_entailment", 1: "entailment"}
    saved.update(id2label={"0": "LABEL_0", "1": "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1})
    config_file.write_text(json.dumps(saved))  # names that say nothing: a warning, the task's order
    proc = hf_glue(tmp_path, tmp_path / "rte", *rte_eval, train=False, out="generic")
    assert proc.returncode == 0 and "head names its labels ['LABEL_0', 'LABEL_1'], not RTE's" in proc.stderr


def test_a_custom_task_states_its_labels(tmp_path, tiny_model):
    from transformers import AutoConfig

    rows = [("it rains", "wet"), ("a dog runs", "dry"), ("the cat sleeps", "cold")] * 3
    for name in ("train", "dev"):
        write_tsv(tmp_path / "W" / f"{name}.tsv", ("id", "sentence", "label"), [(i, *r) for i, r in enumerate(rows)])
    common = ["--task_name", "weather", "--data_dir", tmp_path / "W", "--do_eval"]
    proc = hf_glue(tmp_path, tiny_model, *common, "--labels", "dry,wet,cold")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert AutoConfig.from_pretrained(str(tmp_path / "out")).id2label == {0: "dry", 1: "wet", 2: "cold"}
    one_line_error(
        hf_glue(tmp_path, tiny_model, *common, out="o2"), "--task_name 'weather'", "--labels", out=tmp_path / "o2"
    )
    last = one_line_error(hf_glue(tmp_path, tiny_model, *common, "--labels", "dry,wet", out="o3"), out=tmp_path / "o3")
    assert last.startswith(f"hf_glue.py: {tmp_path / 'W' / 'train.tsv'}:4: label 'cold' is not one of ['dry', 'wet']")
    data = write_sst2(tmp_path / "SST-2", rows=2)
    one_line_error(
        hf_glue(tmp_path, tiny_model, "--task_name", "SST-2", "--data_dir", data, "--labels", "0,1", out="o4"),
        "--labels: SST-2 has labels 0, 1, fixed by the task",
        out=tmp_path / "o4",
    )
    # --regression: the label column is any number
    numbers = [(i, "a dog runs", -3.5 * i) for i in range(8)]
    for name in ("train", "dev"):
        write_tsv(tmp_path / "R" / f"{name}.tsv", ("id", "sentence", "label"), numbers)
    proc = hf_glue(
        tmp_path, tiny_model, "--task_name", "depth", "--data_dir", tmp_path / "R", "--regression", "--do_eval", out="r"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert AutoConfig.from_pretrained(str(tmp_path / "r")).problem_type == "regression"
    assert "eval_pearson" in json.load(open(tmp_path / "r" / "eval_results.json"))


def test_max_seq_length_is_checked_and_capped_at_the_models(tmp_path, tiny_model):
    data = write_sst2(tmp_path / "SST-2", rows=4)
    proc = hf_glue(
        tmp_path, tiny_model, "--data_dir", data, "--max_seq_length", "100000", "--pad_to_max_length", "true"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"hf_glue.py: --max_seq_length 100000 capped at 32, the most {tiny_model} takes" in proc.stderr
    for value, fragment in (
        ("0", "expected a positive"),
        ("-5", "expected a positive"),
        ("2", "SST-2's examples need at least 3 tokens"),
    ):
        out = tmp_path / f"o{value}"
        one_line_error(
            hf_glue(tmp_path, tiny_model, "--data_dir", data, "--max_seq_length", value, out=out.name),
            f"--max_seq_length {value}: {fragment}",
            out=out,
        )
    proc = hf_glue(tmp_path, tiny_model, "--data_dir", data, "--max_seq_length", "3", out="o3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    one_line_error(
        hf_glue(
            tmp_path,
            tiny_model,
            "--task_name",
            "RTE",
            "--data_dir",
            rte(tmp_path / "RTE", 4),
            "--max_seq_length",
            "4",
            out="o4",
        ),
        "--max_seq_length 4: RTE's examples need at least 5 tokens",
        out=tmp_path / "o4",
    )


def test_a_head_with_another_label_count_needs_ignore_mismatched_sizes(tmp_path, tiny_model):
    data = rte(tmp_path / "RTE", 4)
    from rxf_repro.data.glue import MNLI_TRAIN

    header = (*MNLI_TRAIN, "label1", "gold_label")
    labels = ("entailment", "neutral", "contradiction")
    write_tsv(
        tmp_path / "mnli.tsv",
        header,
        [(i, 0, 0, "g", "x", "x", "x", "x", "a dog", "a cat", "y", labels[i % 3]) for i in range(6)],
    )
    # trained with R4F: a new head (--ignore_mismatched_sizes) must not take the old head's power-iteration vectors
    mnli = ["--task_name", "MNLI", "--train_file", tmp_path / "mnli.tsv", "--method", "r4f"]
    proc = hf_glue(tmp_path, tiny_model, *mnli, out="mnli")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rte_args = ["--task_name", "RTE", "--data_dir", data, "--do_eval"]
    one_line_error(
        hf_glue(tmp_path, tmp_path / "mnli", *rte_args, out="o1"),
        "its head has 3 labels, RTE has 2: add --ignore_mismatched_sizes",
        out=tmp_path / "o1",
    )
    proc = hf_glue(tmp_path, tmp_path / "mnli", *rte_args, "--ignore_mismatched_sizes", "true", out="o2")
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_evaluation_only_with_r4f_on_a_model_trained_without_it_is_refused(tmp_path, tiny_model):
    data = write_sst2(tmp_path / "SST-2", rows=2)
    one_line_error(
        hf_glue(tmp_path, tiny_model, "--data_dir", data, "--do_eval", "--method", "r4f", train=False),
        "--method r4f without --do_train",
        "leave --method out",
        out=tmp_path / "out",
    )
    proc = hf_glue(tmp_path, tiny_model, "--data_dir", data, "--do_eval", "--method", "r4f", out="r4f")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = hf_glue(
        tmp_path, tmp_path / "r4f", "--data_dir", data, "--do_eval", "--method", "r4f", train=False, out="again"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]  # a model saved with R4F is evaluated as saved
    first, again = (json.load(open(tmp_path / n / "eval_results.json")) for n in ("r4f", "again"))
    assert again["eval_loss"] == pytest.approx(first["eval_loss"], rel=1e-5)


def test_the_default_logging_steps_show_the_term(tmp_path, tiny_model):
    data = write_sst2(tmp_path / "SST-2", rows=8)
    proc = hf_glue(tmp_path, tiny_model, "--data_dir", data, "--max_steps", "10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sum("symm_kl" in e for e in history(tmp_path / "out")) >= 1


def test_the_readme_example_runs_on_an_unpadded_tokenized_list(tmp_path, tiny_model, monkeypatch):
    import re

    from transformers import AutoTokenizer

    (code,) = re.findall(r"^```python\n(.*?)^```", open(os.path.join(REPO, "README.md")).read(), re.S | re.M)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    texts = ["a dog runs", "the cat sleeps in room", "it rains", "a dog is not an animal it rains today"] * 2
    train = [dict(tokenizer(t), labels=i % 2) for i, t in enumerate(texts)]  # lengths differ: not padded
    monkeypatch.chdir(tmp_path)
    scope = {"MODEL": str(tiny_model), "train": train}
    exec(compile(code, "README.md", "exec"), scope)
    assert any("symm_kl" in entry for entry in scope["trainer"].state.log_history)  # logging_steps=1


def test_fp16_and_bf16_on_the_cpu_are_one_line(tmp_path, tiny_model):
    import torch

    data = write_sst2(tmp_path / "SST-2", rows=2)
    one_line_error(
        hf_glue(tmp_path, tiny_model, "--data_dir", data, "--fp16", "true"),
        "--fp16: this run is on the CPU",
        out=tmp_path / "out",
    )
    if not torch.cuda.is_available():
        import importlib.util

        from tests.helpers import call_main

        spec = importlib.util.spec_from_file_location("hf_glue_example", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        argv = ["--model_name_or_path", tiny_model, "--task_name", "SST-2", "--data_dir", data, "--do_train"]
        proc = call_main(module.main, [*argv, "--output_dir", tmp_path / "b", "--bf16", "true"], "hf_glue.py")
        one_line_error(proc, "--bf16: no GPU here", "--use_cpu", out=tmp_path / "b")
        both = [*argv, "--output_dir", tmp_path / "c", "--bf16", "true", "--fp16", "true", "--use_cpu", "true"]
        one_line_error(call_main(module.main, both, "hf_glue.py"), "--fp16 and --bf16: give one", out=tmp_path / "c")


def test_the_small_things(tmp_path, tiny_model):
    data = write_sst2(tmp_path / "SST-2", rows=4)
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(
        hf_glue(tmp_path, empty, "--data_dir", data),
        f"--model_name_or_path {empty}: not a model folder",
        out=tmp_path / "out",
    )
    for value in ("0", "-5"):
        one_line_error(
            hf_glue(tmp_path, tiny_model, "--data_dir", data, "--max_train_samples", value),
            f"--max_train_samples {value}: expected a positive",
            out=tmp_path / "out",
        )
    # blank lines are skipped, a trailing one too; a row with the wrong columns after them is still an error
    text = (data / "train.tsv").read_text(encoding="utf-8")
    (data / "train.tsv").write_text(text + "\n\n", encoding="utf-8")
    proc = hf_glue(tmp_path, tiny_model, "--data_dir", data, "--do_eval", "--max_train_samples", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (data / "train.tsv").write_text(text + "\n\nonly\tthree\tfields\n", encoding="utf-8")
    lines = len(text.splitlines())
    one_line_error(
        hf_glue(tmp_path, tiny_model, "--data_dir", data, out="o2"),
        f"{data / 'train.tsv'}:{lines + 3}: 3 tab-separated fields, expected 2",
        out=tmp_path / "o2",
    )
    # --do_predict: test.tsv's predictions, label names, beside the evaluation
    write_tsv(data / "test.tsv", ("index", "sentence"), [(0, "a dog runs"), (1, "the cat sleeps")])
    (data / "train.tsv").write_text(text, encoding="utf-8")
    proc = hf_glue(tmp_path, tiny_model, "--data_dir", data, "--do_eval", "--do_predict", out="p")
    assert proc.returncode == 0, proc.stderr[-3000:]
    predicted = (tmp_path / "p" / "predict_results.txt").read_text().splitlines()
    assert predicted[0] == "index\tprediction" and len(predicted) == 3
    assert all(line.split("\t")[1] in ("0", "1") for line in predicted[1:])
    assert (tmp_path / "p" / "eval_results.json").exists()


def test_rdrop_runs_with_its_alpha_from_the_command_line(tmp_path, tiny_model):
    """--method rdrop --rdrop-alpha A: RDropTrainer, its term logged per update (> 0 with the model's dropout on,
    exactly 0 without: the same pass twice); a bad alpha is one line naming rdrop_alpha, nothing written."""
    import shutil

    data = write_sst2(tmp_path / "SST-2", rows=4)
    dropout = shutil.copytree(tiny_model, tmp_path / "dropout")
    config = json.load(open(dropout / "config.json"))
    config.update(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    (dropout / "config.json").write_text(json.dumps(config))
    rdrop = ["--data_dir", data, "--do_eval", "--logging_steps", "1", "--method", "rdrop", "--rdrop-alpha", "0.5"]
    proc = hf_glue(tmp_path, dropout, *rdrop)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logged = [e for e in history(tmp_path / "out") if "loss" in e]
    assert len(logged) == 2 and all(e["rdrop_kl"] > 0 and e["rdrop_second_loss"] > 0 for e in logged)
    assert "symm_kl" not in logged[0] and "eval_accuracy" in json.load(open(tmp_path / "out" / "eval_results.json"))
    proc = hf_glue(tmp_path, tiny_model, *rdrop, out="plain")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(e["rdrop_kl"] == 0 for e in history(tmp_path / "plain") if "loss" in e)
    one_line_error(
        hf_glue(tmp_path, tiny_model, "--data_dir", data, "--method", "rdrop", "--rdrop_alpha", "-1", out="bad"),
        "rdrop_alpha must be >= 0 and finite, got -1.0",
        out=tmp_path / "bad",
    )
