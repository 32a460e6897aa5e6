import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Split(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPLIT_UNSPECIFIED: _ClassVar[Split]
    SPLIT_TRAIN: _ClassVar[Split]
    SPLIT_DEV: _ClassVar[Split]
    SPLIT_TEST: _ClassVar[Split]
SPLIT_UNSPECIFIED: Split
SPLIT_TRAIN: Split
SPLIT_DEV: Split
SPLIT_TEST: Split

class SplitCount(_message.Message):
    __slots__ = ("split", "images", "captions")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    split: Split
    images: int
    captions: int
    def __init__(self, split: _Optional[_Union[Split, str]] = ..., images: _Optional[int] = ..., captions: _Optional[int] = ...) -> None: ...

class DatasetVersion(_message.Message):
    __slots__ = ("dataset", "version", "published_at", "image_count", "caption_count", "splits", "total_bytes", "latest", "manifest_key", "params", "publish_time")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CAPTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_KEY_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    version: str
    published_at: _timestamp_pb2.Timestamp
    image_count: int
    caption_count: int
    splits: _containers.RepeatedCompositeFieldContainer[SplitCount]
    total_bytes: int
    latest: bool
    manifest_key: str
    params: _containers.ScalarMap[str, str]
    publish_time: _timestamp_pb2.Timestamp
    def __init__(self, dataset: _Optional[str] = ..., version: _Optional[str] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., image_count: _Optional[int] = ..., caption_count: _Optional[int] = ..., splits: _Optional[_Iterable[_Union[SplitCount, _Mapping]]] = ..., total_bytes: _Optional[int] = ..., latest: _Optional[bool] = ..., manifest_key: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., publish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ("image_id", "split", "captions", "width", "height", "size_bytes", "sha256")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    split: Split
    captions: _containers.RepeatedScalarFieldContainer[str]
    width: int
    height: int
    size_bytes: int
    sha256: str
    def __init__(self, image_id: _Optional[str] = ..., split: _Optional[_Union[Split, str]] = ..., captions: _Optional[_Iterable[str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...
