"""Resumable chunked uploads: create a session, send chunks (any order, in parallel), complete or abort.

Chunks go through the API (`PUT .../chunk/{index}`) or, when the session's mode is "direct" (S3 storage), straight
to S3: `POST .../chunk/{index}/url` hands out a short-lived presigned URL, the client PUTs the bytes there and
reports the part with `POST .../chunk/{index}/done`.
"""

from fastapi import APIRouter, Depends, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import IdPath, IndexPath, SessionDep, SettingsDep, StoreDep, require
from app.api.schemas import DatasetVersionDetail
from app.api.schemas_upload import PartReport, PartUrlCreate, PartUrlPublic, UploadCreate, UploadPublic
from app.contracts.status import UploadStatus
from app.db.models import User
from app.db.session import session_scope
from app.services.data import datasets, upload_complete, upload_parts, uploads

router = APIRouter(prefix="/dataset/{dataset_id}/upload", tags=["uploads"])


def _public(session: SessionDep, user: User, dataset_id: int, upload_id: str) -> UploadPublic:
    upload = uploads.get_session(session, user=user, upload_id=upload_id, dataset_id=dataset_id)
    public = UploadPublic.model_validate(upload)
    public.received = uploads.received(session, upload_id)
    if upload.status == UploadStatus.OPEN:
        public.content_known = uploads.known_content(session, user=user, upload=upload) is not None
    return public


@router.post("", response_model=UploadPublic, status_code=201)
def create_upload(
    dataset_id: IdPath,
    body: UploadCreate,
    settings: SettingsDep,
    store: StoreDep,
    user: User = Depends(require("dataset:upload")),
) -> UploadPublic:
    """Opens a session; the same file declared again returns the open session, with the chunks it already has.
    Its `mode` says where the chunks go: through the API, or direct to S3."""
    upload_id = uploads.create_session(
        settings,
        store=store,
        mode=body.mode,
        user=user,
        dataset_id=dataset_id,
        file_name=body.file_name,
        size_bytes=body.size_bytes,
        sha256=body.sha256,
        chunk_size=body.chunk_size,
    )
    with session_scope(settings.database_url) as session:
        return _public(session, user, dataset_id, upload_id)


@router.get("/{upload_id}", response_model=UploadPublic)
def get_upload(
    dataset_id: IdPath, upload_id: str, session: SessionDep, user: User = Depends(require("dataset:upload"))
) -> UploadPublic:
    return _public(session, user, dataset_id, upload_id)


@router.put("/{upload_id}/chunk/{index}", status_code=204)
async def put_chunk(
    dataset_id: IdPath,
    upload_id: str,
    index: IndexPath,
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    x_chunk_sha256: str = Header(description="sha256 of this chunk's bytes, hex."),
    user: User = Depends(require("dataset:upload")),
) -> Response:
    request.state.audit = False  # the session's create and complete are audited, not each of its chunks
    data = await request.body()  # at most AIP_UPLOAD_MAX_CHUNK_BYTES: the body limit refuses more while reading
    await run_in_threadpool(
        lambda: upload_parts.put_chunk(
            settings,
            store,
            user=user,
            dataset_id=dataset_id,
            upload_id=upload_id,
            index=index,
            data=data,
            sha256=x_chunk_sha256,
        )
    )
    return Response(status_code=204)


@router.post("/{upload_id}/chunk/{index}/url", response_model=PartUrlPublic)
def part_url(
    dataset_id: IdPath,
    upload_id: str,
    index: IndexPath,
    body: PartUrlCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    user: User = Depends(require("dataset:upload")),
) -> PartUrlPublic:
    """A direct session's presigned URL for one chunk: PUT exactly the chunk's bytes there, with `headers`."""
    request.state.audit = False  # per chunk, like the chunks themselves
    request_url = upload_parts.part_url(
        session, settings, store, user=user, dataset_id=dataset_id, upload_id=upload_id, index=index, sha256=body.sha256
    )
    return PartUrlPublic.model_validate(request_url)


@router.post("/{upload_id}/chunk/{index}/done", status_code=204)
def report_part(
    dataset_id: IdPath,
    upload_id: str,
    index: IndexPath,
    body: PartReport,
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    user: User = Depends(require("dataset:upload")),
) -> Response:
    """Records a chunk PUT to S3: the platform checks the part's size and ETag with S3 first."""
    request.state.audit = False  # like chunks through the API: the session's create and complete are audited
    upload_parts.report_part(
        settings,
        store,
        user=user,
        dataset_id=dataset_id,
        upload_id=upload_id,
        index=index,
        size_bytes=body.size_bytes,
        sha256=body.sha256,
        etag=body.etag,
    )
    return Response(status_code=204)


@router.post("/{upload_id}/complete", response_model=DatasetVersionDetail, status_code=201)
async def complete_upload(
    dataset_id: IdPath,
    upload_id: str,
    settings: SettingsDep,
    store: StoreDep,
    user: User = Depends(require("dataset:upload")),
) -> DatasetVersionDetail:
    def complete() -> DatasetVersionDetail:  # reads, verifies and records the file: blocking, so in a thread
        version_id = upload_complete.complete(settings, store, user=user, dataset_id=dataset_id, upload_id=upload_id)
        with session_scope(settings.database_url) as session:
            return DatasetVersionDetail.model_validate(datasets.get_version(session, user=user, version_id=version_id))

    return await run_in_threadpool(complete)


@router.delete("/{upload_id}", status_code=204)
def abort_upload(
    dataset_id: IdPath,
    upload_id: str,
    settings: SettingsDep,
    store: StoreDep,
    user: User = Depends(require("dataset:upload")),
) -> Response:
    uploads.abort(settings, store, user=user, dataset_id=dataset_id, upload_id=upload_id)
    return Response(status_code=204)
