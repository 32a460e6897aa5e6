import datetime

from glimpse.data.v1 import collection_pb2 as _collection_pb2
from glimpse.data.v1 import dataset_pb2 as _dataset_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATE_UNSPECIFIED: _ClassVar[ModelState]
    MODEL_STATE_NO_MODEL: _ClassVar[ModelState]
    MODEL_STATE_LOADING: _ClassVar[ModelState]
    MODEL_STATE_SERVING: _ClassVar[ModelState]
    MODEL_STATE_FAILED: _ClassVar[ModelState]

class IndexBuildState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_BUILD_STATE_UNSPECIFIED: _ClassVar[IndexBuildState]
    INDEX_BUILD_STATE_RUNNING: _ClassVar[IndexBuildState]
    INDEX_BUILD_STATE_SUCCEEDED: _ClassVar[IndexBuildState]
    INDEX_BUILD_STATE_FAILED: _ClassVar[IndexBuildState]
    INDEX_BUILD_STATE_CANCELLED: _ClassVar[IndexBuildState]
MODEL_STATE_UNSPECIFIED: ModelState
MODEL_STATE_NO_MODEL: ModelState
MODEL_STATE_LOADING: ModelState
MODEL_STATE_SERVING: ModelState
MODEL_STATE_FAILED: ModelState
INDEX_BUILD_STATE_UNSPECIFIED: IndexBuildState
INDEX_BUILD_STATE_RUNNING: IndexBuildState
INDEX_BUILD_STATE_SUCCEEDED: IndexBuildState
INDEX_BUILD_STATE_FAILED: IndexBuildState
INDEX_BUILD_STATE_CANCELLED: IndexBuildState

class Scope(_message.Message):
    __slots__ = ("dataset_version", "split")
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    dataset_version: str
    split: _dataset_pb2.Split
    def __init__(self, dataset_version: _Optional[str] = ..., split: _Optional[_Union[_dataset_pb2.Split, str]] = ...) -> None: ...

class ImageHit(_message.Message):
    __slots__ = ("image_id", "score", "rank", "split", "captions", "image_url", "rank_score")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    RANK_SCORE_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    score: float
    rank: int
    split: _dataset_pb2.Split
    captions: _containers.RepeatedScalarFieldContainer[str]
    image_url: str
    rank_score: float
    def __init__(self, image_id: _Optional[str] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ..., split: _Optional[_Union[_dataset_pb2.Split, str]] = ..., captions: _Optional[_Iterable[str]] = ..., image_url: _Optional[str] = ..., rank_score: _Optional[float] = ...) -> None: ...

class CaptionHit(_message.Message):
    __slots__ = ("caption_id", "image_id", "text", "score", "rank", "rank_score")
    CAPTION_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    RANK_SCORE_FIELD_NUMBER: _ClassVar[int]
    caption_id: str
    image_id: str
    text: str
    score: float
    rank: int
    rank_score: float
    def __init__(self, caption_id: _Optional[str] = ..., image_id: _Optional[str] = ..., text: _Optional[str] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ..., rank_score: _Optional[float] = ...) -> None: ...

class SearchImagesRequest(_message.Message):
    __slots__ = ("query", "top_k", "scope")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    query: str
    top_k: int
    scope: Scope
    def __init__(self, query: _Optional[str] = ..., top_k: _Optional[int] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ...) -> None: ...

