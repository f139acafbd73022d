from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from app.api.deps import IdPath, PageDep, SessionDep, SettingsDep, StoreDep, require
from app.api.routes.training import resolve_version_id
from app.api.schemas import Page, TrialPublic, TuneCreate, TuneRunPublic
from app.contracts.status import JobStatus
from app.db.models import TuningRun, User
from app.db.session import session_scope
from app.services.data import datasets
from app.services.training import tuning

router = APIRouter(prefix="/training/tune", tags=["tuning"])


def _public(session: SessionDep, row: TuningRun, *, detail: bool = True) -> TuneRunPublic:
    public = TuneRunPublic.model_validate(row)
    if detail:
        public.trials = [TrialPublic.model_validate(t) for t in tuning.trials(session, row.id)]
    return public


@router.post("", response_model=TuneRunPublic, status_code=202)
def create_run(
    body: TuneCreate, settings: SettingsDep, store: StoreDep, user: User = Depends(require("training:tune:create"))
) -> TuneRunPublic:
    with session_scope(settings.database_url) as session:
        version_id = resolve_version_id(session, user, body.dataset_id, body.dataset_version_id)
        dataset_name = datasets.get_version(session, user=user, version_id=version_id).dataset.name
    spec = tuning.TuneSpec(
        name=body.name or f"{dataset_name}-{body.template}-tuned".replace(" ", "-"),
        dataset_version_id=version_id,
        template=body.template,
        config=body.train_config(),
        search=body.search,
        priority=body.priority,
    )
    run_id = tuning.create_run(settings, store, user=user, spec=spec)
    with session_scope(settings.database_url) as session:
        return _public(session, tuning.get_run(session, user=user, run_id=run_id))


@router.get("", response_model=Page[TuneRunPublic])
def list_runs(
    session: SessionDep,
    page: PageDep,
    status: JobStatus | None = None,
    user: User = Depends(require("training:tune:list")),
) -> object:
    """Newest first; sorts: id, name, created_at, status. Without trials (see a run)."""
    return tuning.list_runs(session, user=user, request=page, status=status)


@router.get("/{run_id}", response_model=TuneRunPublic)
def get_run(run_id: IdPath, session: SessionDep, user: User = Depends(require("training:tune:query"))) -> TuneRunPublic:
    return _public(session, tuning.get_run(session, user=user, run_id=run_id))


@router.post("/{run_id}/stop", response_model=TuneRunPublic)
def stop_run(
    run_id: IdPath, session: SessionDep, settings: SettingsDep, user: User = Depends(require("training:tune:stop"))
) -> TuneRunPublic:
    return _public(session, tuning.stop_run(settings, session, user=user, run_id=run_id))


@router.get("/{run_id}/logs", response_class=PlainTextResponse)
def get_logs(
    run_id: IdPath,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    user: User = Depends(require("training:tune:query")),
) -> str:
    return tuning.run_logs(settings, store, tuning.get_run(session, user=user, run_id=run_id))
