"""What a run's record says of its best checkpoint (a ``RunSpec``'s ``evaluate``): GLUE and probes the metrics of
the best validation; XNLI fairseq-validate on the test languages; summarisation fairseq-generate with the dataset's
decoding settings, then ROUGE (rxf-rouge, references first, as files2rouge)."""

import contextlib
import io
import os
import shlex
from typing import Any, Dict, List, Sequence, Tuple

from rxf_repro import attempts, records
from rxf_repro.cli import UserError
from rxf_repro.commands import EVAL_BATCHES, USER_DIR, generate_flags
from rxf_repro.execution import Executor, Trained, fairseq_tool
from rxf_repro.outputs import write_file_atomically


def validation_metrics(executor: Executor, trained: Trained) -> Dict[str, Any]:
    """A GLUE run or a probe: the metrics of its best validation (no further pass); MNLI's mismatched accuracy from
    the ``valid1`` line that fairseq logged with it (same attempt, same update)."""
    best = trained.best
    metrics = {m: float(best.record[f"valid_{m}"]) for m in records.GLUE_METRICS if f"valid_{m}" in best.record}
    mismatched = [
        r
        for r in attempts.json_log(trained.attempts[best.attempt].lines, "valid1")
        if r.get("valid1_num_updates") == best.record.get("valid_num_updates")
    ]
    if mismatched and "valid1_accuracy" in mismatched[-1]:  # MNLI: valid1 = dev_mismatched
        metrics["accuracy_mm"] = float(mismatched[-1]["valid1_accuracy"])
    return dict(metrics=metrics)


def xnli_test(cfg: Dict[str, Any], run_dir: str, languages: Sequence[str], device: List[str]) -> List[str]:
    """fairseq-validate of the run's best checkpoint on ``test_LANG`` for each language."""
    # fmt: off
    return fairseq_tool("validate") + [
        cfg["task"]["data"], "--user-dir", USER_DIR, "--path", os.path.join(run_dir, "checkpoint_best.pt"),
        "--task", cfg["task"]["_name"], "--criterion", cfg["criterion"]["_name"],
        "--num-classes", str(cfg["task"]["num_classes"]),
        "--valid-subset", ",".join(f"test_{lang}" for lang in languages),
        "--batch-size", str(cfg["dataset"].get("batch_size", 8)), "--log-format", "json", *EVAL_BATCHES, *device,
    ]
    # fmt: on


def test_languages(test: List[str], languages: Sequence[str], executor: Executor, trained: Trained) -> Dict[str, Any]:
    """XNLI's evaluation: the accuracy per test language (``xnli_test``), and the best validation's."""
    tested = executor.execute(test, trained.run_dir, "test.log")
    metrics = {}
    for lang in languages:
        found = [r for r in attempts.json_log(tested.lines, f"test_{lang}") if f"test_{lang}_accuracy" in r]
        if not found:
            raise UserError(f"fairseq-validate printed no accuracy for test_{lang}: {trained.run_dir}/test.log")
        metrics[lang] = float(found[-1][f"test_{lang}_accuracy"])
    return dict(metrics=metrics, valid_accuracy=float(trained.best.record["valid_accuracy"]))


def generate(cfg: Dict[str, Any], run_dir: str, subset: str, batch_size: int, bpe: Sequence[str], device: List[str]):
    """fairseq-generate of the run's best checkpoint on ``subset`` with the config's ``generation:`` settings,
    decoding with GPT-2's BPE (``bpe``: encoder.json and vocab.bpe)."""
    task = cfg["task"]
    # fmt: off
    return fairseq_tool("generate") + [
        task["data"], "--user-dir", USER_DIR, "--path", os.path.join(run_dir, "checkpoint_best.pt"),
        "--task", "translation", "--source-lang", task["source_lang"], "--target-lang", task["target_lang"],
        "--gen-subset", subset, *generate_flags(cfg), "--batch-size", str(batch_size), *EVAL_BATCHES,
        "--bpe", "gpt2", "--gpt2-encoder-json", bpe[0], "--gpt2-vocab-bpe", bpe[1],
    ] + (["--truncate-source"] if task.get("truncate_source") else []) + device
    # fmt: on


def rouge_command(reference: str, hypo: str, backend: str) -> List[str]:
    """rxf-rouge as ``rouge_scores`` runs it: references first, as files2rouge; PTB-tokenised, as BART's recipe."""
    return ["rxf-rouge", reference, hypo, "--ptb-tokenize", "--backend", backend, "-q"]


def summarise_and_score(
    generate: List[str], ref: str, score: List[str], executor: Executor, trained: Trained
) -> Dict[str, Any]:
    """Summarisation's evaluation: ``generate`` writes the hypotheses (and ``ref``, the decoded targets), then
    rxf-rouge as ``score`` (``rouge_command``) scores them; both commands go in the record."""
    generated = executor.execute(generate, trained.run_dir, "generate.log")
    write_generations(generated.lines, score[2], ref)
    return dict(
        metrics=rouge_scores(score),
        valid_loss=float(trained.best.record["valid_loss"]),
        generate=generate[2:],
        rouge=score,
    )


def write_generations(lines: Sequence[Tuple[float, str]], hypo_path: str, ref_path: str) -> None:
    """fairseq-generate's ``D-`` (detokenised hypothesis) and ``T-`` (target) lines, in input order."""
    hypos: Dict[int, str] = {}
    refs: Dict[int, str] = {}
    for _, line in lines:
        if line.startswith("D-"):
            key, _, text = line.split("\t", 2)
            hypos[int(key[2:])] = text
        elif line.startswith("T-"):
            key, text = line.split("\t", 1)
            refs[int(key[2:])] = text
    if not hypos or sorted(hypos) != sorted(refs):
        raise UserError(f"fairseq-generate gave {len(hypos)} hypotheses for {len(refs)} references")
    for path, texts in ((hypo_path, hypos), (ref_path, refs)):
        write_file_atomically(path, "".join(" ".join(texts[i].split()) + "\n" for i in sorted(texts)))


def rouge_scores(command: List[str]) -> Dict[str, float]:
    """ROUGE-1/2/L F x 100 from rxf-rouge's ``command`` (``rouge_command``), run in this process."""
    from rxf_repro import rouge

    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        code = rouge.main(command[1:])  # its own error, if any, on stderr
    if code != 0:
        raise UserError(f"{shlex.join(command)} failed (exit {code})")
    scores = rouge.parse_report(report.getvalue())
    return {
        name: round(100 * scores[f"ROUGE-{n}"]["F"][0], 3)
        for name, n in (("rouge1", 1), ("rouge2", 2), ("rougeL", "L"))
    }
