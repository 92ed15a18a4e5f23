"""A Hugging Face BERT or RoBERTa folder read, checked, and mapped onto fairseq's RoBERTa: the dictionary, the
tokenizer files and the state dict (``rxf-import-hf``, docs/import.md). Torch is imported only to read the weights."""

import json
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from rxf_repro import encoders
from rxf_repro.cli import UserError

SUPPORTED = ("bert", "roberta")
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_accurate", "gelu_pytorch_tanh": "gelu_accurate", "relu": "relu"}
FIXED = {"position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False}  # or None
LAYER = re.compile(r"encoder\.layer\.(\d+)\.")


@dataclass
class Vocabulary:
    """fairseq index -> source id (``None``: fairseq's padding symbols), and the lines of ``dict.txt``."""

    source_ids: List[Optional[int]]
    dict_lines: List[str]
    specials: Dict[str, str]


@dataclass
class Source:
    folder: str
    config: Dict
    model_type: str
    weights_file: str
    vocab: Vocabulary
    vocabulary_file: str  # the file the vocabulary was read from (import.json says which)
    copied: List[str]  # the tokenizer files DEST gets as they are
    generated: Dict[str, str]  # file name -> text: the tokenizer files DEST gets that SRC lacks
    weights: Dict = field(repr=False, default_factory=dict)


def read_json(path: str, what: str = "JSON"):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not {what} ({error})") from None


def read_source(src: str) -> Source:
    """SRC's config, weights file and vocabulary, checked: whatever fairseq's RoBERTa cannot be is refused here."""
    folder = encoders.model_folder(src)
    config_path = os.path.join(folder, "config.json")
    config = read_json(config_path)  # a missing one is an OSError: rxf-import-hf says which file
    model_type = config.get("model_type")
    if model_type not in SUPPORTED:
        raise UserError(
            f"{config_path}: model_type {model_type!r} is not supported (only {', '.join(SUPPORTED)}: "
            "post-LN encoders with learned absolute positions)"
        )
    for key, allowed in FIXED.items():
        if config.get(key) not in (allowed, None):
            raise UserError(
                f"{config_path}: {key} {config[key]!r} is not supported (fairseq's RoBERTa has learned absolute "
                "positions and no decoder)"
            )
    if config.get("hidden_act") not in ACTIVATIONS:
        raise UserError(
            f"{config_path}: hidden_act {config.get('hidden_act')!r} has no fairseq equivalent "
            f"(supported: {', '.join(ACTIVATIONS)})"
        )
    weights = [n for n in ("model.safetensors", "pytorch_model.bin") if os.path.isfile(os.path.join(folder, n))]
    if not weights:
        raise UserError(f"{folder}: no model.safetensors or pytorch_model.bin")
    copied = [os.path.join(folder, n) for n in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")]
    copied = [p for p in copied if os.path.isfile(p)]
    files = bert_files if model_type == "bert" else roberta_files
    vocab, vocabulary_file, more, generated = files(folder, config["vocab_size"])
    weights_file = os.path.join(folder, weights[0])
    return Source(folder, config, model_type, weights_file, vocab, vocabulary_file, copied + more, generated)


def bert_files(folder: str, size: int) -> Tuple[Vocabulary, str, List[str], Dict[str, str]]:
    """The vocabulary, the file it comes from, the tokenizer files to copy and those to write."""
    vocab_txt, tokenizer_json = os.path.join(folder, "vocab.txt"), os.path.join(folder, "tokenizer.json")
    if os.path.isfile(vocab_txt):
        with open(vocab_txt, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]  # as transformers' load_vocab reads it
        return bert_vocabulary(tokens, size, lambda i: f"{vocab_txt}:{i + 1}", vocab_txt), "vocab.txt", [vocab_txt], {}
    if not os.path.isfile(tokenizer_json):
        raise UserError(f"{vocab_txt}: missing, and no tokenizer.json (BERT's WordPiece vocabulary)")
    tokens = tokenizer_model(tokenizer_json, "WordPiece", "bert")[0]
    vocab = bert_vocabulary(tokens, size, lambda i: f"{tokenizer_json} (id {i})", tokenizer_json)
    return vocab, "tokenizer.json", [], {"vocab.txt": "".join(token + "\n" for token in tokens)}


def roberta_files(folder: str, size: int) -> Tuple[Vocabulary, str, List[str], Dict[str, str]]:
    """As ``bert_files``; also encoder.json and vocab.bpe, the names the GPT-2 BPE path of preprocess/ reads."""
    vocab_json, merges_txt = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    tokenizer_json = os.path.join(folder, "tokenizer.json")
    if os.path.isfile(vocab_json) and os.path.isfile(merges_txt):
        vocab = read_json(vocab_json)
        with open(merges_txt, encoding="utf-8") as f:
            bpe = f.read()
        encoder = json.dumps(vocab, ensure_ascii=False, indent=2) + "\n"
        generated = {"encoder.json": encoder, "vocab.bpe": bpe}
        return roberta_vocabulary(vocab, size, vocab_json), "vocab.json", [vocab_json, merges_txt], generated
    if not os.path.isfile(tokenizer_json):
        missing = merges_txt if os.path.isfile(vocab_json) else vocab_json
        raise UserError(f"{missing}: missing, and no tokenizer.json (RoBERTa's byte-level BPE vocabulary and merges)")
    tokens, merges = tokenizer_model(tokenizer_json, "BPE", "roberta")
    vocab = {token: i for i, token in enumerate(tokens)}
    encoder = json.dumps(vocab, ensure_ascii=False, indent=2) + "\n"
    bpe = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    generated = {"vocab.json": encoder, "merges.txt": bpe, "encoder.json": encoder, "vocab.bpe": bpe}
    return roberta_vocabulary(vocab, size, tokenizer_json), "tokenizer.json", [], generated


def tokenizer_model(path: str, expected: str, model_type: str) -> Tuple[List[str], List[Tuple[str, str]]]:
    """``tokenizer.json``'s (what transformers 5 saves instead of vocab.txt / vocab.json + merges.txt) vocabulary in
    id order, and its BPE merges."""
    model = read_json(path, "a tokenizers JSON file")
    model = model.get("model") if isinstance(model, dict) else None
    kind = model.get("type") if isinstance(model, dict) else None
    if kind != expected:
        raise UserError(
            f"{path}: model.type {kind!r}, but config.json's model_type {model_type!r} needs a {expected} tokenizer"
        )
    vocab = model["vocab"]  # token -> id in both kinds
    tokens: List[Optional[str]] = [None] * len(vocab)
    for token, i in vocab.items():
        if not isinstance(i, int) or not 0 <= i < len(vocab) or tokens[i] is not None:
            raise UserError(f"{path}: model.vocab's ids are not 0 to {len(vocab) - 1}, each once (id {i})")
        tokens[i] = token
    merges = [tuple(m.split(" ") if isinstance(m, str) else m) for m in model.get("merges") or []]  # "a b" or [a, b]
    return tokens, merges


def pad_to_multiple(ids: List[Optional[int]], lines: List[str], multiple: int = 8) -> None:
    """fairseq-preprocess pads a dictionary (with ``madeupwordNNNN``) to a multiple of 8 before the task adds
    ``<mask>``; roberta.base's dict.txt is so padded."""
    for n in range(-len(ids) % multiple):
        ids.append(None)
        lines.append(f"madeupword{n:04d} 0")


def check_size(count: int, vocab_size: int, path: str) -> None:
    if count != vocab_size:
        raise UserError(
            f"{path}: {count} tokens, but config.json's vocab_size is {vocab_size} (the embedding has that many rows)"
        )


def bert_vocabulary(tokens: List[str], vocab_size: int, where, vocab_path: str) -> Vocabulary:
    """``where(i)``: how an error names token ``i`` (``vocab.txt:LINE``, ``tokenizer.json (id I)``)."""
    check_size(len(tokens), vocab_size, vocab_path)
    position: Dict[str, int] = {}
    for i, token in enumerate(tokens):
        if position.setdefault(token, i) != i:
            raise UserError(
                f"{where(i)}: token {token!r} repeats {where(position[token])}; a fairseq dictionary holds a token once"
            )
    specials = {"<s>": "[CLS]", "<pad>": "[PAD]", "</s>": "[SEP]", "<unk>": "[UNK]", "<mask>": "[MASK]"}
    for fairseq_symbol, token in specials.items():
        if token not in position:
            raise UserError(f"{vocab_path}: no {token} token, which fairseq's {fairseq_symbol} maps to")
    special_ids = {position[t] for t in specials.values()}
    ids: List[Optional[int]] = [position[specials[s]] for s in ("<s>", "<pad>", "</s>", "<unk>")]
    lines = []
    for i, token in enumerate(tokens):
        if i in special_ids:
            continue
        if not token or any(c.isspace() for c in token):
            raise UserError(
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
    check_size(len(vocab), vocab_size, vocab_json)
    specials = {token: token for token in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")}
    for token in specials:
        if token not in vocab:
            raise UserError(f"{vocab_json}: no {token} token")
    ids: List[Optional[int]] = [vocab[s] for s in ("<s>", "<pad>", "</s>", "<unk>")]
    special_ids = {vocab[t] for t in specials}
    lines = [f"{i} 1" for i in sorted(vocab.values()) if i not in special_ids]
    ids += [i for i in sorted(vocab.values()) if i not in special_ids]
    pad_to_multiple(ids, lines)
    ids.append(vocab["<mask>"])
    return Vocabulary(ids, lines, specials)


# --------------------------------------------------------------------------------------------- weights


def load_weights(source: Source) -> None:
    """``source.weights``, checked against config.json's ``num_hidden_layers``: fewer would drop layers silently (the
    import would be a different model), more would fail half-way."""
    import torch

    path = source.weights_file
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            source.weights = load_file(path)
        else:
            source.weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(f"{path}: cannot be read ({type(error).__name__}: {str(error)[:200]})") from None
    found = sorted({int(m.group(1)) for m in map(LAYER.match, strip_prefix(source.weights, source.model_type)) if m})
    expected = source.config["num_hidden_layers"]
    if found != list(range(expected)):
        held = "encoder.layer." + (f"0-{found[-1]}" if found == list(range(len(found))) else ",".join(map(str, found)))
        raise UserError(
            f"{os.path.join(source.folder, 'config.json')}: num_hidden_layers is {expected}, but "
            f"{os.path.basename(path)} holds {len(found)} layers ({held if found else 'no encoder.layer.N tensors'}); "
            "they must agree"
        )


def strip_prefix(weights: Dict, model_type: str) -> Dict:
    """``bert.embeddings...`` (BertForMaskedLM, ...) and ``embeddings...`` (BertModel) both become the latter."""
    prefix = f"{model_type}."
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in weights.items()}


def take(weights: Dict, name: str, where: str):
    for candidate in (name, name.replace(".weight", ".gamma").replace(".bias", ".beta")):  # old BERTs: gamma, beta
        if candidate in weights:
            return weights.pop(candidate)
    raise UserError(f"{where}: no tensor {name}")


LAYER_NAMES = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "self_attn_layer_norm",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "output.LayerNorm": "final_layer_norm",
}
MLM_HEADS = {  # dense, layer norm, bias (its decoder's weight is the word embeddings)
    "bert": ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias"),
    "roberta": ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias"),
}


def convert(source: Source) -> Tuple[Dict, List[str], bool]:
    """The fairseq state dict of the encoder (and of the LM head when the source has one); the source tensors left
    out; whether an MLM head was imported."""
    import torch

    cfg, where, vocab = source.config, source.weights_file, source.vocab
    weights = strip_prefix(source.weights, source.model_type)
    order = torch.tensor([sid if sid is not None else 0 for sid in vocab.source_ids])
    padding_rows = torch.tensor([sid is None for sid in vocab.source_ids])
    encoder = "encoder.sentence_encoder"
    out = {}
    words = take(weights, "embeddings.word_embeddings.weight", where)
    if words.shape[0] != cfg["vocab_size"]:
        raise UserError(
            f"{where}: word embeddings have {words.shape[0]} rows, config.json's vocab_size is {cfg['vocab_size']}"
        )
    out[f"{encoder}.embed_tokens.weight"] = words[order].masked_fill(padding_rows[:, None], 0)
    positions = take(weights, "embeddings.position_embeddings.weight", where)
    if source.model_type == "bert":  # BERT's positions from 0; fairseq's (and HF RoBERTa's) from padding_idx + 1 = 2
        positions = torch.cat([positions.new_zeros(2, positions.shape[1]), positions])
    token_types = weights.pop("embeddings.token_type_embeddings.weight", None)
    if token_types is not None:  # one segment: segment 0's embedding is part of every position
        positions = torch.cat([positions[:2], positions[2:] + token_types[0]])
    out[f"{encoder}.embed_positions.weight"] = positions
    renamed = {"embeddings.LayerNorm": f"{encoder}.layernorm_embedding"}
    for layer in range(cfg["num_hidden_layers"]):
        for theirs, ours in LAYER_NAMES.items():
            renamed[f"encoder.layer.{layer}.{theirs}"] = f"{encoder}.layers.{layer}.{ours}"
    dense, norm, bias = MLM_HEADS[source.model_type]
    has_mlm = f"{dense}.weight" in weights
    if has_mlm:
        renamed.update({dense: "encoder.lm_head.dense", norm: "encoder.lm_head.layer_norm"})
        out["encoder.lm_head.bias"] = take(weights, bias, where)[order].masked_fill(padding_rows, 0)
        decoder = weights.pop(bias.replace(".bias", ".decoder.weight"), None)
        if decoder is not None and not torch.equal(decoder, words):
            raise UserError(
                f"{where}: the MLM decoder is not tied to the word embeddings, which fairseq's RoBERTa requires"
            )
        weights.pop(bias.replace(".bias", ".decoder.bias"), None)  # the same tensor under its other name
    for theirs, ours in renamed.items():
        for suffix in ("weight", "bias"):
            out[f"{ours}.{suffix}"] = take(weights, f"{theirs}.{suffix}", where)
    dropped = sorted(k for k in weights if not k.endswith("position_ids"))
    return out, dropped, has_mlm


def max_positions(source: Source) -> int:
    return source.config["max_position_embeddings"] - (2 if source.model_type == "roberta" else 0)


def arch_flags(source: Source) -> List[str]:
    """The ``--arch rxf_roberta`` flags of the source's sizes (what ``model.pt``'s cfg holds)."""
    cfg = source.config
    flags = {
        "--encoder-layers": cfg["num_hidden_layers"],
        "--encoder-embed-dim": cfg["hidden_size"],
        "--encoder-ffn-embed-dim": cfg["intermediate_size"],
        "--encoder-attention-heads": cfg["num_attention_heads"],
        "--max-positions": max_positions(source),
        "--layernorm-eps": float(cfg.get("layer_norm_eps", 1e-12)),
        "--activation-fn": ACTIVATIONS[cfg["hidden_act"]],
        "--dropout": cfg.get("hidden_dropout_prob", 0.1),
        "--attention-dropout": cfg.get("attention_probs_dropout_prob", 0.1),
    }
    return ["--arch", "rxf_roberta", *(str(part) for flag in flags.items() for part in flag)]
