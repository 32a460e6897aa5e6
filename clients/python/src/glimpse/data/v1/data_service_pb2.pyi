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

class DatasetSize(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_SIZE_UNSPECIFIED: _ClassVar[DatasetSize]
    DATASET_SIZE_FULL: _ClassVar[DatasetSize]
    DATASET_SIZE_SAMPLE: _ClassVar[DatasetSize]

class SplitMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPLIT_MODE_UNSPECIFIED: _ClassVar[SplitMode]
    SPLIT_MODE_OFFICIAL: _ClassVar[SplitMode]
    SPLIT_MODE_RATIO: _ClassVar[SplitMode]

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_PENDING: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]
    RUN_STATE_SKIPPED: _ClassVar[RunState]

class PipelineStep(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIPELINE_STEP_UNSPECIFIED: _ClassVar[PipelineStep]
    PIPELINE_STEP_DOWNLOAD: _ClassVar[PipelineStep]
    PIPELINE_STEP_EXTRACT: _ClassVar[PipelineStep]
    PIPELINE_STEP_PROCESS: _ClassVar[PipelineStep]
    PIPELINE_STEP_SPLIT: _ClassVar[PipelineStep]
    PIPELINE_STEP_VALIDATE: _ClassVar[PipelineStep]
    PIPELINE_STEP_UPLOAD: _ClassVar[PipelineStep]
    PIPELINE_STEP_SYNC: _ClassVar[PipelineStep]
DATASET_SIZE_UNSPECIFIED: DatasetSize
DATASET_SIZE_FULL: DatasetSize
DATASET_SIZE_SAMPLE: DatasetSize
SPLIT_MODE_UNSPECIFIED: SplitMode
SPLIT_MODE_OFFICIAL: SplitMode
SPLIT_MODE_RATIO: SplitMode
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_PENDING: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CANCELLED: RunState
RUN_STATE_SKIPPED: RunState
PIPELINE_STEP_UNSPECIFIED: PipelineStep
PIPELINE_STEP_DOWNLOAD: PipelineStep
PIPELINE_STEP_EXTRACT: PipelineStep
PIPELINE_STEP_PROCESS: PipelineStep
PIPELINE_STEP_SPLIT: PipelineStep
PIPELINE_STEP_VALIDATE: PipelineStep
PIPELINE_STEP_UPLOAD: PipelineStep
PIPELINE_STEP_SYNC: PipelineStep

class ListDatasetVersionsRequest(_message.Message):
    __slots__ = ("dataset", "page_size", "page_token")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    page_size: int
    page_token: str
    def __init__(self, dataset: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatasetVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_dataset_pb2.DatasetVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[_dataset_pb2.DatasetVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDatasetInfoRequest(_message.Message):
    __slots__ = ("dataset", "version")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    version: str
    def __init__(self, dataset: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class GetDatasetInfoResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: _dataset_pb2.DatasetVersion
    def __init__(self, version: _Optional[_Union[_dataset_pb2.DatasetVersion, _Mapping]] = ...) -> None: ...

class ListSamplesRequest(_message.Message):
    __slots__ = ("dataset", "version", "split", "page_size", "page_token")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    version: str
    split: _dataset_pb2.Split
    page_size: int
    page_token: str
    def __init__(self, dataset: _Optional[str] = ..., version: _Optional[str] = ..., split: _Optional[_Union[_dataset_pb2.Split, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSamplesResponse(_message.Message):
    __slots__ = ("samples", "next_page_token", "version", "total_size")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[_dataset_pb2.Sample]
    next_page_token: str
    version: str
    total_size: int
    def __init__(self, samples: _Optional[_Iterable[_Union[_dataset_pb2.Sample, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., version: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class GetImageRequest(_message.Message):
    __slots__ = ("dataset", "version", "image_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    version: str
    image_id: str
    def __init__(self, dataset: _Optional[str] = ..., version: _Optional[str] = ..., image_id: _Optional[str] = ...) -> None: ...

class GetImageResponse(_message.Message):
    __slots__ = ("data", "content_type", "sha256", "width", "height", "version")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    content_type: str
    sha256: str
    width: int
    height: int
    version: str
    def __init__(self, data: _Optional[bytes] = ..., content_type: _Optional[str] = ..., sha256: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., version: _Optional[str] = ...) -> None: ...

class PipelineParams(_message.Message):
    __slots__ = ("dataset", "images_url", "captions_url", "images_sha256", "captions_sha256", "dataset_size", "sample_ratio", "split_mode", "train_ratio", "dev_ratio", "test_ratio", "seed")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    IMAGES_URL_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_URL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_SHA256_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_SHA256_FIELD_NUMBER: _ClassVar[int]
    DATASET_SIZE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATIO_FIELD_NUMBER: _ClassVar[int]
    SPLIT_MODE_FIELD_NUMBER: _ClassVar[int]
    TRAIN_RATIO_FIELD_NUMBER: _ClassVar[int]
    DEV_RATIO_FIELD_NUMBER: _ClassVar[int]
    TEST_RATIO_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    images_url: str
    captions_url: str
    images_sha256: str
    captions_sha256: str
    dataset_size: DatasetSize
    sample_ratio: float
    split_mode: SplitMode
    train_ratio: float
    dev_ratio: float
    test_ratio: float
    seed: int
    def __init__(self, dataset: _Optional[str] = ..., images_url: _Optional[str] = ..., captions_url: _Optional[str] = ..., images_sha256: _Optional[str] = ..., captions_sha256: _Optional[str] = ..., dataset_size: _Optional[_Union[DatasetSize, str]] = ..., sample_ratio: _Optional[float] = ..., split_mode: _Optional[_Union[SplitMode, str]] = ..., train_ratio: _Optional[float] = ..., dev_ratio: _Optional[float] = ..., test_ratio: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class StepStatus(_message.Message):
    __slots__ = ("step", "state", "started_at", "finished_at", "done", "total", "unit", "message", "start_time", "end_time")
    STEP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    step: PipelineStep
    state: RunState
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    done: int
    total: int
    unit: str
    message: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, step: _Optional[_Union[PipelineStep, str]] = ..., state: _Optional[_Union[RunState, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., unit: _Optional[str] = ..., message: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PipelineRun(_message.Message):
    __slots__ = ("name", "run_id", "params", "state", "steps", "dataset_version", "error", "created_at", "finished_at", "executor", "workflow_name", "create_time", "start_time", "end_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    run_id: str
    params: PipelineParams
    state: RunState
    steps: _containers.RepeatedCompositeFieldContainer[StepStatus]
    dataset_version: str
    error: str
    created_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    executor: str
    workflow_name: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., run_id: _Optional[str] = ..., params: _Optional[_Union[PipelineParams, _Mapping]] = ..., state: _Optional[_Union[RunState, str]] = ..., steps: _Optional[_Iterable[_Union[StepStatus, _Mapping]]] = ..., dataset_version: _Optional[str] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., executor: _Optional[str] = ..., workflow_name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePipelineRunRequest(_message.Message):
    __slots__ = ("pipeline_run",)
    PIPELINE_RUN_FIELD_NUMBER: _ClassVar[int]
    pipeline_run: PipelineRun
    def __init__(self, pipeline_run: _Optional[_Union[PipelineRun, _Mapping]] = ...) -> None: ...

class CreatePipelineRunResponse(_message.Message):
    __slots__ = ("pipeline_run",)
    PIPELINE_RUN_FIELD_NUMBER: _ClassVar[int]
    pipeline_run: PipelineRun
    def __init__(self, pipeline_run: _Optional[_Union[PipelineRun, _Mapping]] = ...) -> None: ...

class StartPipelineRunRequest(_message.Message):
    __slots__ = ("params",)
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    params: PipelineParams
    def __init__(self, params: _Optional[_Union[PipelineParams, _Mapping]] = ...) -> None: ...

class StartPipelineRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: PipelineRun
    def __init__(self, run: _Optional[_Union[PipelineRun, _Mapping]] = ...) -> None: ...

class GetPipelineRunRequest(_message.Message):
    __slots__ = ("name", "run_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    run_id: str
    def __init__(self, name: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class GetPipelineRunResponse(_message.Message):
    __slots__ = ("pipeline_run", "run")
    PIPELINE_RUN_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    pipeline_run: PipelineRun
    run: PipelineRun
    def __init__(self, pipeline_run: _Optional[_Union[PipelineRun, _Mapping]] = ..., run: _Optional[_Union[PipelineRun, _Mapping]] = ...) -> None: ...

class ListPipelineRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPipelineRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[PipelineRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[PipelineRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchPipelineRunRequest(_message.Message):
    __slots__ = ("name", "run_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    run_id: str
    def __init__(self, name: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class WatchPipelineRunResponse(_message.Message):
    __slots__ = ("pipeline_run", "run", "step", "message")
    PIPELINE_RUN_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    pipeline_run: PipelineRun
    run: PipelineRun
    step: PipelineStep
    message: str
    def __init__(self, pipeline_run: _Optional[_Union[PipelineRun, _Mapping]] = ..., run: _Optional[_Union[PipelineRun, _Mapping]] = ..., step: _Optional[_Union[PipelineStep, str]] = ..., message: _Optional[str] = ...) -> None: ...

class CancelPipelineRunRequest(_message.Message):
    __slots__ = ("name", "run_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    run_id: str
    def __init__(self, name: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class CancelPipelineRunResponse(_message.Message):
    __slots__ = ("pipeline_run", "run")
    PIPELINE_RUN_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    pipeline_run: PipelineRun
    run: PipelineRun
    def __init__(self, pipeline_run: _Optional[_Union[PipelineRun, _Mapping]] = ..., run: _Optional[_Union[PipelineRun, _Mapping]] = ...) -> None: ...

class RegisterDatasetVersionRequest(_message.Message):
    __slots__ = ("dataset", "version", "mark_latest")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MARK_LATEST_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    version: str
    mark_latest: bool
    def __init__(self, dataset: _Optional[str] = ..., version: _Optional[str] = ..., mark_latest: _Optional[bool] = ...) -> None: ...

class RegisterDatasetVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: _dataset_pb2.DatasetVersion
    def __init__(self, version: _Optional[_Union[_dataset_pb2.DatasetVersion, _Mapping]] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("collection_id", "collection")
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection_id: str
    collection: _collection_pb2.Collection
    def __init__(self, collection_id: _Optional[str] = ..., collection: _Optional[_Union[_collection_pb2.Collection, _Mapping]] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: _collection_pb2.Collection
    def __init__(self, collection: _Optional[_Union[_collection_pb2.Collection, _Mapping]] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: _collection_pb2.Collection
    def __init__(self, collection: _Optional[_Union[_collection_pb2.Collection, _Mapping]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections", "next_page_token")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[_collection_pb2.Collection]
    next_page_token: str
    def __init__(self, collections: _Optional[_Iterable[_Union[_collection_pb2.Collection, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SyncCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SyncCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: _collection_pb2.Collection
    def __init__(self, collection: _Optional[_Union[_collection_pb2.Collection, _Mapping]] = ...) -> None: ...

class WatchCollectionRequest(_message.Message):
    __slots__ = ("name", "until_synced")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNTIL_SYNCED_FIELD_NUMBER: _ClassVar[int]
    name: str
    until_synced: bool
    def __init__(self, name: _Optional[str] = ..., until_synced: _Optional[bool] = ...) -> None: ...

class WatchCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: _collection_pb2.Collection
    def __init__(self, collection: _Optional[_Union[_collection_pb2.Collection, _Mapping]] = ...) -> None: ...

class CreatePhotoRequest(_message.Message):
    __slots__ = ("parent", "image", "filename")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    parent: str
    image: bytes
    filename: str
    def __init__(self, parent: _Optional[str] = ..., image: _Optional[bytes] = ..., filename: _Optional[str] = ...) -> None: ...

class CreatePhotoResponse(_message.Message):
    __slots__ = ("photo",)
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    photo: _collection_pb2.Photo
    def __init__(self, photo: _Optional[_Union[_collection_pb2.Photo, _Mapping]] = ...) -> None: ...

class GetPhotoRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPhotoResponse(_message.Message):
    __slots__ = ("photo",)
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    photo: _collection_pb2.Photo
    def __init__(self, photo: _Optional[_Union[_collection_pb2.Photo, _Mapping]] = ...) -> None: ...

class ListPhotosRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token", "skipped")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    skipped: bool
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., skipped: _Optional[bool] = ...) -> None: ...

class ListPhotosResponse(_message.Message):
    __slots__ = ("photos", "skipped", "next_page_token", "version")
    PHOTOS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    photos: _containers.RepeatedCompositeFieldContainer[_collection_pb2.Photo]
    skipped: _containers.RepeatedCompositeFieldContainer[_collection_pb2.SkippedFile]
    next_page_token: str
    version: str
    def __init__(self, photos: _Optional[_Iterable[_Union[_collection_pb2.Photo, _Mapping]]] = ..., skipped: _Optional[_Iterable[_Union[_collection_pb2.SkippedFile, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class DeletePhotoRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeletePhotoResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPhotoThumbnailRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPhotoThumbnailResponse(_message.Message):
    __slots__ = ("data", "content_type", "sha256")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    content_type: str
    sha256: str
    def __init__(self, data: _Optional[bytes] = ..., content_type: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class ReceiveStorageEventsRequest(_message.Message):
    __slots__ = ("event_name", "key", "records")
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    event_name: str
    key: str
    records: _containers.RepeatedCompositeFieldContainer[StorageEventRecord]
    def __init__(self, event_name: _Optional[str] = ..., key: _Optional[str] = ..., records: _Optional[_Iterable[_Union[StorageEventRecord, _Mapping]]] = ...) -> None: ...

class StorageEventRecord(_message.Message):
    __slots__ = ("event_name", "event_time", "s3")
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    S3_FIELD_NUMBER: _ClassVar[int]
    event_name: str
    event_time: str
    s3: StorageEventEntity
    def __init__(self, event_name: _Optional[str] = ..., event_time: _Optional[str] = ..., s3: _Optional[_Union[StorageEventEntity, _Mapping]] = ...) -> None: ...

class StorageEventEntity(_message.Message):
    __slots__ = ("bucket", "object")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    bucket: StorageEventBucket
    object: StorageEventObject
    def __init__(self, bucket: _Optional[_Union[StorageEventBucket, _Mapping]] = ..., object: _Optional[_Union[StorageEventObject, _Mapping]] = ...) -> None: ...

class StorageEventBucket(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class StorageEventObject(_message.Message):
    __slots__ = ("key", "size", "etag", "sequencer")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    SEQUENCER_FIELD_NUMBER: _ClassVar[int]
    key: str
    size: int
    etag: str
    sequencer: str
    def __init__(self, key: _Optional[str] = ..., size: _Optional[int] = ..., etag: _Optional[str] = ..., sequencer: _Optional[str] = ...) -> None: ...

class ReceiveStorageEventsResponse(_message.Message):
    __slots__ = ("applied", "dropped", "ignored", "collections")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    applied: int
    dropped: int
    ignored: int
    collections: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, applied: _Optional[int] = ..., dropped: _Optional[int] = ..., ignored: _Optional[int] = ..., collections: _Optional[_Iterable[str]] = ...) -> None: ...
