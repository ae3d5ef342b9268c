"""Local stand-ins for everything ``world=full`` reaches outside the machine, to rehearse the real
path on a CPU (``world=rehearsal``):

    python -m distill_bench.standins build <dir> --benchmarks <folder with the benchmarks' files>
    python -m distill_bench.standins rehearse <dir> -- method=adpa      # serve the judge, run run.py
    python -m distill_bench.standins serve <dir> --port 8765            # the judge alone (Ctrl-C stops it)

``build`` writes into ``<dir>``:

- ``models/<family>/{teacher,student}/``: tiny random checkpoints of each family's real architecture
  (``gemma``: Gemma-2, ``llama``: Llama, ``qwen``: Qwen2, ``danube``: Mistral), saved with
  ``save_pretrained`` as on the hub (``config.json``, safetensors, ``generation_config.json``,
  tokenizer files), with a byte-level BPE tokenizer trained on the stand-in texts and the special
  tokens and chat template of the real checkpoints (Gemma's ``<start_of_turn>``/``<end_of_turn>``,
  Llama-3's ``<|start_header_id|>``/``<|eot_id|>``, Qwen2's ChatML, Mistral's ``[INST]``). Teacher and
  student of a family share the tokenizer, as on the hub.
- ``data/{deita-10k-v0-sft,dpo-mix-7k,ultrafeedback_binarized}/``: the papers' data sets in their real
  columns and split names, as parquet files in the hub's layout (``data/<split>-00000-of-00001.parquet``),
  which ``datasets.load_dataset(<folder>, split=...)`` reads. The texts are made up.
- ``benchmarks/``: the benchmarks' own files (the layout of ``eval.data_root``), the first few items of
  each, taken from ``--benchmarks`` (a folder with the real files, in that layout or in FastChat's
  flat ``reference_answer_gpt-4.jsonl``) or downloaded from the benchmarks' homes.
- ``open_llm/``: two lm-eval tasks on local JSON files, shaped like ARC (multiple choice, acc_norm)
  and GSM8K (generation, exact match), standing in for the Open LLM Leaderboard's hub-hosted tasks.
- ``standins.json``: what was built and from where.

The judge is :class:`eval.judges.standin.StandInJudge` behind an OpenAI-compatible server on
127.0.0.1: runs reach it with the real HTTP judge (``judge=openai``, ``judge.base_url``).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Optional

from distill.templates import CHATML_TEMPLATE, GEMMA_TEMPLATE, LLAMA3_TEMPLATE, MISTRAL_TEMPLATE, TEMPLATES  # noqa: F401

log = logging.getLogger(__name__)

FAMILIES = ("gemma", "llama", "qwen", "danube")
DATASETS = {"deita-10k-v0-sft": ("train_sft", "test_sft"), "dpo-mix-7k": ("train", "test"),
            "ultrafeedback_binarized": ("train_prefs", "test_prefs")}
VOCAB_SIZE = 512
CONTEXT = 512          # max_position_embeddings of the stand-in checkpoints


STYLES = {
    # bos, eos (the tokenizer's), pad, extra special tokens, template, extra end-of-turn ids (generation_config)
    "gemma": dict(bos="<bos>", eos="<eos>", pad="<pad>", specials=["<start_of_turn>", "<end_of_turn>"],
                  template=GEMMA_TEMPLATE, stop=["<end_of_turn>"]),
    "llama": dict(bos="<|begin_of_text|>", eos="<|eot_id|>", pad=None,
                  specials=["<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"],
                  template=LLAMA3_TEMPLATE, stop=["<|end_of_text|>"]),
    "qwen": dict(bos=None, eos="<|im_end|>", pad="<|endoftext|>", specials=["<|im_start|>"],
                 template=CHATML_TEMPLATE, stop=["<|endoftext|>"]),
    "danube": dict(bos="<s>", eos="</s>", pad=None, specials=["<unk>"], template=MISTRAL_TEMPLATE, stop=[]),
}
ARCH = {  # config class and the tiny sizes (teacher, student)
    "gemma": ("Gemma2Config", dict(head_dim=16, query_pre_attn_scalar=16, sliding_window=CONTEXT)),
    "llama": ("LlamaConfig", dict(head_dim=16)),
    "qwen": ("Qwen2Config", {}),
    "danube": ("MistralConfig", dict(sliding_window=None)),
}
SIZES = {"teacher": dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                         num_key_value_heads=2),
         "student": dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                         num_key_value_heads=1)}

# ---------------------------------------------------------------------------------------------- texts
_TOPICS = ["the water cycle", "photosynthesis", "a binary search", "the French revolution", "compound interest",
           "a healthy breakfast", "the moon's phases", "recursion in Python", "volcanoes", "a job interview",
           "prime numbers", "the stock market", "climate change", "a bicycle", "machine learning", "bread baking"]
_ASKS = ["Explain {t} to a child.", "Write a short poem about {t}.", "Give three facts about {t}.",
         "Summarise {t} in two sentences.", "What are the pros and cons of {t}?", "How would you teach {t}?"]


def _instruction(rng: random.Random) -> str:
    return rng.choice(_ASKS).format(t=rng.choice(_TOPICS))


def _answer(instruction: str, rng: random.Random, good: bool = True) -> str:
    topic = next((t for t in _TOPICS if t in instruction), "it")
    if good:
        return (f"Here is an answer about {topic}. {topic.capitalize()} matters because it shows how things "
                f"work. First, consider the basics of {topic}; second, an example; third, a summary.")
    return rng.choice(["I don't know.", "Maybe.", f"{topic} is a thing.", "No answer."])


def _conversation(rng: random.Random, turns: int = 1) -> list[dict]:
    msgs = []
    for _ in range(turns):
        q = _instruction(rng)
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": _answer(q, rng)}]
    return msgs


def dataset_rows(name: str, n: int, rng: random.Random) -> list[dict]:
    """``n`` made-up rows of one of the papers' data sets, in that data set's columns."""
    rows = []
    for i in range(n):
        if name == "deita-10k-v0-sft":   # HuggingFaceH4/deita-10k-v0-sft: prompt, prompt_id, messages
            msgs = _conversation(rng, turns=rng.choice([1, 1, 2]))
            rows.append({"prompt": msgs[0]["content"], "prompt_id": f"{i:064x}", "messages": msgs})
        elif name == "dpo-mix-7k":       # argilla/dpo-mix-7k: dataset, chosen, rejected (conversations), ratings, models
            q = _instruction(rng)
            rows.append({"dataset": "standin", "chosen": [{"role": "user", "content": q},
                                                          {"role": "assistant", "content": _answer(q, rng)}],
                         "rejected": [{"role": "user", "content": q},
                                      {"role": "assistant", "content": _answer(q, rng, good=False)}],
                         "chosen_rating": 5.0, "rejected_rating": 2.0, "chosen_model": "standin-a",
                         "rejected_model": "standin-b"})
        elif name == "ultrafeedback_binarized":  # HuggingFaceH4/ultrafeedback_binarized
            q = _instruction(rng)
            chosen = [{"role": "user", "content": q}, {"role": "assistant", "content": _answer(q, rng)}]
            rejected = [{"role": "user", "content": q}, {"role": "assistant", "content": _answer(q, rng, False)}]
            rows.append({"prompt": q, "prompt_id": f"{i:064x}", "chosen": chosen, "rejected": rejected,
                         "messages": chosen, "score_chosen": 8.0, "score_rejected": 3.0})
        else:
            raise ValueError(f"unknown data set {name!r}; choose from {sorted(DATASETS)}")
    return rows


def write_datasets(out: Path, n: int = 48, seed: int = 0) -> dict[str, Path]:
    """The three data sets as hub-layout folders of parquet files; returns name -> folder."""
    from datasets import Dataset

    paths = {}
    for name, splits in DATASETS.items():
        folder = out / name
        for k, split in enumerate(splits):
            rows = dataset_rows(name, n if k == 0 else max(8, n // 4), random.Random(f"{seed}/{name}/{split}"))
            (folder / "data").mkdir(parents=True, exist_ok=True)
            Dataset.from_list(rows).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
        paths[name] = folder
    return paths


# ---------------------------------------------------------------------------------------------- benchmarks
BENCH_FILES = {  # stand-in path -> candidate source paths (the eval.data_root layout, FastChat's flat name)
    "alpaca_eval/gpt4_1106_preview/model_outputs.json": ["alpaca_eval/gpt4_1106_preview/model_outputs.json"],
    "arena_hard_v0.1/question.jsonl": ["arena_hard_v0.1/question.jsonl"],
    "arena_hard_v0.1/model_answer/gpt-4-0314.jsonl": ["arena_hard_v0.1/model_answer/gpt-4-0314.jsonl"],
    "arena_hard_v0.1/judge_config.yaml": ["arena_hard_v0.1/judge_config.yaml"],
    "mt_bench/question.jsonl": ["mt_bench/question.jsonl"],
    "mt_bench/reference_answer/gpt-4.jsonl": ["mt_bench/reference_answer/gpt-4.jsonl",
                                              "mt_bench/reference_answer_gpt-4.jsonl"],
    "mt_bench/judge_prompts.jsonl": ["mt_bench/judge_prompts.jsonl"],
}


def _source_file(source: Path, rel: str) -> Path:
    for cand in BENCH_FILES[rel]:
        if (source / cand).is_file():
            return source / cand
    raise FileNotFoundError(f"{source}: none of {BENCH_FILES[rel]} found; --benchmarks needs the benchmarks' files "
                            "in the layout of eval.data_root (see the README's evaluation section)")


def _download_sources(dest: Path) -> Path:
    """The benchmarks' files from their homes (addresses in conf/eval/all.yaml)."""
    import yaml

    from eval.benchmarks.sources import ensure_files

    conf = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf" / "eval" / "all.yaml").read_text())
    for bench, sub in (("alpaca_eval2", "alpaca_eval"), ("arena_hard", "arena_hard_v0.1"), ("mt_bench", "mt_bench")):
        ensure_files(dest / sub, conf[bench]["files"], what=bench)
    return dest


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_benchmarks(out: Path, source: Path, n_alpaca: int = 6, n_arena: int = 4,
                     mt_categories: tuple[str, ...] = ("writing", "math", "coding")) -> None:
    """The first items of each benchmark from ``source`` into ``out`` (the ``eval.data_root`` layout)."""
    ae = json.loads(_source_file(source, "alpaca_eval/gpt4_1106_preview/model_outputs.json").read_text())
    dest = out / "alpaca_eval" / "gpt4_1106_preview" / "model_outputs.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(ae[:n_alpaca], indent=2, ensure_ascii=False))

    questions = _jsonl(_source_file(source, "arena_hard_v0.1/question.jsonl"))[:n_arena]
    ids = {q["question_id"] for q in questions}
    _write_jsonl(out / "arena_hard_v0.1" / "question.jsonl", questions)
    base = [r for r in _jsonl(_source_file(source, "arena_hard_v0.1/model_answer/gpt-4-0314.jsonl"))
            if r["question_id"] in ids]
    _write_jsonl(out / "arena_hard_v0.1" / "model_answer" / "gpt-4-0314.jsonl", base)
    (out / "arena_hard_v0.1" / "judge_config.yaml").write_bytes(
        _source_file(source, "arena_hard_v0.1/judge_config.yaml").read_bytes())

    mt_q = _jsonl(_source_file(source, "mt_bench/question.jsonl"))
    picked = [next(q for q in mt_q if q["category"] == c) for c in mt_categories]
    mt_ids = {q["question_id"] for q in picked}
    _write_jsonl(out / "mt_bench" / "question.jsonl", picked)
    refs = [r for r in _jsonl(_source_file(source, "mt_bench/reference_answer/gpt-4.jsonl")) if r["question_id"] in mt_ids]
    _write_jsonl(out / "mt_bench" / "reference_answer" / "gpt-4.jsonl", refs)
    (out / "mt_bench" / "judge_prompts.jsonl").write_bytes(_source_file(source, "mt_bench/judge_prompts.jsonl").read_bytes())


