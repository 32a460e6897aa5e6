// The OpenAPI 3 document of the REST paths, generated from the protos (scripts/openapi.ts; `npm
// run generate`). Its own entry point, so only the gateway, which serves it, loads it.
import document from "./openapi.json" with { type: "json" };

export const OPENAPI: Readonly<Record<string, unknown>> = document;
