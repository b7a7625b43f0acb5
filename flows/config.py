"""Typed configuration of a digest run: validated once, passed in, never read from globals.

One pydantic model, nested by concern: what to read (`input`), which models and how much of
a document they read (`models`), where the work runs (`runtime`), what is written
(`output`), and an optional chained publish (`publish`). The command line spells each field
as a flat option (`FLAT` maps them; tests/test_config_cli.py checks the two agree), and a
flat mapping such as `DigestConfig(input="in.jsonl", batch_size=64)` is accepted too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.io.ingest import IngestOptions
from tasks.models.chosen import ChosenModels
from tasks.steps.base import StepSettings
from tasks.steps.sentences import MAX_MODEL_CHARS

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class InputConfig(BaseModel):
    """What to read and how to find each document's text, id and title."""

    model_config = _FROZEN

    path: Path = Field(Path("seeds"), description="A file or a folder (read recursively).")
    text_field: str = Field("text", min_length=1, description="JSONL field holding the text.")
    text_column: str = Field("text", min_length=1,
                             description="CSV/TSV/Parquet column holding the text.")
    id_field: str = Field("id", min_length=1, description="Field or column holding an id.")
    title_field: str = Field("title", min_length=1,
                             description="JSONL field or CSV/TSV/Parquet column with a title.")
    title_line: bool = Field(
        True, description=".txt files: a first line that reads as a headline (short, no "
                          "closing punctuation, then a blank line or a sentence) is the title.")
    limit: int | None = Field(None, ge=1, description="Stop after this many input documents.")
    non_english: Literal["keep", "reject"] = Field(
        "keep", description="Documents detected as not English (the models read English): "
                            "'keep' (flagged by the language column) or 'reject' "
                            "(a not_english reject).")


class ModelsConfig(BaseModel):
    """Which models run, on which backend, with which options."""

    model_config = _FROZEN

    summarizer: str = Field("extractive", description="Summariser name.")
    sentiment_model: str = Field("minilm-lora", description="Sentiment model name.")
    backend: Literal["torch", "onnx"] = Field(
        "onnx", description="Where the MiniLM encoder and the built-in LoRA sentiment model "
                            "run: 'onnx' (ONNX Runtime, int8 MatMuls; exported once per model "
                            "revision into $TEXTDIGEST_CACHE or ~/.cache/textdigest) or 'torch' "
                            "(fp32).")
    max_model_chars: int | None = Field(
        MAX_MODEL_CHARS, ge=1_000,
        description="The models read at most this many characters of one document (the text "
                    "column keeps all; a meta note says when it applies); None: no cap.")
    entities: bool = Field(
        True, description="Find the organisations, people and places each title and lead names, "
                          "and score the news for each (the entities column).")
    watchlist: Path | None = Field(
        None, description="A file of names always found by the entities step: one entity a "
                          "line, aliases separated by '|' (e.g. 'Tesco|Tesco plc|TSCO'), "
                          "matched case-insensitively as whole words, written under the first.")
    # Hugging Face models (a Hub id or a local folder as summarizer / sentiment_model).
    summarizer_revision: str | None = Field(
        None, min_length=1, description="Hub revision (branch, tag, commit) of the summariser.")
    sentiment_revision: str | None = Field(
        None, min_length=1, description="Hub revision of the sentiment model.")
    num_beams: int | None = Field(None, ge=1, le=64, description="Beam search width.")
    max_new_tokens: int | None = Field(None, ge=1, description="Longest summary, in tokens.")
    min_new_tokens: int | None = Field(None, ge=0, description="Shortest summary, in tokens.")
    no_repeat_ngram_size: int | None = Field(
        None, ge=0, description="No n-gram of this size repeats in a summary.")
    length_penalty: float | None = Field(
        None, description="Beam length penalty (> 1 favours longer summaries).")
    label_map: dict[str, Literal["negative", "neutral", "positive"]] | None = Field(
        None, description="Sentiment model label -> ours, e.g. 'LABEL_0=negative,"
                          "LABEL_1=positive' (overrides the automatic mapping).")
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="Weights dtype of Hugging Face models (bfloat16: faster on "
                               "CPUs with bf16 support).")
    model_batch_size: int | None = Field(
        None, ge=1, le=4096, description="Inputs (chunks, sentences) per forward or generate "
                                         "call of Hugging Face models (default 8 / 32).")

    @field_validator("watchlist")
    @classmethod
    def _readable_watchlist(cls, value: Path | None) -> Path | None:
        if value is not None:
            from tasks.steps.entities import WatchlistError, read_watchlist

            try:
                read_watchlist(value)
            except WatchlistError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("label_map", mode="before")
    @classmethod
    def _parse_label_map(cls, value: object) -> object:
        if isinstance(value, str):  # the command line's "A=negative,B=positive"
            from tasks.models.hf_sentiment import parse_label_map
            from tasks.models.registry import ModelError

            try:
                return dict(parse_label_map(value)) or None
            except ModelError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _hf_options_need_a_hf_model(self) -> ModelsConfig:
        from tasks.models.sentiment import BUILTIN_SENTIMENT
        from tasks.models.summarizers import BUILTIN_SUMMARIZERS

        if self.summarizer in BUILTIN_SUMMARIZERS and self.sentiment_model in BUILTIN_SENTIMENT:
            if self.dtype != "float32":
                raise ValueError("dtype applies to Hugging Face models; both models are built in")
            if self.model_batch_size is not None:
                raise ValueError("model_batch_size applies to Hugging Face models; both models "
                                 "are built in")
        return self

    def names(self) -> ChosenModels:
        """The models by name with their options: what every process loads its own of."""
        from tasks.models.sentiment import BUILTIN_SENTIMENT
        from tasks.models.summarizers import BUILTIN_SUMMARIZERS

        summarizer = {"revision": self.summarizer_revision, "num_beams": self.num_beams,
                      "max_new_tokens": self.max_new_tokens,
                      "min_new_tokens": self.min_new_tokens,
                      "no_repeat_ngram_size": self.no_repeat_ngram_size,
                      "length_penalty": self.length_penalty}
        sentiment = {"revision": self.sentiment_revision,
                     "label_map": tuple(sorted(self.label_map.items())) if self.label_map
                     else None}
        # dtype is a choice for Hugging Face models; built-ins refuse any option they lack.
        if self.summarizer not in BUILTIN_SUMMARIZERS:
            summarizer.update(dtype=self.dtype, batch_size=self.model_batch_size)
        if self.sentiment_model not in BUILTIN_SENTIMENT:
            sentiment.update(dtype=self.dtype, batch_size=self.model_batch_size)
        return ChosenModels(
            summarizer=self.summarizer, sentiment=self.sentiment_model,
            summarizer_options=tuple(sorted((k, v) for k, v in summarizer.items()
                                            if v is not None)),
            sentiment_options=tuple(sorted((k, v) for k, v in sentiment.items()
                                           if v is not None)),
            backend=self.backend)