def benchmark_texts(out: Path) -> list[str]:
    texts = [r["instruction"] for r in json.loads((out / "alpaca_eval/gpt4_1106_preview/model_outputs.json").read_text())]
    texts += [q["turns"][0]["content"] for q in _jsonl(out / "arena_hard_v0.1/question.jsonl")]
    texts += [t for q in _jsonl(out / "mt_bench/question.jsonl") for t in q["turns"]]
    return texts


# ---------------------------------------------------------------------------------------------- Open LLM stand-in
OPEN_LLM_TASKS = ("standin_arc", "standin_gsm8k")


def write_open_llm_tasks(out: Path, n: int = 8, seed: int = 0) -> Path:
    """Two lm-eval tasks on local JSON: ``standin_arc`` (ARC-shaped multiple choice; acc, acc_norm)
    and ``standin_gsm8k`` (GSM8K-shaped generation; exact match after ``####``)."""
    import yaml

    rng = random.Random(f"{seed}/open_llm")
    out.mkdir(parents=True, exist_ok=True)
    arc, gsm = [], []
    for i in range(n):
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        right = a + b
        choices = sorted({right, right + 1, right - 1, right + 2})
        arc.append({"id": f"arc-{i}", "question": f"What is {a} plus {b}?",
                    "choices": {"text": [str(c) for c in choices], "label": list("ABCD")},
                    "answerKey": "ABCD"[choices.index(right)]})
        gsm.append({"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
                    "answer": f"He has {a} + {b} = {right} apples.\n#### {right}"})
    (out / "standin_arc.json").write_text(json.dumps(arc, indent=1))
    (out / "standin_gsm8k.json").write_text(json.dumps(gsm, indent=1))
    common = {"dataset_path": "json", "test_split": "test", "metadata": {"version": 1.0}}
    tasks = {
        "standin_arc": {"task": "standin_arc", **common, "dataset_kwargs": {"data_files": {"test": "standin_arc.json"}},
                        "output_type": "multiple_choice", "doc_to_text": "Question: {{question}}\nAnswer:",
                        "doc_to_target": "{{choices.label.index(answerKey)}}", "doc_to_choice": "{{choices.text}}",
                        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                                        for m in ("acc", "acc_norm")]},
        "standin_gsm8k": {"task": "standin_gsm8k", **common,
                          "dataset_kwargs": {"data_files": {"test": "standin_gsm8k.json"}},
                          "output_type": "generate_until", "doc_to_text": "Question: {{question}}\nAnswer:",
                          "doc_to_target": "{{answer.split('####')[-1].strip()}}",
                          "generation_kwargs": {"until": ["Question:", "\n\n"], "do_sample": False, "max_gen_toks": 8},
                          "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
                          "filter_list": [{"name": "strict-match", "filter": [
                              {"function": "regex", "regex_pattern": r"#### (\-?[0-9\.\,]+)"},
                              {"function": "take_first"}]}]},
    }
    for name, spec in tasks.items():
        (out / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, width=1000))
    return out


