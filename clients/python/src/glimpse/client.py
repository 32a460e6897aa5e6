"""The small layer over the generated stubs: one connection to a Glimpse gateway (or a service),
the API key on every call, a deadline by default, UNAVAILABLE retried for the methods the proto
marks idempotent, and every error raised as GlimpseError with its gRPC code and the
google.rpc.BadRequest field violations.

    from glimpse import Glimpse
    with Glimpse("localhost:8000", api_key="...") as g:
        for hit in g.search_images("two kids on a beach at sunset", top_k=5):
            print(hit.rank, hit.image_id, round(hit.rank_score, 3))
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import grpc
from google.protobuf import descriptor, descriptor_pb2, message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from glimpse._version import __version__
from glimpse.data.v1 import collection_pb2, data_service_pb2, data_service_pb2_grpc
from glimpse.ranking.v1 import ranking_service_pb2, ranking_service_pb2_grpc
from glimpse.training.v1 import training_service_pb2, training_service_pb2_grpc



@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str
    reason: str


class GlimpseError(Exception):
    """A failed call: `code` (grpc.StatusCode), `message`, and for INVALID_ARGUMENT the refused fields."""

    def __init__(self, code: grpc.StatusCode, message: str, violations: list[FieldViolation]):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.violations = violations

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> "GlimpseError":
        call: Any = err
        violations: list[FieldViolation] = []
        status = rpc_status.from_call(call)
        for detail in status.details if status else []:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations]
        return cls(call.code(), call.details() or "", violations)


def _idempotent(method: descriptor.MethodDescriptor) -> bool:
    opts = descriptor_pb2.MethodOptions
    return method.GetOptions().idempotency_level in (opts.NO_SIDE_EFFECTS, opts.IDEMPOTENT)


def _resource_name(collection: str, run: str) -> str:
    """"tr-…" or "trainingRuns/tr-…" → "trainingRuns/tr-…" (collection "trainingRuns")."""
    return run if run.startswith(f"{collection}/") else f"{collection}/{run}"


def _run_name(run: str) -> str:
    return _resource_name("trainingRuns", run)


def _pipeline_run_name(run: str) -> str:
    return _resource_name("pipelineRuns", run)


def _target(url: str) -> tuple[str, bool]:
    """host:port and whether the URL asks for TLS ("https://"); a bare host:port is plaintext."""
    if url.startswith("https://"):
        return url[len("https://"):].rstrip("/"), True
    if url.startswith("http://"):
        return url[len("http://"):].rstrip("/"), False
    return url.rstrip("/"), False


class Glimpse:
    """A client of one Glimpse endpoint (the gateway: native gRPC on its port).

    url: "host:port", "http://host:port" or "https://host:port" (default GLIMPSE_URL, else
    localhost:8000). api_key: sent as "Authorization: Bearer <key>" (default GLIMPSE_API_KEY);
    writes need one when the deployment sets keys. tls: True for the system roots, the PEM bytes
    of a CA, or None to follow the URL's scheme. timeout: seconds per unary call (streams have
    none unless given). retries: attempts after the first for UNAVAILABLE on idempotent methods.
    """

    def __init__(self, url: str | None = None, *, api_key: str | None = None, tls: bool | bytes | None = None,
                 timeout: float = 30.0, retries: int = 3):
        target, https = _target(url or os.environ.get("GLIMPSE_URL") or "localhost:8000")
        key = api_key if api_key is not None else os.environ.get("GLIMPSE_API_KEY")
        # The client's release in every call's User-Agent, before grpc's own.
        options = [("grpc.primary_user_agent", f"glimpse-python/{__version__}")]
        if tls or (tls is None and https):
            creds = grpc.ssl_channel_credentials(root_certificates=tls if isinstance(tls, bytes) else None)
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._metadata = (("authorization", f"Bearer {key}"),) if key else ()
        self._timeout = timeout
        self._retries = retries
        self.ranking = ranking_service_pb2_grpc.RankingServiceStub(self._channel)
        self.training = training_service_pb2_grpc.TrainingServiceStub(self._channel)
        self.data = data_service_pb2_grpc.DataServiceStub(self._channel)

    # ---- plumbing ---------------------------------------------------------------------------

    def __enter__(self) -> "Glimpse":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def call(self, service: descriptor.ServiceDescriptor, stub: Any, name: str, request: message.Message,
             timeout: float | None = None) -> Any:
        """One unary call with the key, the deadline and the retries; raises GlimpseError."""
        method = service.methods_by_name[name]
        attempts = 1 + (self._retries if _idempotent(method) else 0)
        fn: Callable[..., Any] = getattr(stub, name)
        for attempt in range(attempts):
            try:
                return fn(request, timeout=timeout or self._timeout, metadata=self._metadata)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE or attempt == attempts - 1:  # type: ignore[attr-defined]
                    raise GlimpseError.from_rpc_error(err) from None
                time.sleep(min(0.2 * 2 ** attempt, 2.0))
        raise AssertionError("unreachable")

    def stream(self, stub: Any, name: str, request: message.Message, timeout: float | None = None) -> Iterator[Any]:
        """A server stream's messages; raises GlimpseError."""
        try:
            yield from getattr(stub, name)(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise GlimpseError.from_rpc_error(err) from None

    def _ranking(self, name: str, request: message.Message) -> Any:
        return self.call(ranking_service_pb2.DESCRIPTOR.services_by_name["RankingService"], self.ranking, name, request)

    def _training(self, name: str, request: message.Message) -> Any:
        return self.call(training_service_pb2.DESCRIPTOR.services_by_name["TrainingService"], self.training, name, request)

    def _data(self, name: str, request: message.Message) -> Any:
        return self.call(data_service_pb2.DESCRIPTOR.services_by_name["DataService"], self.data, name, request)

    @staticmethod
    def _pages(fetch: Callable[[str], Any], items: str) -> Iterator[Any]:
        token = ""
        while True:
            page = fetch(token)
            yield from getattr(page, items)
            token = page.next_page_token
            if not token:
                return

    # ---- search -----------------------------------------------------------------------------

    def search_images(self, query: str, top_k: int = 0, **scope: Any) -> list[Any]:
        """Gallery images for a text, best first (ImageHit: image_id, rank, rank_score — the score the
        order follows — and score, the cosine)."""
        req = ranking_service_pb2.SearchImagesRequest(query=query, top_k=top_k, scope=scope or None)
        return list(self._ranking("SearchImages", req).results)

    def search_captions(self, image: str | bytes | os.PathLike[str], top_k: int = 0) -> list[Any]:
        """Captions for a gallery image id, an image's bytes or a file path, best first."""
        if isinstance(image, (bytes, bytearray)):
            req = ranking_service_pb2.SearchCaptionsRequest(image_bytes=bytes(image), top_k=top_k)
        elif isinstance(image, os.PathLike) or (isinstance(image, str) and os.path.isfile(image)):
            with open(image, "rb") as f:
                req = ranking_service_pb2.SearchCaptionsRequest(image_bytes=f.read(), top_k=top_k)
        else:
            req = ranking_service_pb2.SearchCaptionsRequest(image_id=image, top_k=top_k)
        return list(self._ranking("SearchCaptions", req).results)

    def rank_candidates(self, query: str, candidate_image_ids: list[str] | None = None,
                        candidate_texts: list[str] | None = None) -> Any:
        """Ranks your own candidates (gallery image ids, or texts) against a text query."""
        req = ranking_service_pb2.RankCandidatesRequest(text=query, candidate_image_ids=candidate_image_ids or [],
                                                        candidate_texts=candidate_texts or [])
        return self._ranking("RankCandidates", req)

    # ---- models -----------------------------------------------------------------------------

    def model_info(self) -> Any:
        """The model serving now (ModelInfo: version, its test recall, ...)."""
        return self._ranking("GetModelInfo", ranking_service_pb2.GetModelInfoRequest()).model

    def list_models(self) -> Iterator[Any]:
        return self._pages(lambda t: self._ranking("ListModelVersions", ranking_service_pb2.ListModelVersionsRequest(page_token=t)), "models")

    def promote_model(self, version: str) -> Any:
        """Makes a registered model version production (a write key)."""
        return self._ranking("PromoteModel", ranking_service_pb2.PromoteModelRequest(version=version)).model

    # ---- training ---------------------------------------------------------------------------

    def start_training(self, **config: Any) -> Any:
        """Starts a run (CreateTrainingRun); config is TrainingConfig's fields (epochs=1, image_encoder=...,
        overrides={...}). The TrainingRun: its `name` ("trainingRuns/…") for the calls below."""
        run = training_service_pb2.TrainingRun(config=config or None)
        req = training_service_pb2.CreateTrainingRunRequest(training_run=run)
        return self._training("CreateTrainingRun", req).training_run

    def get_training_run(self, run: str) -> Any:
        """A run by name or id."""
        return self._training("GetTrainingRun", training_service_pb2.GetTrainingRunRequest(name=_run_name(run))).training_run

    def watch_training(self, run: str, timeout: float | None = None) -> Iterator[Any]:
        """A run's events until it ends (WatchTrainingRunResponse: training_run, event, message), by name or id."""
        req = training_service_pb2.WatchTrainingRunRequest(name=_run_name(run))
        return self.stream(self.training, "WatchTrainingRun", req, timeout)

    def list_training_runs(self) -> Iterator[Any]:
        return self._pages(lambda t: self._training("ListTrainingRuns", training_service_pb2.ListTrainingRunsRequest(page_token=t)), "runs")

    def cancel_training_run(self, run: str) -> Any:
        """Cancels a run (the last checkpoint is kept), by name or id."""
        return self._training("CancelTrainingRun", training_service_pb2.CancelTrainingRunRequest(name=_run_name(run))).training_run

    # ---- pipeline runs ----------------------------------------------------------------------

    def start_pipeline_run(self, **params: Any) -> Any:
        """Starts a dataset pipeline run (CreatePipelineRun); params is PipelineParams' fields
        (images_url=..., captions_url=...). The PipelineRun: its `name` ("pipelineRuns/…") for the calls below."""
        run = data_service_pb2.PipelineRun(params=params or None)
        return self._data("CreatePipelineRun", data_service_pb2.CreatePipelineRunRequest(pipeline_run=run)).pipeline_run

    def get_pipeline_run(self, run: str) -> Any:
        """A run by name or id."""
        return self._data("GetPipelineRun", data_service_pb2.GetPipelineRunRequest(name=_pipeline_run_name(run))).pipeline_run

    def watch_pipeline_run(self, run: str, timeout: float | None = None) -> Iterator[Any]:
        """A run's step-by-step progress until it ends (WatchPipelineRunResponse: pipeline_run, step, message)."""
        req = data_service_pb2.WatchPipelineRunRequest(name=_pipeline_run_name(run))
        return self.stream(self.data, "WatchPipelineRun", req, timeout)

    def list_pipeline_runs(self) -> Iterator[Any]:
        return self._pages(lambda t: self._data("ListPipelineRuns", data_service_pb2.ListPipelineRunsRequest(page_token=t)), "runs")

    def cancel_pipeline_run(self, run: str) -> Any:
        """Cancels a run by name or id; the published version stays as it was."""
        return self._data("CancelPipelineRun", data_service_pb2.CancelPipelineRunRequest(name=_pipeline_run_name(run))).pipeline_run

    # ---- collections (your own photos) ------------------------------------------------------

    def create_collection(self, collection_id: str, *, folder: str | None = None, urls: list[str] | None = None,
                          uploads: bool = False, watch: bool = False, display_name: str = "") -> Any:
        """A collection of a folder the Data service can read, a list of https URLs, or uploads."""
        source = collection_pb2.CollectionSource()
        if folder is not None:
            source.folder.path = folder
        elif urls is not None:
            source.urls.urls.extend(urls)
        elif uploads:
            source.uploads.SetInParent()
        coll = collection_pb2.Collection(display_name=display_name, source=source, watch=watch)
        return self._data("CreateCollection", data_service_pb2.CreateCollectionRequest(collection_id=collection_id, collection=coll)).collection

    def get_collection(self, collection_id: str) -> Any:
        return self._data("GetCollection", data_service_pb2.GetCollectionRequest(name=f"collections/{collection_id}")).collection

    def list_collections(self) -> Iterator[Any]:
        return self._pages(lambda t: self._data("ListCollections", data_service_pb2.ListCollectionsRequest(page_token=t)), "collections")

    def sync_collection(self, collection_id: str) -> Any:
        return self._data("SyncCollection", data_service_pb2.SyncCollectionRequest(name=f"collections/{collection_id}"))

    def watch_collection(self, collection_id: str, until_synced: bool = True, timeout: float | None = None) -> Iterator[Any]:
        """The collection as its sync goes (WatchCollectionResponse: collection), until it is synced."""
        req = data_service_pb2.WatchCollectionRequest(name=f"collections/{collection_id}", until_synced=until_synced)
        return self.stream(self.data, "WatchCollection", req, timeout)

    def delete_collection(self, collection_id: str) -> None:
        self._data("DeleteCollection", data_service_pb2.DeleteCollectionRequest(name=f"collections/{collection_id}"))

    def search_collection(self, collection_id: str, text: str = "", *, image: bytes | None = None, top_k: int = 0) -> list[Any]:
        """Photos of a collection for a text or an image's bytes, best first."""
        req = ranking_service_pb2.SearchCollectionRequest(name=f"collections/{collection_id}", top_k=top_k)
        if image is not None:
            req.image = image
        else:
            req.text = text
        return list(self._ranking("SearchCollection", req).results)
