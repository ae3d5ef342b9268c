"""AlpacaEval 2, scored by the ``alpaca_eval`` package itself (tatsu-lab/alpaca_eval).

Procedure of the default AlpacaEval 2 annotator, ``weighted_alpaca_eval_gpt4_turbo``:

1. Every instruction of the eval set is a pair: the reference output (``gpt4_1106_preview``) as
   ``output_1`` and the model's output as ``output_2``.
2. Identical outputs get preference 1.5 without asking the judge.
3. The order shown to the judge is randomised per instruction: switched iff
   ``random.Random("is_switched_outputs" + instruction + str(seed)).choices([False, True])`` with
   seed 0 (``PairwiseAnnotator``'s default seed). Checked here against the published annotations.
4. The prompt ``alpaca_eval_clf.txt`` (shipped inside the ``alpaca_eval`` package) is filled by
   ``alpaca_eval.utils.make_prompts`` and split into chat messages by ``prompt_to_chatml``.
5. The judge (gpt-4-1106-preview) answers one token (temperature 1, top-5 logprobs); the preference
   is ``2 - p(m)`` with ``p(m) = exp(lp_m - logsumexp(lp_m, lp_M))``, computed by
   ``alpaca_eval.completion_parsers.logprob_parser``; a switched pair becomes ``3 - preference``.
6. Win rate, standard error, counts: ``alpaca_eval.metrics.get_winrate``. Length-controlled win
   rate: ``alpaca_eval.metrics.glm_winrate.get_length_controlled_winrate``.

The LC function downloads two tables from the Hugging Face hub at run time (``df_gamed.csv``,
``instruction_difficulty.csv``). Here they are served from a local folder (``glm_data_dir``, the
config's ``eval.alpaca_eval2.glm_dir``), and the result is the leaderboard's length-controlled win
rate (``length_controlled_v1``), reported as ``length_controlled_winrate`` with alpaca_eval's
``lc_standard_error``. Without them only the ``length_controlled_minimal`` variant (no difficulty
term, no regularisation towards the gamed baselines) can be fitted; it is a different number (on
the published annotations it lands 14-27 points above the leaderboard's LC), so it is reported
under its own name, ``lc_minimal_win_rate``, never as the LC, and without a standard error (its
predictions are one constant, so alpaca_eval's ``lc_standard_error`` is ~1e-16, not an
uncertainty). Nothing is ever written into the installed package (weights are not saved).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence
from unittest import mock

import yaml

from eval.benchmarks import DataFormatError, read_json, require_file, write_json
from eval.judges.base import Judge, JudgeReply, complete_all, make_request

if TYPE_CHECKING:  # pandas is imported where it is used: a finished run's rerun reads no annotations
    import pandas as pd

log = logging.getLogger(__name__)

ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
REFERENCE_GENERATOR = "gpt4_1106_preview"
SWITCH_SEED = 0
LC_FULL = "length_controlled_v1"
LC_MINIMAL = "length_controlled_minimal"
REFERENCE_FILES = (Path(REFERENCE_GENERATOR) / "model_outputs.json", Path("alpaca_eval_gpt4_baseline.json"))
REFERENCE_SOURCE = ("https://github.com/tatsu-lab/alpaca_eval (results/gpt4_1106_preview/model_outputs.json) "
                    "or the Hugging Face dataset tatsu-lab/alpaca_eval (alpaca_eval_gpt4_baseline.json)")
GLM_FILES = ("df_gamed.csv", "instruction_difficulty.csv")
GLM_SOURCE = "the Hugging Face dataset tatsu-lab/alpaca_eval (files df_gamed.csv and instruction_difficulty.csv)"
LC_MIN_ROWS = 5  # glm_winrate fits with 5-fold cross-validation
METRIC_KEYS = ("win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total", "discrete_win_rate")

_PATCH_LOCK = threading.Lock()


def _alpaca_eval():
    """Import ``alpaca_eval`` lazily (it is slow to import and warns about pkg_resources)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import alpaca_eval.completion_parsers
        import alpaca_eval.constants
        import alpaca_eval.metrics
        import alpaca_eval.metrics.glm_winrate
        import alpaca_eval.utils
    return alpaca_eval