# ---------------------------------------------------------------------------------------------- checkpoints
def build_tokenizer(family: str, texts: list[str]):
    """A byte-level BPE tokenizer trained on ``texts`` with the family's special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    st = STYLES[family]
    specials = [t for t in (st["pad"], st["bos"], st["eos"], *st["specials"], *st["stop"]) if t]
    specials = list(dict.fromkeys(specials))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    kw = {k: st[k] for k in ("bos", "eos", "pad") if st[k]}
    out = PreTrainedTokenizerFast(tokenizer_object=tok, **{f"{k}_token": v for k, v in kw.items()},
                                  additional_special_tokens=[t for t in st["specials"] + st["stop"] if t not in kw.values()])
    out.chat_template = st["template"]
    return out


def build_checkpoint(family: str, role: str, tokenizer, out: Path, seed: int = 0) -> Path:
    """A tiny random model of the family's architecture, saved with its tokenizer as on the hub."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    cls_name, extra = ARCH[family]
    st = STYLES[family]
    eos = [tokenizer.convert_tokens_to_ids(t) for t in [st["eos"], *st["stop"]]]
    config = getattr(transformers, cls_name)(vocab_size=len(tokenizer), max_position_embeddings=CONTEXT,
                                             bos_token_id=tokenizer.bos_token_id, eos_token_id=eos[0],
                                             pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
                                             **SIZES[role], **extra)
    torch.manual_seed(seed + (0 if role == "teacher" else 1))
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                                               eos_token_id=eos if len(eos) > 1 else eos[0])
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