class SearchImagesResponse(_message.Message):
    __slots__ = ("results", "model_version", "dataset_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ImageHit]
    model_version: str
    dataset_version: str
    def __init__(self, results: _Optional[_Iterable[_Union[ImageHit, _Mapping]]] = ..., model_version: _Optional[str] = ..., dataset_version: _Optional[str] = ...) -> None: ...

class SearchCaptionsRequest(_message.Message):
    __slots__ = ("image_id", "image_bytes", "top_k", "scope")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    image_bytes: bytes
    top_k: int
    scope: Scope
    def __init__(self, image_id: _Optional[str] = ..., image_bytes: _Optional[bytes] = ..., top_k: _Optional[int] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ...) -> None: ...

class SearchCaptionsResponse(_message.Message):
    __slots__ = ("results", "model_version", "dataset_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CaptionHit]
    model_version: str
    dataset_version: str
    def __init__(self, results: _Optional[_Iterable[_Union[CaptionHit, _Mapping]]] = ..., model_version: _Optional[str] = ..., dataset_version: _Optional[str] = ...) -> None: ...

class BatchSearchImagesRequest(_message.Message):
    __slots__ = ("queries", "top_k", "scope")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedScalarFieldContainer[str]
    top_k: int
    scope: Scope
    def __init__(self, queries: _Optional[_Iterable[str]] = ..., top_k: _Optional[int] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ...) -> None: ...

class QueryResult(_message.Message):
    __slots__ = ("query", "results")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    query: str
    results: _containers.RepeatedCompositeFieldContainer[ImageHit]
    def __init__(self, query: _Optional[str] = ..., results: _Optional[_Iterable[_Union[ImageHit, _Mapping]]] = ...) -> None: ...

class BatchSearchImagesResponse(_message.Message):
    __slots__ = ("results", "model_version", "dataset_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[QueryResult]
    model_version: str
    dataset_version: str
    def __init__(self, results: _Optional[_Iterable[_Union[QueryResult, _Mapping]]] = ..., model_version: _Optional[str] = ..., dataset_version: _Optional[str] = ...) -> None: ...

class RankCandidatesRequest(_message.Message):
    __slots__ = ("text", "image_id", "image_bytes", "candidate_image_ids", "candidate_texts", "scope")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_IMAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_TEXTS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    text: str
    image_id: str
    image_bytes: bytes
    candidate_image_ids: _containers.RepeatedScalarFieldContainer[str]
    candidate_texts: _containers.RepeatedScalarFieldContainer[str]
    scope: Scope
    def __init__(self, text: _Optional[str] = ..., image_id: _Optional[str] = ..., image_bytes: _Optional[bytes] = ..., candidate_image_ids: _Optional[_Iterable[str]] = ..., candidate_texts: _Optional[_Iterable[str]] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ...) -> None: ...

class ScoredCandidate(_message.Message):
    __slots__ = ("index", "candidate", "score", "rank")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    index: int
    candidate: str
    score: float
    rank: int
    def __init__(self, index: _Optional[int] = ..., candidate: _Optional[str] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ...) -> None: ...

class RankCandidatesResponse(_message.Message):
    __slots__ = ("results", "model_version", "dataset_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoredCandidate]
    model_version: str
    dataset_version: str
    def __init__(self, results: _Optional[_Iterable[_Union[ScoredCandidate, _Mapping]]] = ..., model_version: _Optional[str] = ..., dataset_version: _Optional[str] = ...) -> None: ...

class RankUploadedImageRequest(_message.Message):
    __slots__ = ("image", "top_k_captions", "top_k_images", "scope")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_IMAGES_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    top_k_captions: int
    top_k_images: int
    scope: Scope
    def __init__(self, image: _Optional[bytes] = ..., top_k_captions: _Optional[int] = ..., top_k_images: _Optional[int] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ...) -> None: ...

class RankUploadedImageResponse(_message.Message):
    __slots__ = ("captions", "similar_images", "model_version", "dataset_version", "width", "height")
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_IMAGES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    captions: _containers.RepeatedCompositeFieldContainer[CaptionHit]
    similar_images: _containers.RepeatedCompositeFieldContainer[ImageHit]
    model_version: str
    dataset_version: str
    width: int
    height: int
    def __init__(self, captions: _Optional[_Iterable[_Union[CaptionHit, _Mapping]]] = ..., similar_images: _Optional[_Iterable[_Union[ImageHit, _Mapping]]] = ..., model_version: _Optional[str] = ..., dataset_version: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("version", "backbone", "embedding_dim", "dataset_version", "created_at", "metrics", "git_commit", "training_run_id", "config_json", "production", "create_time")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKBONE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    GIT_COMMIT_FIELD_NUMBER: _ClassVar[int]
    TRAINING_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    version: str
    backbone: str
    embedding_dim: int
    dataset_version: str
    created_at: _timestamp_pb2.Timestamp
    metrics: _containers.ScalarMap[str, float]
    git_commit: str
    training_run_id: str
    config_json: str
    production: bool
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[str] = ..., backbone: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., dataset_version: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., git_commit: _Optional[str] = ..., training_run_id: _Optional[str] = ..., config_json: _Optional[str] = ..., production: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class IndexInfo(_message.Message):
    __slots__ = ("model_version", "dataset_version", "images", "captions", "kind", "built_at", "build_time")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BUILT_AT_FIELD_NUMBER: _ClassVar[int]
    BUILD_TIME_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    dataset_version: str
    images: int
    captions: int
    kind: str
    built_at: _timestamp_pb2.Timestamp
    build_time: _timestamp_pb2.Timestamp
    def __init__(self, model_version: _Optional[str] = ..., dataset_version: _Optional[str] = ..., images: _Optional[int] = ..., captions: _Optional[int] = ..., kind: _Optional[str] = ..., built_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., build_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetModelStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetModelStatusResponse(_message.Message):
    __slots__ = ("state", "serving_version", "loading_version", "last_error", "loaded_at", "index", "production_version", "pending_index", "previous_production_versions", "load_time")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SERVING_VERSION_FIELD_NUMBER: _ClassVar[int]
    LOADING_VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    PENDING_INDEX_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_PRODUCTION_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    LOAD_TIME_FIELD_NUMBER: _ClassVar[int]
    state: ModelState
    serving_version: str
    loading_version: str
    last_error: str
    loaded_at: _timestamp_pb2.Timestamp
    index: IndexInfo
    production_version: str
    pending_index: IndexBuild
    previous_production_versions: _containers.RepeatedScalarFieldContainer[str]
    load_time: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[ModelState, str]] = ..., serving_version: _Optional[str] = ..., loading_version: _Optional[str] = ..., last_error: _Optional[str] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., index: _Optional[_Union[IndexInfo, _Mapping]] = ..., production_version: _Optional[str] = ..., pending_index: _Optional[_Union[IndexBuild, _Mapping]] = ..., previous_production_versions: _Optional[_Iterable[str]] = ..., load_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IndexBuild(_message.Message):
    __slots__ = ("name", "model_version", "dataset", "dataset_version", "kind", "force", "executor", "job", "detail", "failed", "state", "stage", "done", "total", "index", "create_time", "end_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_version: str
    dataset: str
    dataset_version: str
    kind: str
    force: bool
    executor: str
    job: str
    detail: str
    failed: bool
    state: IndexBuildState
    stage: str
    done: int
    total: int
    index: IndexInfo
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., model_version: _Optional[str] = ..., dataset: _Optional[str] = ..., dataset_version: _Optional[str] = ..., kind: _Optional[str] = ..., force: _Optional[bool] = ..., executor: _Optional[str] = ..., job: _Optional[str] = ..., detail: _Optional[str] = ..., failed: _Optional[bool] = ..., state: _Optional[_Union[IndexBuildState, str]] = ..., stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., index: _Optional[_Union[IndexInfo, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateIndexBuildRequest(_message.Message):
    __slots__ = ("index_build",)
    INDEX_BUILD_FIELD_NUMBER: _ClassVar[int]
    index_build: IndexBuild
    def __init__(self, index_build: _Optional[_Union[IndexBuild, _Mapping]] = ...) -> None: ...

class CreateIndexBuildResponse(_message.Message):
    __slots__ = ("index_build",)
    INDEX_BUILD_FIELD_NUMBER: _ClassVar[int]
    index_build: IndexBuild
    def __init__(self, index_build: _Optional[_Union[IndexBuild, _Mapping]] = ...) -> None: ...

class GetIndexBuildRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetIndexBuildResponse(_message.Message):
    __slots__ = ("index_build",)
    INDEX_BUILD_FIELD_NUMBER: _ClassVar[int]
    index_build: IndexBuild
    def __init__(self, index_build: _Optional[_Union[IndexBuild, _Mapping]] = ...) -> None: ...

class WatchIndexBuildRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchIndexBuildResponse(_message.Message):
    __slots__ = ("index_build",)
    INDEX_BUILD_FIELD_NUMBER: _ClassVar[int]
    index_build: IndexBuild
    def __init__(self, index_build: _Optional[_Union[IndexBuild, _Mapping]] = ...) -> None: ...

class CancelIndexBuildRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelIndexBuildResponse(_message.Message):
    __slots__ = ("index_build",)
    INDEX_BUILD_FIELD_NUMBER: _ClassVar[int]
    index_build: IndexBuild
    def __init__(self, index_build: _Optional[_Union[IndexBuild, _Mapping]] = ...) -> None: ...

class ListModelVersionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelVersionsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PromoteModelRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class PromoteModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ...) -> None: ...

class BuildIndexRequest(_message.Message):
    __slots__ = ("model_version", "dataset_version", "kind", "force")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    dataset_version: str
    kind: str
    force: bool
    def __init__(self, model_version: _Optional[str] = ..., dataset_version: _Optional[str] = ..., kind: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class BuildIndexResponse(_message.Message):
    __slots__ = ("stage", "done", "total", "index")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    stage: str
    done: int
    total: int
    index: IndexInfo
    def __init__(self, stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., index: _Optional[_Union[IndexInfo, _Mapping]] = ...) -> None: ...

class ListDemoQueriesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDemoQueriesResponse(_message.Message):
    __slots__ = ("queries",)
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, queries: _Optional[_Iterable[str]] = ...) -> None: ...

class DemoSearchRequest(_message.Message):
    __slots__ = ("query", "top_k")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    query: str
    top_k: int
    def __init__(self, query: _Optional[str] = ..., top_k: _Optional[int] = ...) -> None: ...

class DemoSearchResponse(_message.Message):
    __slots__ = ("results", "model_version", "dataset_version", "query")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ImageHit]
    model_version: str
    dataset_version: str
    query: str
    def __init__(self, results: _Optional[_Iterable[_Union[ImageHit, _Mapping]]] = ..., model_version: _Optional[str] = ..., dataset_version: _Optional[str] = ..., query: _Optional[str] = ...) -> None: ...

class SearchCollectionRequest(_message.Message):
    __slots__ = ("name", "text", "image", "photo_id", "top_k", "filter", "min_score")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    PHOTO_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    name: str
    text: str
    image: bytes
    photo_id: str
    top_k: int
    filter: PhotoFilter
    min_score: float
    def __init__(self, name: _Optional[str] = ..., text: _Optional[str] = ..., image: _Optional[bytes] = ..., photo_id: _Optional[str] = ..., top_k: _Optional[int] = ..., filter: _Optional[_Union[PhotoFilter, _Mapping]] = ..., min_score: _Optional[float] = ...) -> None: ...

class PhotoFilter(_message.Message):
    __slots__ = ("taken_after", "taken_before", "path_prefix", "camera_model")
    TAKEN_AFTER_FIELD_NUMBER: _ClassVar[int]
    TAKEN_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PATH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    CAMERA_MODEL_FIELD_NUMBER: _ClassVar[int]
    taken_after: _timestamp_pb2.Timestamp
    taken_before: _timestamp_pb2.Timestamp
    path_prefix: str
    camera_model: str
    def __init__(self, taken_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., taken_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., path_prefix: _Optional[str] = ..., camera_model: _Optional[str] = ...) -> None: ...

class PhotoHit(_message.Message):
    __slots__ = ("photo_id", "path", "score", "rank", "thumbnail_url", "width", "height", "taken_time", "camera_model")
    PHOTO_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_URL_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TAKEN_TIME_FIELD_NUMBER: _ClassVar[int]
    CAMERA_MODEL_FIELD_NUMBER: _ClassVar[int]
    photo_id: str
    path: str
    score: float
    rank: int
    thumbnail_url: str
    width: int
    height: int
    taken_time: _timestamp_pb2.Timestamp
    camera_model: str
    def __init__(self, photo_id: _Optional[str] = ..., path: _Optional[str] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ..., thumbnail_url: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., taken_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., camera_model: _Optional[str] = ...) -> None: ...

class SearchCollectionResponse(_message.Message):
    __slots__ = ("results", "model_version", "collection_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PhotoHit]
    model_version: str
    collection_version: str
    def __init__(self, results: _Optional[_Iterable[_Union[PhotoHit, _Mapping]]] = ..., model_version: _Optional[str] = ..., collection_version: _Optional[str] = ...) -> None: ...

class ListCollectionDuplicatesRequest(_message.Message):
    __slots__ = ("parent",)
    PARENT_FIELD_NUMBER: _ClassVar[int]
    parent: str
    def __init__(self, parent: _Optional[str] = ...) -> None: ...

class ListCollectionDuplicatesResponse(_message.Message):
    __slots__ = ("groups", "near_threshold", "collection_version", "model_version")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEAR_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[_collection_pb2.DuplicateGroup]
    near_threshold: float
    collection_version: str
    model_version: str
    def __init__(self, groups: _Optional[_Iterable[_Union[_collection_pb2.DuplicateGroup, _Mapping]]] = ..., near_threshold: _Optional[float] = ..., collection_version: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...

class GetCollectionIndexRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCollectionIndexResponse(_message.Message):
    __slots__ = ("serving_version", "model_version", "near_duplicates", "pending")
    SERVING_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    serving_version: str
    model_version: str
    near_duplicates: int
    pending: IndexBuild
    def __init__(self, serving_version: _Optional[str] = ..., model_version: _Optional[str] = ..., near_duplicates: _Optional[int] = ..., pending: _Optional[_Union[IndexBuild, _Mapping]] = ...) -> None: ...