# ---- files ------------------------------------------------------------------------------------
def load_reference_outputs(path: str | os.PathLike) -> list[dict]:
    """The AlpacaEval 2 reference outputs: a ``model_outputs.json`` file, or a folder holding
    ``gpt4_1106_preview/model_outputs.json`` (or ``alpaca_eval_gpt4_baseline.json``)."""
    p = Path(path).expanduser()
    if p.is_dir():
        found = [p / rel for rel in REFERENCE_FILES if (p / rel).is_file()]
        p = found[0] if found else p / REFERENCE_FILES[0]
    rows = read_model_outputs(require_file(p, what="AlpacaEval 2 reference outputs", source=REFERENCE_SOURCE))
    generators = {r.get("generator") for r in rows}
    if "text_davinci_003" in generators:
        raise DataFormatError(f"{p}: these are AlpacaEval 1's reference outputs (generator text_davinci_003); "
                              f"AlpacaEval 2 compares against gpt4_1106_preview, from {REFERENCE_SOURCE}")
    return rows


def read_model_outputs(path: str | os.PathLike) -> list[dict]:
    """Read a ``model_outputs.json``: a list of ``{instruction, output, generator, dataset}``."""
    rows = read_json(require_file(path, what="AlpacaEval model outputs", source=REFERENCE_SOURCE))
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise DataFormatError(f"{path}: expected a JSON list of objects")
    for i, r in enumerate(rows):
        missing = {"instruction", "output"} - set(r)
        if missing:
            raise DataFormatError(f"{path}, item {i}: missing {sorted(missing)}")
    return rows


def make_model_outputs(reference_outputs: Sequence[dict], outputs: Sequence[str], generator: str) -> list[dict]:
    """Rows in the ``model_outputs.json`` format, one per reference instruction, in its order."""
    if len(outputs) != len(reference_outputs):
        raise ValueError(f"{len(outputs)} outputs for {len(reference_outputs)} instructions")
    return [{"instruction": r["instruction"], "output": o, "generator": generator,
             "dataset": r.get("dataset", "")} for r, o in zip(reference_outputs, outputs, strict=True)]


