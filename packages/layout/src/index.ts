export * from "./collections.js";
export * from "./datasets.js";
export * from "./models.js";
