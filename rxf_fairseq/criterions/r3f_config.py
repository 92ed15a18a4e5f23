"""The R3F options both criterions share, with the reference's flag names and defaults."""

from dataclasses import dataclass, field

from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from rxf_fairseq.noise import NOISE_TYPES, check_noise_args


@dataclass
class R3FConfig(FairseqDataclass):
    eps: float = field(
        default=1e-5,
        metadata={"help": "noise scale: z ~ U(-eps, eps) or N(0, eps^2) is added to the encoder's "
                  "token embeddings (never the decoder's) in the second forward pass; 0 = no noise"},
    )
    r3f_lambda: float = field(
        default=1.0,
        metadata={"help": "weight of the symmetric-KL term, scaled as fairseq's examples/rxf; "
                  "0 = standard fine-tuning (no second forward pass)"},
    )
    noise_type: ChoiceEnum(list(NOISE_TYPES)) = field(
        default="uniform", metadata={"help": "distribution of the embedding noise"}
    )


def check_r3f_args(eps: float, r3f_lambda: float, noise_type: str) -> None:
    """Start-up validation, naming the flag at fault."""
    check_noise_args(eps, noise_type)
    if not r3f_lambda >= 0:
        raise ValueError(f"--r3f-lambda must be >= 0, got {r3f_lambda!r}")