def write_model_outputs(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    return write_json(path, [{k: r.get(k) for k in ("instruction", "output", "generator", "dataset")} for r in rows])


def read_annotations(path: str | os.PathLike) -> list[dict]:
    rows = read_json(require_file(path, what="AlpacaEval annotations", source="a previous annotation run"))
    if not isinstance(rows, list):
        raise DataFormatError(f"{path}: expected a JSON list of annotation rows")
    return rows


def write_annotations(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    return write_json(path, list(rows))


# ---- the annotator ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AnnotatorSpec:
    """The parts of an alpaca_eval annotator config that decide the request and the parsing."""

    name: str
    prompt_template: str
    model_name: str
    temperature: float
    max_tokens: int
    top_logprobs: int
    numerator_token: str
    denominator_tokens: tuple[str, ...]
    is_binarize: bool
    seed: int = SWITCH_SEED


def load_annotator(config_path: Optional[str | os.PathLike] = None, prompt_path: Optional[str | os.PathLike] = None,
                   name: str = ANNOTATOR) -> AnnotatorSpec:
    """Read the annotator's ``configs.yaml`` and prompt; both default to the files inside the
    installed ``alpaca_eval`` package (``evaluators_configs/<name>/configs.yaml``)."""
    base = Path(_alpaca_eval().constants.EVALUATORS_CONFIG_DIR)
    config_path = Path(config_path) if config_path else base / name / "configs.yaml"
    cfg = yaml.safe_load(require_file(config_path, what=f"alpaca_eval annotator config {name!r}",
                                      source="the alpaca_eval package (pip install alpaca-eval)").read_text())
    if name not in cfg:
        raise DataFormatError(f"{config_path}: no annotator named {name!r} (found {sorted(cfg)})")
    cfg = cfg[name]
    if cfg.get("fn_completion_parser") != "logprob_parser":
        raise NotImplementedError(f"annotator {name!r} uses {cfg.get('fn_completion_parser')!r}; "
                                  "only logprob_parser annotators are supported")
    if prompt_path is None:
        prompt_path = base / cfg["prompt_template"]
        if not prompt_path.is_file():  # a flat copy next to the config
            prompt_path = config_path.parent / Path(cfg["prompt_template"]).name
    prompt = require_file(prompt_path, what="alpaca_eval annotator prompt",
                          source="the alpaca_eval package").read_text()
    kw, parser = cfg["completions_kwargs"], cfg["completion_parser_kwargs"]
    return AnnotatorSpec(name=name, prompt_template=prompt, model_name=kw["model_name"],
                         temperature=float(kw.get("temperature", 1.0)), max_tokens=int(kw["max_tokens"]),
                         top_logprobs=int(kw.get("top_logprobs", 5)), numerator_token=parser["numerator_token"],
                         denominator_tokens=tuple(parser["denominator_tokens"]),
                         is_binarize=bool(parser.get("is_binarize", True)))


def is_switched(instruction: str, seed: int = SWITCH_SEED) -> bool:
    """Whether alpaca_eval shows the model's output first for this instruction (step 3 above)."""
    return bool(_alpaca_eval().utils.random_seeded_choice(seed="is_switched_outputs" + instruction + str(seed),
                                                          choices=[False, True]))


def annotator_messages(instruction: str, output_1: str, output_2: str, spec: AnnotatorSpec, *,
                       switched: bool) -> list[dict]:
    """The judge's chat messages for one pair (``output_1`` = reference), in the shown order."""
    import pandas as pd

    ae = _alpaca_eval()
    first, second = (output_2, output_1) if switched else (output_1, output_2)
    row = pd.DataFrame([{"instruction": instruction, "output_1": first, "output_2": second}])
    prompts, _ = ae.utils.make_prompts(row, template=spec.prompt_template)
    return ae.utils.prompt_to_chatml(prompts[0])


def preference_from_logprobs(top_logprobs: Optional[list[list[dict]]], spec: AnnotatorSpec, *,
                             switched: bool) -> float:
    """Preference in [1, 2] (2 = the model wins) from the judge's top logprobs of its first token."""
    if not top_logprobs or not top_logprobs[0]:
        return math.nan
    ae = _alpaca_eval()
    completion = {"logprobs": {"content": [{"top_logprobs": list(top_logprobs[0])}]}}
    pref = ae.completion_parsers.logprob_parser(completion, numerator_token=spec.numerator_token,
                                                denominator_tokens=list(spec.denominator_tokens),
                                                is_binarize=spec.is_binarize)[0]
    pref = float(pref)
    return 3.0 - pref if switched and not math.isnan(pref) else pref


def has_verdict_logprobs(spec: AnnotatorSpec):
    """A validator for the judge: the first token's alternatives include ``m`` or ``M``."""
    wanted = {spec.numerator_token, *spec.denominator_tokens}
    return lambda reply: bool(reply.top_logprobs) and any(a.get("token") in wanted for a in reply.top_logprobs[0])


def _pairs(model_outputs: Sequence[dict], reference_outputs: Sequence[dict]) -> list[tuple[dict, dict]]:
    """(reference row, model row) in the reference order, matched on the instruction."""
    by_instruction = {r["instruction"]: r for r in model_outputs}
    if len(by_instruction) != len(model_outputs):
        raise ValueError("model outputs repeat an instruction")
    ref_instructions = {r["instruction"] for r in reference_outputs}
    unknown = [i for i in by_instruction if i not in ref_instructions]
    if unknown:
        raise ValueError(f"{len(unknown)} model outputs answer instructions absent from the reference, "
                         f"e.g. {unknown[0][:80]!r}")
    return [(r, by_instruction[r["instruction"]]) for r in reference_outputs if r["instruction"] in by_instruction]


def _row(ref: dict, out: dict, annotator: str, generator: Optional[str], preference: float, **extra) -> dict:
    return {"instruction": ref["instruction"], "output_1": ref["output"],
            "generator_1": ref.get("generator", REFERENCE_GENERATOR), "dataset": ref.get("dataset", ""),
            "output_2": out["output"], "generator_2": generator or out.get("generator", "model"),
            "annotator": annotator, "preference": preference, **extra}


def annotate(model_outputs: Sequence[dict], reference_outputs: Sequence[dict], judge: Judge, *,
             spec: Optional[AnnotatorSpec] = None, generator: Optional[str] = None,
             retry_without_verdict: bool = False) -> list[dict]:
    """Annotation rows (alpaca_eval's columns) from the judge, following steps 1-5 above.

    A reply without ``m``/``M`` among its top logprobs gives preference NaN, which
    ``get_winrate`` drops, as alpaca_eval does; ``retry_without_verdict`` asks the judge again
    instead (a deviation from the authors' procedure, off by default).
    """
    spec = spec or load_annotator()
    pairs = _pairs(model_outputs, reference_outputs)
    rows: list[Optional[dict]] = [None] * len(pairs)
    requests, where, switches = [], [], []
    for i, (ref, out) in enumerate(pairs):
        if ref["output"] == out["output"]:
            rows[i] = _row(ref, out, spec.name, generator, 1.5, raw_completion=None)
            continue
        switched = is_switched(ref["instruction"], spec.seed)
        messages = annotator_messages(ref["instruction"], ref["output"], out["output"], spec, switched=switched)
        requests.append(make_request(messages, temperature=spec.temperature, max_tokens=spec.max_tokens,
                                     logprobs=True, top_logprobs=spec.top_logprobs))
        where.append(i)
        switches.append(switched)
    replies = complete_all(judge, requests, validate=has_verdict_logprobs(spec) if retry_without_verdict else None)
    prices = (getattr(judge, "price_input_per_1m", 0.0), getattr(judge, "price_output_per_1m", 0.0))
    for i, switched, reply in zip(where, switches, replies, strict=True):
        ref, out = pairs[i]
        pref = math.nan if reply is None else preference_from_logprobs(reply.top_logprobs, spec, switched=switched)
        rows[i] = _row(ref, out, spec.name, generator, pref, price_per_example=_price(reply, prices),
                       is_switched_outputs=switched, raw_completion=None if reply is None else reply.to_dict())
    return rows  # type: ignore[return-value]


def _price(reply: Optional[JudgeReply], prices: tuple[float, float]) -> Optional[float]:
    if reply is None or reply.cached or not reply.usage:
        return None
    return (reply.usage.get("prompt_tokens", 0) * prices[0] + reply.usage.get("completion_tokens", 0) * prices[1]) / 1e6


def annotations_from_preferences(model_outputs: Sequence[dict], reference_outputs: Sequence[dict],
                                 preferences: Sequence[float] | Mapping[str, float], *, annotator: str,
                                 generator: Optional[str] = None) -> list[dict]:
    """Annotation rows from a judge of our own that gives preferences directly.

    ``preferences`` follow alpaca_eval's convention: a float in [1, 2] where 2 means the model
    (``output_2``) wins and 1 the reference; 1.5 (or the legacy 0) is a tie; NaN is a missing
    annotation. Either aligned with ``model_outputs`` or a mapping instruction -> preference.
    """
    if not isinstance(preferences, Mapping):
        if len(preferences) != len(model_outputs):
            raise ValueError(f"{len(preferences)} preferences for {len(model_outputs)} model outputs")
        preferences = {o["instruction"]: p for o, p in zip(model_outputs, preferences, strict=True)}
    rows = []
    for ref, out in _pairs(model_outputs, reference_outputs):
        p = float(preferences[ref["instruction"]])
        if p == 0.0:
            p = 1.5
        if not (math.isnan(p) or 1.0 <= p <= 2.0):
            raise ValueError(f"preference {p} for {ref['instruction'][:60]!r} is outside [1, 2]")
        rows.append(_row(ref, out, annotator, generator, p))
    return rows


PAIRWISE_PROMPT = Path(__file__).resolve().parents[1] / "prompts" / "pairwise_preference.txt"
PAIRWISE_ANNOTATOR = "distill_bench_pairwise"
_PAIRWISE_VERDICT = re.compile(r"\[\[\s*(1|2|tie)\s*\]\]", re.IGNORECASE)


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders in one pass (text inside the values is never re-read)."""
    return re.sub(r"\{(" + "|".join(map(re.escape, values)) + r")\}", lambda m: values[m.group(1)], template)


def parse_pairwise_verdict(text: str) -> float:
    """The last ``[[1]]`` / ``[[2]]`` / ``[[tie]]`` of a reply to our pairwise prompt, as a preference
    for the *second shown* response: 1.0, 2.0, 1.5; NaN without a verdict."""
    found = _PAIRWISE_VERDICT.findall(text)
    if not found:
        return math.nan
    return {"1": 1.0, "2": 2.0}.get(found[-1].lower(), 1.5)


def annotate_with_verdicts(model_outputs: Sequence[dict], reference_outputs: Sequence[dict], judge: Judge, *,
                           prompt_path: str | os.PathLike = PAIRWISE_PROMPT, generator: Optional[str] = None,
                           temperature: float = 0.0, max_tokens: int = 1024, seed: int = SWITCH_SEED) -> list[dict]:
    """Annotation rows from a judge of our own answering ``pairwise_preference.txt`` (not the
    AlpacaEval annotator: rows are labelled ``distill_bench_pairwise``). The shown order is
    randomised per instruction as alpaca_eval does; unparsable replies are asked again."""
    template = Path(prompt_path).read_text(encoding="utf-8")
    pairs = _pairs(model_outputs, reference_outputs)
    prefs = [1.5] * len(pairs)  # identical outputs: a tie, no call
    todo = [i for i, (ref, out) in enumerate(pairs) if ref["output"] != out["output"]]
    switches = {i: is_switched(pairs[i][0]["instruction"], seed) for i in todo}
    requests = []
    for i in todo:
        ref, out = pairs[i]
        shown = (out["output"], ref["output"]) if switches[i] else (ref["output"], out["output"])
        prompt = _fill(template, {"instruction": ref["instruction"], "output_1": shown[0], "output_2": shown[1]})
        requests.append(make_request([{"role": "user", "content": prompt}], temperature=temperature,
                                     max_tokens=max_tokens))
    replies = complete_all(judge, requests, validate=lambda r: not math.isnan(parse_pairwise_verdict(r.text)))
    for i, reply in zip(todo, replies, strict=True):
        p = math.nan if reply is None else parse_pairwise_verdict(reply.text)
        prefs[i] = 3.0 - p if switches[i] and not math.isnan(p) else p
    return annotations_from_preferences([out for _, out in pairs], reference_outputs, prefs,
                                        annotator=PAIRWISE_ANNOTATOR, generator=generator)


# ---- scoring ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _hub_files(files: Mapping[str, Path]):
    """Serve ``glm_winrate``'s hub downloads from local files, and keep sklearn's global config."""
    import sklearn

    glm = _alpaca_eval().metrics.glm_winrate

    def local(repo_id: str, filename: str, **_: Any) -> str:
        if filename not in files:
            raise FileNotFoundError(f"{filename} is needed by alpaca_eval's {LC_FULL}; get it from {GLM_SOURCE}")
        return str(files[filename])

    with _PATCH_LOCK, mock.patch.object(glm, "hf_hub_download", local), sklearn.config_context(), \
            warnings.catch_warnings():
        # alpaca_eval passes options that recent scikit-learn deprecates; the fit is unchanged.
        warnings.simplefilter("ignore", FutureWarning)
        yield glm


def _glm_files(glm_data_dir: Optional[str | os.PathLike]) -> Optional[dict[str, Path]]:
    if glm_data_dir is None:
        return None
    files = {name: Path(glm_data_dir).expanduser() / name for name in GLM_FILES}
    return files if all(p.is_file() for p in files.values()) else None


GAMED_COLUMNS = ("model", "index", "instruction_difficulty", "preference", "std_delta_len", "not_gamed_baseline")


def check_glm_files(files: Mapping[str, Path]) -> int:
    """Check the two tables' format (as ``glm_winrate`` reads them); return the eval set's size.

    ``df_gamed.csv``: the gamed baselines' annotations, columns ``model, index,
    instruction_difficulty, preference, std_delta_len, not_gamed_baseline`` (``index`` = the
    instruction's position in the eval set). ``instruction_difficulty.csv``: the index, then one
    numeric column (alpaca_eval squeezes it into a Series), one row per instruction."""
    import pandas as pd

    gamed_path, diff_path = files["df_gamed.csv"], files["instruction_difficulty.csv"]
    gamed = pd.read_csv(gamed_path)
    missing = [c for c in GAMED_COLUMNS if c not in gamed.columns]
    if missing:
        raise DataFormatError(f"{gamed_path}: missing column(s) {missing} (expected {list(GAMED_COLUMNS)}); "
                              f"this is not alpaca_eval's df_gamed.csv, get it from {GLM_SOURCE}")
    difficulty = pd.read_csv(diff_path, index_col=0)
    if difficulty.shape[1] != 1 or not pd.api.types.is_numeric_dtype(difficulty.iloc[:, 0]):
        raise DataFormatError(f"{diff_path}: expected an index and one numeric column (the instruction difficulty, "
                              f"as alpaca_eval reads it), got columns {list(difficulty.columns)}; get the file from "
                              f"{GLM_SOURCE}")
    n_eval = len(difficulty)
    n_gamed = int(gamed["index"].nunique())
    if n_gamed != n_eval:
        raise DataFormatError(f"{gamed_path} covers {n_gamed} instructions but {diff_path} has {n_eval}; "
                              "the two files come from different versions")
    return n_eval


def _choose_lc(lc: Optional[str], files: Optional[dict[str, Path]], n_rows: int,
               glm_data_dir: Optional[str | os.PathLike]) -> Optional[str]:
    if lc in (None, "none"):
        return None
    if lc == LC_MINIMAL:
        return LC_MINIMAL
    if lc not in ("auto", LC_FULL):
        raise ValueError(f"lc must be 'auto', {LC_FULL!r}, {LC_MINIMAL!r} or None; got {lc!r}")
    if files is None:
        if lc == LC_FULL:
            raise FileNotFoundError(f"{LC_FULL} needs {' and '.join(GLM_FILES)} in glm_data_dir "
                                    f"(got {glm_data_dir}); get them from {GLM_SOURCE}")
        log.warning("AlpacaEval LC: %s not found (glm_data_dir=%s); reporting %s as lc_minimal_win_rate, which "
                    "is not the leaderboard's length-controlled win rate (put the two files from %s there for it)",
                    " / ".join(GLM_FILES), glm_data_dir, LC_MINIMAL, GLM_SOURCE)
        return LC_MINIMAL
    n_eval = check_glm_files(files)
    if n_rows != n_eval:
        if lc == LC_FULL:
            raise ValueError(f"{LC_FULL} needs the whole eval set ({n_eval} rows, reference order); got {n_rows}")
        log.warning("AlpacaEval LC: %d rows, not the full set of %d; using %s", n_rows, n_eval, LC_MINIMAL)
        return LC_MINIMAL
    return LC_FULL


def _length_controlled(df: pd.DataFrame, variant: str, files: Optional[dict[str, Path]]) -> dict:
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        if variant == LC_MINIMAL:
            # The minimal formula has no difficulty term, but alpaca_eval still reads the table to
            # build its features; a zero column stands in and never enters the fit.
            placeholder = Path(tmp) / "df_gamed.csv"
            pd.DataFrame({"model": "none", "index": range(len(df)), "instruction_difficulty": 0.0}).to_csv(
                placeholder, index=False)
            files = {"df_gamed.csv": placeholder}
        with _hub_files(files or {}) as glm:
            return glm.get_length_controlled_winrate(df, glm_name=variant, save_weights_dir=None,
                                                     is_add_glm_preference_inplace=False)


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    return v


def score_annotations(annotations: Sequence[dict] | pd.DataFrame, *, lc: Optional[str] = "auto",
                      glm_data_dir: Optional[str | os.PathLike] = None,
                      model_outputs: Optional[Sequence[dict]] = None) -> dict:
    """AlpacaEval 2 metrics from annotation rows, computed by alpaca_eval's own functions.

    Returns ``win_rate, standard_error, n_wins, n_wins_base, n_draws, n_total, discrete_win_rate``
    (``get_winrate``), ``avg_length`` (int of the mean character length of the model's outputs,
    as on the leaderboard), ``lc_variant`` (which GLM was fitted, or None), plus ``n_missing``
    (rows without a preference, dropped by alpaca_eval). ``length_controlled_winrate`` and
    ``lc_standard_error`` (``get_length_controlled_winrate``) are set only when the variant is
    ``length_controlled_v1``, the leaderboard's LC; ``lc_minimal_win_rate`` only when it is
    ``length_controlled_minimal`` (never under the LC's name, and without a standard error).

    ``lc``: ``"auto"`` uses ``length_controlled_v1`` when ``glm_data_dir`` holds
    ``df_gamed.csv`` and ``instruction_difficulty.csv`` and the rows are the whole eval set,
    else ``length_controlled_minimal``; name a variant to insist on it; None skips LC.
    """
    import pandas as pd

    df = pd.DataFrame(annotations).reset_index(drop=True)
    if df.empty:
        raise ValueError("no annotations to score")
    ae = _alpaca_eval()
    out = {k: _plain(v) for k, v in ae.metrics.get_winrate(df).items()}
    lengths = (pd.Series([r["output"] for r in model_outputs]) if model_outputs is not None else df["output_2"])
    out["avg_length"] = int(lengths.astype(str).str.len().mean())
    out["n_missing"] = int(pd.to_numeric(df["preference"], errors="coerce").isna().sum())
    out["annotator"] = str(df["annotator"].iloc[0]) if "annotator" in df else None
    out["generator"] = str(df["generator_2"].iloc[0]) if "generator_2" in df else None
    files = _glm_files(glm_data_dir)
    variant = _choose_lc(lc, files, len(df), glm_data_dir)
    n_usable = len(df) - out["n_missing"]
    if variant is not None and n_usable < LC_MIN_ROWS:
        log.warning("AlpacaEval LC needs at least %d annotated rows (alpaca_eval's %d-fold CV); got %d, LC skipped",
                    LC_MIN_ROWS, LC_MIN_ROWS, n_usable)
        variant = None
    out["lc_variant"] = variant
    out["length_controlled_winrate"] = out["lc_standard_error"] = out["lc_minimal_win_rate"] = None
    if variant is not None:
        lc_metrics = _length_controlled(df, variant, files)
        if variant == LC_FULL:
            out["length_controlled_winrate"] = float(lc_metrics["length_controlled_winrate"])
            out["lc_standard_error"] = float(lc_metrics["lc_standard_error"])
        else:
            out["lc_minimal_win_rate"] = float(lc_metrics["length_controlled_winrate"])
    return out


def flat_scores(s: Mapping[str, Any]) -> dict:
    """The suite's keys (``eval/alpaca_eval2/<key>``) from :func:`score_annotations`' result.

    ``lc_win_rate`` (+ ``lc_win_rate_stderr``) is the leaderboard's LC (``length_controlled_v1``)
    and nothing else; the minimal variant is ``lc_minimal_win_rate`` (no standard error)."""
    out = {"win_rate": s["win_rate"], "win_rate_stderr": s["standard_error"],
           "discrete_win_rate": s["discrete_win_rate"], "n_wins": s["n_wins"], "n_wins_base": s["n_wins_base"],
           "n_draws": s["n_draws"], "n_total": s["n_total"], "n_missing": s["n_missing"],
           "avg_length": s["avg_length"]}
    if s.get("lc_variant") == LC_FULL:
        out["lc_win_rate"] = s["length_controlled_winrate"]
        out["lc_win_rate_stderr"] = s["lc_standard_error"]
    elif s.get("lc_variant") == LC_MINIMAL:
        out["lc_minimal_win_rate"] = s["lc_minimal_win_rate"]
    return out
