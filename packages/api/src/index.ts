// The Glimpse API: generated messages and services, plus the request validation (from the
// protos' buf.validate rules), limits and error shapes every server shares.
export * from "./gen/glimpse/api/v1/annotations_pb.js";
export * as data from "./gen/glimpse/data/v1/data_service_pb.js";
export * as collection from "./gen/glimpse/data/v1/collection_pb.js";
export * as dataset from "./gen/glimpse/data/v1/dataset_pb.js";
export * as ranking from "./gen/glimpse/ranking/v1/ranking_service_pb.js";
export * as training from "./gen/glimpse/training/v1/training_service_pb.js";
export * as health from "./gen/grpc/health/v1/health_pb.js";
export * as rpcDetails from "./gen/google/rpc/error_details_pb.js";
export * from "./errors.js";
export * from "./limits.js";
export * from "./pagination.js";
export * from "./services.js";
export * from "./validate.js";
