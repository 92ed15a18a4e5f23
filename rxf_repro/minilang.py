"""A small artificial language with four GLUE-like tasks on the same sentences, generated
deterministically from a seed: ``make demo``'s embedded benchmark (no downloads).

Sentences are clauses ``NAME VERB DET [ADJ ...] NOUN`` joined by ``and`` and ended by ``.``; an adjective
may be negated by a preceding ``not``. Adjectives are positive, negative or neutral.

=========  ===============  ==========================================================  ==================
task       GLUE analogue    what it tests                                               labels (majority)
=========  ===============  ==========================================================  ==================
SST-2      sentiment        sign of the summed adjective polarity, ``not`` flipping     0/1, ~50%
                            the adjective after it (negation, composition)
RTE        entailment       does the premise (1-2 clauses) entail the one-clause         0/1, 50%
                            hypothesis? Entailed: a premise clause without its
                            adjectives; not: one with its name, verb or noun changed
MRPC       paraphrase       are the two 2-clause sentences the same clauses, maybe        0/1, 50%
                            reordered? Not: one content word changed
CoLA       acceptability    is the sentence well formed? Bad: two adjacent words          0/1, 60% good
                            swapped, the determiner dropped, or a word doubled
=========  ===============  ==========================================================  ==================

The masked-LM corpus for pretraining is further sentences from the same grammar. Everything is whitespace
tokenised, so fairseq's dictionary is built from the corpus directly (no BPE).
"""

import random
from collections import Counter
from typing import Dict, List, Sequence, Tuple

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
VERBS = ["saw", "liked", "found", "painted", "sold", "kept", "washed", "wanted"]
NOUNS = ["dog", "cat", "house", "car", "tree", "boat", "book", "cake", "lamp", "hat"]
GOOD = ["good", "great", "lovely", "nice", "happy", "bright"]
BAD = ["bad", "awful", "ugly", "nasty", "sad", "dull"]
NEUTRAL = ["red", "big", "small", "old", "new", "green"]
DETS = ["a", "the"]
NOT, AND, END = "not", "and", "."

Clause = Tuple[str, str, str, Tuple[Tuple[bool, str], ...], str]  # name, verb, det, ((negated, adj), ...), noun
TASKS = ("SST-2", "RTE", "MRPC", "CoLA")
PAIR_TASKS = ("RTE", "MRPC")


def polarity(adjective: str) -> int:
    return 1 if adjective in GOOD else -1 if adjective in BAD else 0


def random_clause(rng: random.Random, max_adjectives: int = 2, p_sentiment: float = 0.6) -> Clause:
    adjectives = []
    for _ in range(rng.randint(0, max_adjectives)):
        if rng.random() < p_sentiment:
            adjectives.append((rng.random() < 0.3, rng.choice(GOOD if rng.random() < 0.5 else BAD)))
        else:
            adjectives.append((False, rng.choice(NEUTRAL)))
    return rng.choice(NAMES), rng.choice(VERBS), rng.choice(DETS), tuple(adjectives), rng.choice(NOUNS)


def clause_words(clause: Clause) -> List[str]:
    name, verb, det, adjectives, noun = clause
    words = [name, verb, det]
    for negated, adjective in adjectives:
        words += [NOT, adjective] if negated else [adjective]
    return words + [noun]


def sentence(clauses: Sequence[Clause]) -> str:
    words: List[str] = []
    for i, clause in enumerate(clauses):
        words += ([AND] if i else []) + clause_words(clause)
    return " ".join(words + [END])


def sentiment(clauses: Sequence[Clause]) -> int:
    return sum(polarity(a) * (-1 if negated else 1) for c in clauses for negated, a in c[3])


def sst2_example(rng: random.Random) -> Tuple[List[str], str]:
    while True:
        clauses = [random_clause(rng) for _ in range(rng.randint(1, 2))]
        score = sentiment(clauses)
        if score:
            return [sentence(clauses)], str(int(score > 0))


def _changed(rng: random.Random, clause: Clause) -> Clause:
    """The clause with its name, verb or noun replaced by a different one."""
    name, verb, det, adjectives, noun = clause
    slot = rng.randrange(3)
    if slot == 0:
        name = rng.choice([n for n in NAMES if n != name])
    elif slot == 1:
        verb = rng.choice([v for v in VERBS if v != verb])
    else:
        noun = rng.choice([n for n in NOUNS if n != noun])
    return name, verb, det, adjectives, noun


def rte_example(rng: random.Random) -> Tuple[List[str], str]:
    premise = [random_clause(rng) for _ in range(rng.randint(1, 2))]
    bare = {(c[0], c[1], c[4]) for c in premise}
    if rng.random() < 0.5:
        name, verb, det, _, noun = rng.choice(premise)
        return [sentence(premise), sentence([(name, verb, det, (), noun)])], "1"
    while True:
        name, verb, det, _, noun = _changed(rng, rng.choice(premise))
        if (name, verb, noun) not in bare:
            return [sentence(premise), sentence([(name, verb, det, (), noun)])], "0"


def mrpc_example(rng: random.Random) -> Tuple[List[str], str]:
    first, second = random_clause(rng, 1), random_clause(rng, 1)
    other = [first, second]
    label = "1"
    if rng.random() < 0.5:
        k = rng.randrange(2)
        other[k] = _changed(rng, other[k])
        label = "0"
    if rng.random() < 0.5:
        other.reverse()
    return [sentence([first, second]), sentence(other)], label


def cola_example(rng: random.Random) -> Tuple[List[str], str]:
    words = sst2_example(rng)[0][0].split()
    if rng.random() < 0.6:
        return [" ".join(words)], "1"
    adjectives = set(GOOD + BAD + NEUTRAL)
    while True:
        kind, bad = rng.randrange(3), list(words)
        if kind == 0:  # swap two adjacent words (two adjectives may stand in either order: not a corruption)
            i = rng.randrange(len(bad) - 2)
            if bad[i] == bad[i + 1] or (bad[i] in adjectives and bad[i + 1] in adjectives):
                continue
            bad[i], bad[i + 1] = bad[i + 1], bad[i]
        elif kind == 1:  # drop a determiner
            dets = [i for i, w in enumerate(bad) if w in DETS]
            del bad[rng.choice(dets)]
        else:  # double a word
            i = rng.randrange(len(bad) - 1)
            bad.insert(i, bad[i])
        return [" ".join(bad)], "0"


GENERATORS = {"SST-2": sst2_example, "RTE": rte_example, "MRPC": mrpc_example, "CoLA": cola_example}


def generate(task: str, n: int, seed: int) -> List[Tuple[List[str], str]]:
    """``n`` examples (inputs, label) of ``task``; the same seed always gives the same examples."""
    rng = random.Random(f"{task}:{seed}")
    return [GENERATORS[task](rng) for _ in range(n)]


def corpus(n: int, seed: int) -> List[str]:
    """Unlabelled sentences for masked-LM pretraining."""
    rng = random.Random(f"corpus:{seed}")
    return [sentence([random_clause(rng) for _ in range(rng.randint(1, 3))]) for _ in range(n)]


def majority_baseline(labels: Sequence[str]) -> float:
    """Accuracy (%) of always answering the most frequent label."""
    return 100.0 * Counter(labels).most_common(1)[0][1] / len(labels)


def label_balance(examples: Sequence[Tuple[List[str], str]]) -> Dict[str, float]:
    counts = Counter(label for _, label in examples)
    return {label: counts[label] / len(examples) for label in sorted(counts)}
