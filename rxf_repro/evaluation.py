"""What a run's record says of its best checkpoint (a ``RunSpec``'s ``evaluate``), with the commands it runs, which
``--dry-run`` shows."""

import contextlib
import io
import os
from typing import Any, Callable, Dict, List, Sequence, Tuple

from rxf_repro import attempts, catalog, records, rouge
from rxf_repro.cli import UserError
from rxf_repro.commands import EVAL_BATCHES, USER_DIR, check_with_fairseq, generate_flags
from rxf_repro.execution import Executor, Trained, fairseq_tool
from rxf_repro.outputs import write_file_atomically


def validation_metrics(executor: Executor, trained: Trained) -> Dict[str, Any]:
    """A GLUE run or a probe: the metrics of its best validation (no further pass); MNLI's mismatched accuracy from
    the ``valid1`` line that fairseq logged with it (same attempt, same update)."""
    best = trained.best
    metrics = {m: float(best.record[f"valid_{m}"]) for m in records.GLUE_METRICS if f"valid_{m}" in best.record}
    update, lines = best.record.get("valid_num_updates"), trained.attempts[best.attempt].lines
    mismatched = [r for r in attempts.json_log(lines, "valid1") if r.get("valid1_num_updates") == update]
    if mismatched and "valid1_accuracy" in mismatched[-1]:  # MNLI: valid1 = dev_mismatched
        metrics["accuracy_mm"] = float(mismatched[-1]["valid1_accuracy"])
    return dict(metrics=metrics)


def device_flags(args: Any) -> List[str]:  # as the training's
    return ["--cpu"] if args.cpu else ["--fp16"] if args.fp16 else []


def xnli(args: Any, cfg: Dict[str, Any], run_dir: str) -> Tuple[Callable, List[List[str]]]:
    """XNLI: fairseq-validate of the best checkpoint on each test language (``--languages``, default all 15)."""
    languages = args.languages or catalog.XNLI_LANGUAGES
    # fmt: off
    test = fairseq_tool("validate") + [
        cfg["task"]["data"], "--user-dir", USER_DIR, "--path", os.path.join(run_dir, "checkpoint_best.pt"),
        "--task", cfg["task"]["_name"], "--criterion", cfg["criterion"]["_name"],
        "--num-classes", str(cfg["task"]["num_classes"]),
        "--valid-subset", ",".join(f"test_{lang}" for lang in languages),
        "--batch-size", str(cfg["dataset"].get("batch_size", 8)), "--log-format", "json", *EVAL_BATCHES,
    ] + device_flags(args)
    # fmt: on

    def evaluate(executor: Executor, trained: Trained) -> Dict[str, Any]:
        tested = executor.execute(test, run_dir, "test.log")
        metrics = {}
        for lang in languages:
            found = [r for r in attempts.json_log(tested.lines, f"test_{lang}") if f"test_{lang}_accuracy" in r]
            if not found:
                raise UserError(f"fairseq-validate printed no accuracy for test_{lang}: {run_dir}/test.log")
            metrics[lang] = float(found[-1][f"test_{lang}_accuracy"])
        return dict(metrics=metrics, valid_accuracy=float(trained.best.record["valid_accuracy"]))

    return evaluate, [test]


def summarization(args: Any, cfg: Dict[str, Any], run_dir: str) -> Tuple[Callable, List[List[str]]]:
    """Summarisation: fairseq-generate with the config's ``generation:`` settings, then rxf-rouge, references first
    (as files2rouge) and PTB-tokenised (as BART's recipe); both commands go in the record."""
    task = cfg["task"]
    # fmt: off
    generate = fairseq_tool("generate") + [
        task["data"], "--user-dir", USER_DIR, "--path", os.path.join(run_dir, "checkpoint_best.pt"),
        "--task", "translation", "--source-lang", task["source_lang"], "--target-lang", task["target_lang"],
        "--gen-subset", args.gen_subset, *generate_flags(cfg), "--batch-size", str(args.gen_batch_size),
        *EVAL_BATCHES, "--bpe", "gpt2", "--gpt2-encoder-json", args.encoder_json, "--gpt2-vocab-bpe", args.vocab_bpe,
    ] + (["--truncate-source"] if task.get("truncate_source") else []) + device_flags(args)
    # fmt: on
    check_with_fairseq(tuple(generate[3:]), "generate")  # e.g. --set generation.beem=4, before training
    hypo, ref = (os.path.join(run_dir, f"{args.gen_subset}.{ext}") for ext in ("hypo", "ref"))
    score = ["rxf-rouge", args.reference or ref, hypo, "--ptb-tokenize", "--backend", args.rouge_backend, "-q"]

    def evaluate(executor: Executor, trained: Trained) -> Dict[str, Any]:
        generated = executor.execute(generate, run_dir, "generate.log")
        write_generations(generated.lines, hypo, ref)
        valid_loss = float(trained.best.record["valid_loss"])
        return dict(metrics=rouge_scores(score), valid_loss=valid_loss, generate=generate[2:], rouge=score)

    return evaluate, [generate, score]


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
    """ROUGE-1/2/L F x 100 from rxf-rouge's ``command``, run in this process: its errors and Ctrl-C are rxf-run's."""
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        rouge.command.score(rouge.build_parser().parse_args(command[1:]))
    scores = rouge.parse_report(report.getvalue())
    return {f"rouge{n}": round(100 * scores[f"ROUGE-{n}"]["F"][0], 3) for n in (1, 2, "L")}