# ---------------------------------------------------------------------------------------------- build
def build(root: str | Path, benchmarks: Optional[str | Path] = None, *, families=FAMILIES, n_rows: int = 48,
          seed: int = 0) -> Path:
    """Write every stand-in into ``root`` (see the module docstring); a second call with the same
    arguments keeps what is there. Returns ``root``."""
    root = Path(root).expanduser().resolve()
    manifest_path = root / "standins.json"
    spec = {"families": list(families), "n_rows": n_rows, "seed": seed, "version": 1}
    if manifest_path.is_file() and json.loads(manifest_path.read_text()).get("spec") == spec:
        log.info("stand-ins already built in %s", root)
        return root
    root.mkdir(parents=True, exist_ok=True)
    if benchmarks is None:
        log.info("no --benchmarks folder: downloading the benchmarks' files from their homes")
        source = _download_sources(root / "_downloads")
    else:
        source = Path(benchmarks).expanduser().resolve()
    write_benchmarks(root / "benchmarks", source)
    data = write_datasets(root / "data", n=n_rows, seed=seed)
    write_open_llm_tasks(root / "open_llm", seed=seed)
    texts = benchmark_texts(root / "benchmarks")
    for name in DATASETS:
        rng = random.Random(f"{seed}/{name}/texts")
        texts += [m["content"] for r in dataset_rows(name, 16, rng) for m in r.get("messages", r.get("chosen", []))]
    for family in families:
        tok = build_tokenizer(family, texts * 2)
        for role in ("teacher", "student"):
            build_checkpoint(family, role, tok, root / "models" / family / role, seed=seed)
    manifest = {"spec": spec, "benchmarks_from": str(source), "data": {k: str(v) for k, v in data.items()},
                "models": {f: {r: str(root / "models" / f / r) for r in ("teacher", "student")} for f in families}}
    manifest_path.write_text(json.dumps(manifest, indent=2))
    log.info("stand-ins written to %s", root)
    return root


