import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Loss(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOSS_UNSPECIFIED: _ClassVar[Loss]
    LOSS_INFONCE: _ClassVar[Loss]
    LOSS_VSE_HARDEST: _ClassVar[Loss]

class TrainingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_STATE_UNSPECIFIED: _ClassVar[TrainingState]
    TRAINING_STATE_PENDING: _ClassVar[TrainingState]
    TRAINING_STATE_RUNNING: _ClassVar[TrainingState]
    TRAINING_STATE_SUCCEEDED: _ClassVar[TrainingState]
    TRAINING_STATE_FAILED: _ClassVar[TrainingState]
    TRAINING_STATE_STOPPED: _ClassVar[TrainingState]
LOSS_UNSPECIFIED: Loss
LOSS_INFONCE: Loss
LOSS_VSE_HARDEST: Loss
TRAINING_STATE_UNSPECIFIED: TrainingState
TRAINING_STATE_PENDING: TrainingState
TRAINING_STATE_RUNNING: TrainingState
TRAINING_STATE_SUCCEEDED: TrainingState
TRAINING_STATE_FAILED: TrainingState
TRAINING_STATE_STOPPED: TrainingState

class TrainingConfig(_message.Message):
    __slots__ = ("epochs", "batch_size", "learning_rate", "dataset", "dataset_version", "image_encoder", "loss", "fine_tune_backbone", "seed", "device", "overrides", "promote", "promotion_metric", "promotion_margin")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ENCODER_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    FINE_TUNE_BACKBONE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    PROMOTE_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_METRIC_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_MARGIN_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    batch_size: int
    learning_rate: float
    dataset: str
    dataset_version: str
    image_encoder: str
    loss: Loss
    fine_tune_backbone: bool
    seed: int
    device: str
    overrides: _struct_pb2.Struct
    promote: bool
    promotion_metric: str
    promotion_margin: float
    def __init__(self, epochs: _Optional[int] = ..., batch_size: _Optional[int] = ..., learning_rate: _Optional[float] = ..., dataset: _Optional[str] = ..., dataset_version: _Optional[str] = ..., image_encoder: _Optional[str] = ..., loss: _Optional[_Union[Loss, str]] = ..., fine_tune_backbone: _Optional[bool] = ..., seed: _Optional[int] = ..., device: _Optional[str] = ..., overrides: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., promote: _Optional[bool] = ..., promotion_metric: _Optional[str] = ..., promotion_margin: _Optional[float] = ...) -> None: ...

class RetrievalMetrics(_message.Message):
    __slots__ = ("split", "t2i_r1", "t2i_r5", "t2i_r10", "t2i_medr", "i2t_r1", "i2t_r5", "i2t_r10", "i2t_medr")
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    T2I_R1_FIELD_NUMBER: _ClassVar[int]
    T2I_R5_FIELD_NUMBER: _ClassVar[int]
    T2I_R10_FIELD_NUMBER: _ClassVar[int]
    T2I_MEDR_FIELD_NUMBER: _ClassVar[int]
    I2T_R1_FIELD_NUMBER: _ClassVar[int]
    I2T_R5_FIELD_NUMBER: _ClassVar[int]
    I2T_R10_FIELD_NUMBER: _ClassVar[int]
    I2T_MEDR_FIELD_NUMBER: _ClassVar[int]
    split: str
    t2i_r1: float
    t2i_r5: float
    t2i_r10: float
    t2i_medr: float
    i2t_r1: float
    i2t_r5: float
    i2t_r10: float
    i2t_medr: float
    def __init__(self, split: _Optional[str] = ..., t2i_r1: _Optional[float] = ..., t2i_r5: _Optional[float] = ..., t2i_r10: _Optional[float] = ..., t2i_medr: _Optional[float] = ..., i2t_r1: _Optional[float] = ..., i2t_r5: _Optional[float] = ..., i2t_r10: _Optional[float] = ..., i2t_medr: _Optional[float] = ...) -> None: ...

class Promotion(_message.Message):
    __slots__ = ("promoted", "reason", "metric", "margin", "candidate_value", "production_version", "production_value", "production_reevaluated", "dataset_version")
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_VALUE_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_VALUE_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_REEVALUATED_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    promoted: bool
    reason: str
    metric: str
    margin: float
    candidate_value: float
    production_version: str
    production_value: float
    production_reevaluated: bool
    dataset_version: str
    def __init__(self, promoted: _Optional[bool] = ..., reason: _Optional[str] = ..., metric: _Optional[str] = ..., margin: _Optional[float] = ..., candidate_value: _Optional[float] = ..., production_version: _Optional[str] = ..., production_value: _Optional[float] = ..., production_reevaluated: _Optional[bool] = ..., dataset_version: _Optional[str] = ...) -> None: ...

class TrainingRun(_message.Message):
    __slots__ = ("name", "run_id", "config", "state", "phase", "epoch", "total_epochs", "step", "total_steps", "loss", "learning_rate", "throughput", "eta_seconds", "dev_metrics", "model_version", "error", "created_at", "started_at", "finished_at", "executor", "job_name", "dataset_version", "promotion", "create_time", "start_time", "end_time", "eta")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEV_METRICS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMOTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    name: str
    run_id: str
    config: TrainingConfig
    state: TrainingState
    phase: str
    epoch: int
    total_epochs: int
    step: int
    total_steps: int
    loss: float
    learning_rate: float
    throughput: float
    eta_seconds: float
    dev_metrics: RetrievalMetrics
    model_version: str
    error: str
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    executor: str
    job_name: str
    dataset_version: str
    promotion: Promotion
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    eta: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., run_id: _Optional[str] = ..., config: _Optional[_Union[TrainingConfig, _Mapping]] = ..., state: _Optional[_Union[TrainingState, str]] = ..., phase: _Optional[str] = ..., epoch: _Optional[int] = ..., total_epochs: _Optional[int] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss: _Optional[float] = ..., learning_rate: _Optional[float] = ..., throughput: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., dev_metrics: _Optional[_Union[RetrievalMetrics, _Mapping]] = ..., model_version: _Optional[str] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., executor: _Optional[str] = ..., job_name: _Optional[str] = ..., dataset_version: _Optional[str] = ..., promotion: _Optional[_Union[Promotion, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., eta: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateTrainingRunRequest(_message.Message):
    __slots__ = ("training_run",)
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    training_run: TrainingRun
    def __init__(self, training_run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...

class GetTrainingRunRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CancelTrainingRunRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchTrainingRunRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateTrainingRunResponse(_message.Message):
    __slots__ = ("training_run",)
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    training_run: TrainingRun
    def __init__(self, training_run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...

class GetTrainingRunResponse(_message.Message):
    __slots__ = ("training_run",)
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    training_run: TrainingRun
    def __init__(self, training_run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...

class CancelTrainingRunResponse(_message.Message):
    __slots__ = ("training_run",)
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    training_run: TrainingRun
    def __init__(self, training_run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...

class WatchTrainingRunResponse(_message.Message):
    __slots__ = ("training_run", "event", "message", "time")
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    training_run: TrainingRun
    event: str
    message: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, training_run: _Optional[_Union[TrainingRun, _Mapping]] = ..., event: _Optional[str] = ..., message: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartTrainingRequest(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: TrainingConfig
    def __init__(self, config: _Optional[_Union[TrainingConfig, _Mapping]] = ...) -> None: ...

class StartTrainingResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: TrainingRun
    def __init__(self, run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...

class GetTrainingStatusRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetTrainingStatusResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: TrainingRun
    def __init__(self, run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...

class WatchTrainingRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class WatchTrainingResponse(_message.Message):
    __slots__ = ("run", "event", "message", "time")
    RUN_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    run: TrainingRun
    event: str
    message: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, run: _Optional[_Union[TrainingRun, _Mapping]] = ..., event: _Optional[str] = ..., message: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTrainingRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTrainingRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[TrainingRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[TrainingRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StopTrainingRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class StopTrainingResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: TrainingRun
    def __init__(self, run: _Optional[_Union[TrainingRun, _Mapping]] = ...) -> None: ...