class RuntimeConfig(BaseModel):
    """How the work is cut and where it runs."""

    model_config = _FROZEN

    batch_size: int = Field(256, ge=1, le=100_000, description="Most documents per batch task.")
    batch_chars: int | None = Field(
        250_000, ge=1,
        description="Also close a batch once its documents hold this many characters of raw "
                    "text (a few dozen articles, or hundreds of short texts); None: no limit.")
    max_in_flight: int = Field(2, ge=1, le=64,
                               description="Batches processed ahead of the writer.")
    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="Where batch tasks run: a thread pool, or a Dask cluster.")
    dask_address: str | None = Field(
        None, min_length=1,
        description="Scheduler of an existing Dask cluster (tcp://HOST:PORT); else a "
                    "LocalCluster is started for the run.")
    dask_workers: int | None = Field(
        None, ge=1, le=1024, description="Worker processes of the LocalCluster (default: "
                                         "Dask's choice from the CPU count).")
    torch_threads: int | None = Field(
        None, ge=1, le=512, description="Threads for model work in the flow process: torch's "
                                        "intra-op threads and the sentences ONNX Runtime runs at "
                                        "once (default: one per core). Dask workers use one.")
    show_progress: bool = Field(True, description="Draw a progress bar on the terminal.")

    @model_validator(mode="after")
    def _dask_options_need_dask(self) -> RuntimeConfig:
        if self.task_runner != "dask" and (self.dask_address or self.dask_workers):
            raise ValueError("dask_address and dask_workers need task_runner 'dask'")
        if self.dask_address and self.dask_workers:
            raise ValueError("dask_workers sizes a LocalCluster; not with dask_address")
        return self


