"""Request and response bodies of resumable uploads (through the API, or direct to S3 with presigned part URLs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import Public, UtcDatetime


class UploadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file_name: str = Field(min_length=1, max_length=255)
    size_bytes: int = Field(ge=0, description="Size of the whole file in bytes.")
    sha256: str = Field(description="sha256 of the whole file, hex.")
    chunk_size: int = Field(gt=0, description="Bytes per chunk; the last chunk holds the rest.")
    mode: Literal["auto", "api", "direct"] = Field(
        default="auto",
        description="direct: send parts straight to S3 with presigned URLs (S3 storage, chunks >= 5 MiB); api: "
        "send them through the API; auto: direct where possible. The response's `mode` says which one applies.",
    )


class UploadPublic(Public):
    id: str
    dataset_id: int
    file_name: str
    size_bytes: int
    sha256: str
    chunk_size: int
    num_chunks: int
    status: str
    message: str
    version_id: int | None
    mode: str = Field(description="api: PUT chunks to the API; direct: ask for part URLs and PUT chunks to S3.")
    received: list[int] = Field(default=[], description="Indexes of the chunks the server has.")
    content_known: bool = Field(default=False, description="The server has these bytes: complete without chunks.")
    created_at: UtcDatetime
    updated_at: UtcDatetime


class PartUrlCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(description="sha256 of this chunk's bytes, hex; S3 refuses other bytes.")


class PartUrlPublic(BaseModel):
    index: int
    url: str = Field(description="PUT the chunk's bytes here, with exactly `headers`.")
    headers: dict[str, str]
    expires_at: UtcDatetime


class PartReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size_bytes: int = Field(ge=0)
    sha256: str = Field(description="sha256 of the chunk, hex (the one its URL was signed for).")
    etag: str = Field(min_length=1, max_length=128, description="The ETag header S3 answered the PUT with.")
