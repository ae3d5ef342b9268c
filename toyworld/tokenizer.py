"""Tokenizers trained locally, each with its model family's chat-template style.

Two kinds: ``word`` (one token per whitespace-separated word) and ``bpe`` (byte-pair merges over
characters, Metaspace-style spaces). Different kinds, or different families, give tokenizers with
different vocabularies, which is how the toy world exercises cross-tokenizer distillation (PAD).
"""
from __future__ import annotations

from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast


@dataclass(frozen=True)
class ChatStyle:
    """Special tokens and Jinja chat template of one family."""

    bos: str
    eos: str  # ends an assistant turn; generation stops there
    pad: str
    specials: tuple[str, ...]
    template: str


def _turns(open_: str, close: str, assistant: str) -> str:
    return (
        "{{ bos_token }}{% for m in messages %}" + open_ + "{{ m['content'] }} " + close
        + "{% endfor %}{% if add_generation_prompt %}" + assistant + "{% endif %}"
    )


STYLES: dict[str, ChatStyle] = {
    # Gemma-2: <start_of_turn>user ... <end_of_turn> <start_of_turn>model ...
    "gemma": ChatStyle("<bos>", "<end_of_turn>", "<pad>", ("<start_of_turn>",),
                       _turns("<start_of_turn> {{ 'model' if m['role'] == 'assistant' else m['role'] }} ",
                              "<end_of_turn> ", "<start_of_turn> model ")),
    # Llama-3: <|start_header_id|>user<|end_header_id|> ... <|eot_id|>
    "llama": ChatStyle("<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>",
                       ("<|start_header_id|>", "<|end_header_id|>"),
                       _turns("<|start_header_id|> {{ m['role'] }} <|end_header_id|> ", "<|eot_id|> ",
                              "<|start_header_id|> assistant <|end_header_id|> ")),
    # Qwen2 (ChatML): <|im_start|>user ... <|im_end|>
    "chatml": ChatStyle("<|endoftext|>", "<|im_end|>", "<|pad|>", ("<|im_start|>",),
                        _turns("<|im_start|> {{ m['role'] }} ", "<|im_end|> ", "<|im_start|> assistant ")),
    # Mistral / H2O-Danube: [INST] ... [/INST] answer </s>
    "mistral": ChatStyle("<s>", "</s>", "<pad>", ("[INST]", "[/INST]"),
                         "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] "
                         "{{ m['content'] }} [/INST] {% else %}{{ m['content'] }} </s> {% endif %}{% endfor %}"),
}
ROLE_WORDS = ["user", "assistant", "model", "system"]


def build_toy_tokenizer(style: str, words: list[str], kind: str = "word", vocab_size: int = 64
                        ) -> PreTrainedTokenizerFast:
    """Train a tokenizer on ``words`` with the chat style ``style`` (``gemma``, ``llama``, ``chatml``,
    ``mistral``). ``kind='bpe'`` learns merges up to ``vocab_size``; ``word`` keeps one id per word."""
    if style not in STYLES:
        raise ValueError(f"unknown chat style {style!r}; choose from {sorted(STYLES)}")
    st = STYLES[style]
    specials = [st.pad, st.bos, st.eos, "<unk>", *st.specials]
    corpus = list(words) + ROLE_WORDS
    if kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        # show_progress=False: no tokenizers 'Pre-processing sequences' bar in our logs
        tok.train_from_iterator([" ".join(corpus)], trainers.WordLevelTrainer(special_tokens=specials,
                                                                                show_progress=False))
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        tok.train_from_iterator(corpus * 4, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                                 show_progress=False))
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}; choose 'word' or 'bpe'")
    out = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=st.bos, eos_token=st.eos,
                                  pad_token=st.pad, unk_token="<unk>",
                                  additional_special_tokens=list(st.specials))
    out.chat_template = st.template
    out.padding_side = "left"
    return out
