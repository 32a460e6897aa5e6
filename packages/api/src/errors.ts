import { create, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  BadRequest_FieldViolationSchema,
  ErrorInfoSchema,
  ResourceInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

export interface FieldViolation {
  /** Path of the field in the request, e.g. "scope.split" or "queries[3]". */
  field: string;
  description: string;
  /** A stable UPPER_SNAKE reason, e.g. "TOO_LONG", "OUT_OF_RANGE", "REQUIRED". */
  reason?: string;
}

export const ERROR_DOMAIN = "glimpse.dev";

/** INVALID_ARGUMENT carrying google.rpc.BadRequest with one entry per bad field. */
export function invalidArgument(violations: FieldViolation[], message?: string, code: Code = Code.InvalidArgument): ConnectError {
  const summary = message ?? violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  return new ConnectError(summary, code, undefined, [
    {
      desc: BadRequestSchema,
      value: create(BadRequestSchema, {
        fieldViolations: violations.map((v) =>
          create(BadRequest_FieldViolationSchema, { field: v.field, description: v.description, reason: v.reason ?? "INVALID" }),
        ),
      }),
    },
  ]);
}

/** PERMISSION_DENIED for values the caller may not use here, with google.rpc.BadRequest naming each field. */
export function permissionDenied(violations: FieldViolation[]): ConnectError {
  return invalidArgument(violations, undefined, Code.PermissionDenied);
}

/** NOT_FOUND naming the missing resource (google.rpc.ResourceInfo). */
export function notFound(resourceType: string, resourceName: string, message?: string): ConnectError {
  return new ConnectError(message ?? `${resourceType} ${JSON.stringify(resourceName)} not found`, Code.NotFound, undefined, [
    { desc: ResourceInfoSchema, value: create(ResourceInfoSchema, { resourceType, resourceName }) },
  ]);
}

/** An error with a machine-readable reason (google.rpc.ErrorInfo). */
export function errorWithReason(code: Code, reason: string, message: string, metadata: Record<string, string> = {}): ConnectError {
  return new ConnectError(message, code, undefined, [
    { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata }) },
  ]);
}

const KNOWN_DETAILS = [BadRequestSchema, ErrorInfoSchema, ResourceInfoSchema];

/**
 * Errors relayed from another server carry their details as raw bytes; decoding the known
 * google.rpc ones lets the gateway print them readably ("debug") in Connect error JSON.
 */
export function reviveDetails(err: ConnectError): ConnectError {
  const details = err.details.map((d) => {
    if ("desc" in d) return d;
    const schema = KNOWN_DETAILS.find((s) => s.typeName === d.type);
    return schema ? { desc: schema, value: fromBinary(schema, d.value) } : d;
  });
  const out = new ConnectError(err.rawMessage, err.code, err.metadata, undefined, err.cause);
  out.details.push(...details);
  return out;
}
