export * from "./auth.js";
export * from "./client.js";
export * from "./health.js";
export * from "./interceptors.js";
export * from "./listen.js";
export * from "./metrics.js";
export * from "./reflection.js";
export * from "./server.js";
