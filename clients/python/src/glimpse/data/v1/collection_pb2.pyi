import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Collection(_message.Message):
    __slots__ = ("name", "display_name", "source", "watch", "state", "counts", "version", "serving_version", "model_version", "create_time", "last_sync_time", "sync", "error")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Collection.State]
        STATE_SYNCING: _ClassVar[Collection.State]
        STATE_READY: _ClassVar[Collection.State]
        STATE_FAILED: _ClassVar[Collection.State]
    STATE_UNSPECIFIED: Collection.State
    STATE_SYNCING: Collection.State
    STATE_READY: Collection.State
    STATE_FAILED: Collection.State
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    WATCH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SERVING_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_SYNC_TIME_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    source: CollectionSource
    watch: bool
    state: Collection.State
    counts: CollectionCounts
    version: str
    serving_version: str
    model_version: str
    create_time: _timestamp_pb2.Timestamp
    last_sync_time: _timestamp_pb2.Timestamp
    sync: SyncProgress
    error: str
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., source: _Optional[_Union[CollectionSource, _Mapping]] = ..., watch: _Optional[bool] = ..., state: _Optional[_Union[Collection.State, str]] = ..., counts: _Optional[_Union[CollectionCounts, _Mapping]] = ..., version: _Optional[str] = ..., serving_version: _Optional[str] = ..., model_version: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_sync_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sync: _Optional[_Union[SyncProgress, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class CollectionSource(_message.Message):
    __slots__ = ("folder", "bucket", "urls", "uploads")
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    URLS_FIELD_NUMBER: _ClassVar[int]
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    folder: FolderSource
    bucket: BucketSource
    urls: UrlsSource
    uploads: UploadsSource
    def __init__(self, folder: _Optional[_Union[FolderSource, _Mapping]] = ..., bucket: _Optional[_Union[BucketSource, _Mapping]] = ..., urls: _Optional[_Union[UrlsSource, _Mapping]] = ..., uploads: _Optional[_Union[UploadsSource, _Mapping]] = ...) -> None: ...

class FolderSource(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class BucketSource(_message.Message):
    __slots__ = ("prefix", "endpoint", "bucket", "credentials_secret")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_SECRET_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    endpoint: str
    bucket: str
    credentials_secret: str
    def __init__(self, prefix: _Optional[str] = ..., endpoint: _Optional[str] = ..., bucket: _Optional[str] = ..., credentials_secret: _Optional[str] = ...) -> None: ...

class UrlsSource(_message.Message):
    __slots__ = ("urls",)
    URLS_FIELD_NUMBER: _ClassVar[int]
    urls: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, urls: _Optional[_Iterable[str]] = ...) -> None: ...

class UploadsSource(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CollectionCounts(_message.Message):
    __slots__ = ("found", "indexed", "skipped", "skipped_by_reason", "exact_duplicates", "near_duplicates")
    class SkippedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    FOUND_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    EXACT_DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    found: int
    indexed: int
    skipped: int
    skipped_by_reason: _containers.ScalarMap[str, int]
    exact_duplicates: int
    near_duplicates: int
    def __init__(self, found: _Optional[int] = ..., indexed: _Optional[int] = ..., skipped: _Optional[int] = ..., skipped_by_reason: _Optional[_Mapping[str, int]] = ..., exact_duplicates: _Optional[int] = ..., near_duplicates: _Optional[int] = ...) -> None: ...

class SyncProgress(_message.Message):
    __slots__ = ("stage", "done", "total", "photos_per_second", "eta", "changed", "start_time")
    class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STAGE_UNSPECIFIED: _ClassVar[SyncProgress.Stage]
        STAGE_LIST: _ClassVar[SyncProgress.Stage]
        STAGE_INGEST: _ClassVar[SyncProgress.Stage]
        STAGE_PUBLISH: _ClassVar[SyncProgress.Stage]
    STAGE_UNSPECIFIED: SyncProgress.Stage
    STAGE_LIST: SyncProgress.Stage
    STAGE_INGEST: SyncProgress.Stage
    STAGE_PUBLISH: SyncProgress.Stage
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PHOTOS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    stage: SyncProgress.Stage
    done: int
    total: int
    photos_per_second: float
    eta: _duration_pb2.Duration
    changed: int
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, stage: _Optional[_Union[SyncProgress.Stage, str]] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., photos_per_second: _Optional[float] = ..., eta: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., changed: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Photo(_message.Message):
    __slots__ = ("name", "photo_id", "path", "sha256", "size_bytes", "width", "height", "taken_time", "camera_model", "thumbnail_url", "duplicate_paths")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHOTO_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TAKEN_TIME_FIELD_NUMBER: _ClassVar[int]
    CAMERA_MODEL_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_URL_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_PATHS_FIELD_NUMBER: _ClassVar[int]
    name: str
    photo_id: str
    path: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    taken_time: _timestamp_pb2.Timestamp
    camera_model: str
    thumbnail_url: str
    duplicate_paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., photo_id: _Optional[str] = ..., path: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., taken_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., camera_model: _Optional[str] = ..., thumbnail_url: _Optional[str] = ..., duplicate_paths: _Optional[_Iterable[str]] = ...) -> None: ...

class SkippedFile(_message.Message):
    __slots__ = ("path", "reason", "message")
    PATH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    path: str
    reason: str
    message: str
    def __init__(self, path: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class DuplicateGroup(_message.Message):
    __slots__ = ("kind", "photo_ids", "paths", "score")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[DuplicateGroup.Kind]
        KIND_EXACT: _ClassVar[DuplicateGroup.Kind]
        KIND_NEAR: _ClassVar[DuplicateGroup.Kind]
    KIND_UNSPECIFIED: DuplicateGroup.Kind
    KIND_EXACT: DuplicateGroup.Kind
    KIND_NEAR: DuplicateGroup.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    PHOTO_IDS_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    kind: DuplicateGroup.Kind
    photo_ids: _containers.RepeatedScalarFieldContainer[str]
    paths: _containers.RepeatedScalarFieldContainer[str]
    score: float
    def __init__(self, kind: _Optional[_Union[DuplicateGroup.Kind, str]] = ..., photo_ids: _Optional[_Iterable[str]] = ..., paths: _Optional[_Iterable[str]] = ..., score: _Optional[float] = ...) -> None: ...