def overrides(root: str | Path, judge_url: Optional[str] = None) -> list[str]:
    """The Hydra overrides pointing ``world=rehearsal`` at the stand-ins in ``root``."""
    out = ["world=rehearsal", f"rehearsal.root={Path(root).resolve()}"]
    if judge_url:
        out.append(f"judge.base_url={judge_url}")
    return out


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m distill_bench.standins", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the stand-ins")
    b.add_argument("root")
    b.add_argument("--benchmarks", help="a folder with the benchmarks' files (default: download them)")
    s = sub.add_parser("serve", help="serve the stand-in judge until interrupted")
    s.add_argument("root")
    s.add_argument("--port", type=int, default=8765)
    r = sub.add_parser("rehearse", help="build if needed, serve the judge, run run.py world=rehearsal")
    r.add_argument("root")
    r.add_argument("--benchmarks")
    r.add_argument("overrides", nargs="*", help="more run.py overrides (after --)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from eval.judges.standin import serve

    if args.cmd == "build":
        build(args.root, args.benchmarks)
        print(f"stand-ins in {Path(args.root).resolve()}; run: python -m distill_bench.standins rehearse {args.root}")
        return 0
    root = Path(args.root).resolve()
    if args.cmd == "serve":
        server = serve(root / "benchmarks", port=args.port)
        print(f"stand-in judge at {server.base_url} (Ctrl-C stops it); "
              f"python run.py {' '.join(overrides(root, server.base_url))}", flush=True)
        try:
            import threading

            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
        return 0
    build(root, args.benchmarks)
    server = serve(root / "benchmarks")
    try:
        cmd = [sys.executable, str(Path(__file__).resolve().parents[1] / "run.py"),
               *overrides(root, server.base_url), *args.overrides]
        print("running:", " ".join(cmd), flush=True)
        rc = subprocess.call(cmd, env=os.environ.copy())
        print(f"stand-in judge: {server.calls} request(s)")
        return rc
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