class OutputConfig(BaseModel):
    """The dataset written, its checks and what is written besides the shards."""

    model_config = _FROZEN

    path: Path = Field(Path("data"), description="The dataset folder to write.")
    shard_rows: int = Field(10_000, ge=1, description="Most rows in one Parquet shard.")
    near_dup_threshold: float | None = Field(
        0.8, gt=0.0, le=1.0,
        description="Flag documents whose MinHash Jaccard similarity (word 5-grams) to an "
                    "earlier one reaches this, in `duplicate_of`; None or 0 disables.")
    max_reject_ratio: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Fail the run when more than this share of the documents read is rejected.")
    report: bool = Field(False, description="Write OUTPUT/report.html (plots, key figures) at "
                                            "the end of the run and link it as an artifact.")
    wait_s: float | None = Field(
        None, ge=0.0,
        description="When another run is writing the output, wait this many seconds for it "
                    "to finish (then skip what it wrote); None: refuse at once "
                    "(tasks.io.output_lock).")

    @field_validator("near_dup_threshold", mode="before")
    @classmethod
    def _zero_disables(cls, value):
        return None if value == 0 else value  # as on the command line: 0 turns it off


class ChainedPublishConfig(BaseModel):
    """Publish the output after each completed run (scheduled runs keep their dataset current)."""

    model_config = _FROZEN

    repo_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$",
        description="After a completed run, publish the output to this Hugging Face dataset "
                    "(ORG/NAME) with the `publish` flow (token: HF_TOKEN).")
    dry_run: bool = Field(
        False, description="With repo_id: stage, write the card and validate, but send nothing.")
    branch: str = Field("main", min_length=1,
                        description="With repo_id: the branch to commit to.")
    license: str | None = Field(
        None, description="With repo_id: the card's licence id (default: `other`, see "
                          "`textdigest publish --help`).")
    private: bool = Field(False, description="With repo_id: create the repo private (if it is "
                                             "created).")


GROUPS: dict[str, type[BaseModel]] = {
    "input": InputConfig, "models": ModelsConfig, "runtime": RuntimeConfig,
    "output": OutputConfig, "publish": ChainedPublishConfig,
}
# Flat name (command-line option, flat mapping) -> (group, field).
FLAT: dict[str, tuple[str, str]] = {
    **{name: (group, name) for group, model in GROUPS.items() for name in model.model_fields
       if name != "path" and group != "publish"},
    "input": ("input", "path"), "output": ("output", "path"),
    **{f"publish_{name}": ("publish", name) for name in ChainedPublishConfig.model_fields},
}


def nest(values: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Flat names into their groups, on top of `base` (a nested dump); groups pass through."""
    out: dict[str, Any] = {group: dict((base or {}).get(group) or {}) for group in GROUPS}
    for key, value in values.items():
        if key in GROUPS and isinstance(value, dict | BaseModel):
            fields = value.model_dump() if isinstance(value, BaseModel) else value
            out[key].update(fields)
        elif key in FLAT:
            group, name = FLAT[key]
            out[group][name] = value
        else:
            out.setdefault("_unknown", {})[key] = value
    unknown = out.pop("_unknown", None)
    if unknown:  # let pydantic name them (extra="forbid")
        out.update(unknown)
    return out


class DigestConfig(BaseModel):
    """Everything a digest run depends on. The CLI, the flow and deployments share it."""

    model_config = _FROZEN

    input: InputConfig = Field(default_factory=InputConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    publish: ChainedPublishConfig = Field(default_factory=ChainedPublishConfig)

    @model_validator(mode="before")
    @classmethod
    def _accept_flat_names(cls, values: Any) -> Any:
        if isinstance(values, dict) and any(
                k in FLAT and not (k in GROUPS and isinstance(v, dict | BaseModel))
                for k, v in values.items()):
            return nest(values)
        return values

    def updated(self, **flat: Any) -> DigestConfig:
        """A validated copy with some fields changed, by their flat (command-line) names."""
        return DigestConfig.model_validate(nest(flat, self.model_dump()))

    def ingest_options(self) -> IngestOptions:
        i = self.input
        return IngestOptions(text_field=i.text_field, text_column=i.text_column,
                             id_field=i.id_field, title_field=i.title_field,
                             title_line=i.title_line)

    def model_names(self) -> ChosenModels:
        return self.models.names()

    def step_settings(self) -> StepSettings:
        """What the steps read from this config (sent to workers with every batch)."""
        return StepSettings(models=self.models.names(),
                            max_model_chars=self.models.max_model_chars,
                            non_english=self.input.non_english,
                            near_duplicates=self.output.near_dup_threshold is not None,
                            entities=self.models.entities,
                            watchlist=self._watchlist())

    def _watchlist(self) -> tuple[tuple[str, ...], ...]:
        from tasks.steps.entities import read_watchlist

        path = self.models.watchlist
        return read_watchlist(path) if path is not None and self.models.entities else ()
