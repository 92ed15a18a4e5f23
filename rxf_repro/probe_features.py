"""``python -m rxf_repro.probe_features FAIRSEQ-TRAIN-ARGS``: the linear probe of ``--task
sentence_prediction_probe`` fit on cached features instead of trained by SGD (``rxf-run probe ... --probe-fit
cached``; docs/probing.md).

The model is built and loaded as fairseq-train builds and loads it; the ``<s>`` features the probe reads are computed
once; the layer is fit by L-BFGS, its L2 weight chosen on a held-out fifth of train, and measured on valid. The result
is logged as fairseq logs a validation, so ``rxf-run`` records it as a trained probe. Nothing is saved; optimiser
options are ignored, ``--batch-size`` sets the batch of the feature pass."""

import json
import logging
import math
import os
import time

import torch

from rxf import probing
from rxf_repro import cli

TOOL = "rxf_repro.probe_features"
logger = logging.getLogger(TOOL)


def features_of(model, task, split: str, batch_size: int, max_positions) -> tuple:
    """(features [N, dim], targets [N]) of every example of ``split``, in dataset order."""
    task.load_dataset(split, combine=False, epoch=1)
    iterator = task.get_batch_iterator(
        dataset=task.dataset(split), max_sentences=batch_size, max_positions=max_positions, seed=1, num_workers=0
    ).next_epoch_itr(shuffle=False)
    ids, features, targets = [], [], []
    with torch.no_grad():
        for sample in iterator:
            if not sample:
                continue
            hidden, _ = model(**sample["net_input"], features_only=True)
            features.append(hidden[:, 0, :].float())
            targets.append(sample["target"].view(-1))
            ids.append(sample["id"])
    order = torch.cat(ids).argsort()
    return torch.cat(features)[order], torch.cat(targets)[order]


def main(cfg) -> tuple:
    """(validation accuracy in percent, the model with the fitted probe as its classification head)."""
    from fairseq import checkpoint_utils, tasks, utils

    started = time.time()
    utils.import_user_module(cfg.common)
    if cfg.task._name != "sentence_prediction_probe":
        raise cli.UserError(f"--task {cfg.task._name}: it fits the probe of --task sentence_prediction_probe only")
    restore = cfg.checkpoint.restore_file
    if not restore or restore == "checkpoint_last.pt" or not os.path.isfile(restore):
        raise cli.UserError(f"--restore-file {restore}: no such checkpoint to probe")
    torch.manual_seed(cfg.common.seed)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)  # the probe task freezes the encoder and removes its dropout
    model.load_state_dict(checkpoint_utils.load_checkpoint_to_cpu(restore)["model"], strict=True, model_cfg=cfg.model)
    model.eval()
    head = model.classification_heads[cfg.task.classification_head_name]
    positions = utils.resolve_max_positions(task.max_positions(), model.max_positions())
    batch = cfg.dataset.batch_size or 32
    logger.info("probing the frozen encoder of %s: features of train and valid (batches of %d)", restore, batch)
    train_x, train_y = features_of(model, task, "train", batch, positions)
    valid_x, valid_y = features_of(model, task, "valid", batch, positions)
    classes = cfg.task.num_classes
    l2, scores = probing.choose_l2(train_x, train_y, classes, seed=cfg.common.seed)
    logger.info(
        "L2 weight %g, chosen on a held-out fifth of train (%s)",
        l2,
        ", ".join(f"{value:g}: {score:.1f}%" for value, score in scores),
    )
    layer = probing.fit_linear_probe(train_x, train_y, classes, l2)
    with torch.no_grad():
        head.out_proj.load_state_dict(layer.state_dict())  # the probe the record describes, as fairseq's head
        loss = torch.nn.functional.cross_entropy(layer(valid_x), valid_y).item() / math.log(2)
    accuracy = probing.accuracy(layer, valid_x, valid_y)
    stats = {
        "epoch": 1,
        "valid_loss": round(loss, 3),
        "valid_accuracy": round(accuracy, 3),
        "valid_nsentences": len(valid_y),
        "valid_train_examples": len(train_y),
        "valid_l2": l2,
        "valid_num_updates": 0,
    }
    logging.getLogger("valid").info(json.dumps(stats))
    logger.info("done training in %.1f seconds", time.time() - started)
    return accuracy, model


def cli_main() -> None:
    """fairseq's ``cli_main`` convention (``rxf_repro.execution`` calls it in a forked child): arguments from sys.argv,
    the exit status raised."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser()))

    def fit() -> None:
        main(cfg)

    raise SystemExit(cli.tool_main(TOOL, fit))


if __name__ == "__main__":
    import fairseq_cli.train  # noqa: F401  (logging as fairseq-train's: on stdout, at $LOGLEVEL)

    cli_main()
