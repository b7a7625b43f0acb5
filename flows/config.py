"""Typed configuration of a digest run: validated once, passed in, never read from globals."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tasks.ingest import IngestOptions
from tasks.steps import ModelNames


class DigestConfig(BaseModel):
    """Everything a digest run depends on. The CLI, the flow and deployments share it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: Path = Field(Path("seeds"), description="A file or a folder (read recursively).")
    output: Path = Field(Path("data"), description="The dataset folder to write.")
    summarizer: str = Field("extractive", description="Summariser name.")
    sentiment_model: str = Field("minilm-lora", description="Sentiment model name.")
    batch_size: int = Field(64, ge=1, le=100_000, description="Documents per batch task.")
    limit: int | None = Field(None, ge=1, description="Stop after this many input documents.")
    text_field: str = Field("text", min_length=1, description="JSONL field holding the text.")
    text_column: str = Field("text", min_length=1,
                             description="CSV/TSV/Parquet column holding the text.")
    id_field: str = Field("id", min_length=1, description="Field or column holding an id.")
    title_field: str = Field("title", min_length=1, description="Field or column with a title.")
    shard_rows: int = Field(10_000, ge=1, description="Most rows in one Parquet shard.")
    max_in_flight: int = Field(2, ge=1, le=64,
                               description="Batches processed ahead of the writer.")
    max_reject_ratio: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Fail the run when more than this share of the documents read is rejected.")
    show_progress: bool = Field(True, description="Draw a progress bar on the terminal.")

    def ingest_options(self) -> IngestOptions:
        return IngestOptions(text_field=self.text_field, text_column=self.text_column,
                             id_field=self.id_field, title_field=self.title_field)

    def model_names(self) -> ModelNames:
        return ModelNames(summarizer=self.summarizer, sentiment=self.sentiment_model)
