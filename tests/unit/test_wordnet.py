"""WordNet 3.0's files read, and make demo's four tasks built from them, in this process (tests/fixtures/wordnet: a cut of Debian's wordnet-base)."""

import os

from rxf_repro.data import glue, wordnet
from tests.helpers import REPO

FIXTURE = os.path.join(REPO, "tests", "fixtures", "wordnet")  # cut from Debian's wordnet-base (its README)


SIZES = {"train": 60, "dev": 24}


def test_the_parser_reads_words_definitions_and_examples():
    line = (
        "00002098 00 a 01 able 0 005 = 05207437 n 0000 = 05624029 n 0000 + 05624029 n 0101 + 05207437 n 0101 ! "
        "00002312 a 0101 | (usually followed by `to') having the necessary means or skill or know-how or authority to "
        'do something; "able to swim"; "she was able to program her computer"  '
    )
    s = wordnet.parse_data_line(line, "data.adj:30")
    assert (s.key, s.pos, s.words) == ("a00002098", "a", ("able",))
    assert (
        s.definition.startswith("(usually followed by `to') having the necessary means")
        and "able to" not in s.definition
    )
    assert s.examples == ("able to swim", "she was able to program her computer")
    satellite = wordnet.parse_data_line("00003700 00 s 02 abaxial 0 dorsal(p) 4 000 | facing away  ", "x:1")
    assert satellite.words == ("abaxial", "dorsal") and satellite.key == "a00003700"


def test_tasks_are_balanced_and_no_synset_is_in_two_splits():
    synsets = wordnet.read_wordnet(FIXTURE)
    built = wordnet.build_tasks(synsets, SIZES, seed=1)
    assert set(built) == set(wordnet.TASKS)
    texts = {split: set() for split in wordnet.SPLITS}  # what each split's synsets may contribute
    for s in synsets:
        texts[wordnet.split_of(s, 1)].update({s.definition, *s.examples, *s.words})
    for task, splits in built.items():
        for split, examples in splits.items():
            counts = {label: sum(1 for _, lab in examples if lab == label) for _, label in examples}
            assert len(set(counts.values())) == 1 and len(counts) == len(glue.MINIATURE_TASKS[task][0]), (task, counts)
            for inputs, label in examples:
                text = inputs[-1] if task != "WN-BSHIFT" or label == "0" else None
                if text is not None:
                    assert text in texts[split], (task, split, text)
    # the splits partition the synsets, about 80/20, the same for every task
    keys = {split: {s.key for s in synsets if wordnet.split_of(s, 1) == split} for split in wordnet.SPLITS}
    assert not keys["train"] & keys["dev"] and 0.1 < len(keys["dev"]) / len(synsets) < 0.3


def test_a_shifted_sentence_has_two_adjacent_words_swapped():
    examples = wordnet.build_tasks(wordnet.read_wordnet(FIXTURE), SIZES, 1, ["WN-BSHIFT"])["WN-BSHIFT"]["train"]
    originals = {e for s in wordnet.read_wordnet(FIXTURE) for e in s.examples}
    for (sentence,), label in examples:
        if label == "0":
            assert sentence in originals
            continue
        words = sentence.split()
        swapped = [words[:i] + [words[i + 1], words[i]] + words[i + 2 :] for i in range(len(words) - 1)]
        assert sentence not in originals and any(" ".join(w) in originals for w in swapped)


def test_a_definition_pair_is_the_words_own_or_not_one_of_its_senses():
    synsets = wordnet.read_wordnet(FIXTURE)
    senses = {}
    for s in synsets:
        for w in s.words:
            senses.setdefault(w.lower(), set()).add(s.definition)
    for (word, definition), label in wordnet.build_tasks(synsets, SIZES, 1, ["WN-DEF"])["WN-DEF"]["train"]:
        assert (definition in senses[word.lower()]) == (label == "1"), (word, definition, label)
