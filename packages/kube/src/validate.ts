/**
 * Checks an object against the Kubernetes API's own model definitions (those the official
 * client is generated from): every field must exist in
 * its type, and values must have the right shape. A typo such as `contianers` fails here.
 */
import * as k8s from "@kubernetes/client-node";

type Attr = { name: string; baseName: string; type: string };
const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attr[] } | undefined>;

export function validateK8s(value: unknown, type: string, path: string, errors: string[] = []): string[] {
  if (value === null || value === undefined) return errors;
  const array = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) errors.push(`${path}: expected a list`);
    else value.forEach((v, i) => validateK8s(v, array[1]!, `${path}[${i}]`, errors));
  } else if (map) {
    if (typeof value !== "object" || Array.isArray(value)) errors.push(`${path}: expected a map`);
    else for (const [k, v] of Object.entries(value)) validateK8s(v, map[1]!, `${path}.${k}`, errors);
  } else if (type === "string" || type === "Date") {
    if (typeof value !== "string" && !(value instanceof Date)) errors.push(`${path}: expected a string, got ${JSON.stringify(value)}`);
  } else if (type === "number") {
    if (typeof value !== "number") errors.push(`${path}: expected a number, got ${JSON.stringify(value)}`);
  } else if (type === "boolean") {
    if (typeof value !== "boolean") errors.push(`${path}: expected a boolean`);
  } else if (type === "IntOrString") {
    if (typeof value !== "number" && typeof value !== "string") errors.push(`${path}: expected int or string`);
  } else if (type === "any" || type === "object") {
    // free-form
  } else {
    const model = models[type]?.getAttributeTypeMap?.();
    if (!model) throw new Error(`no model for type ${type} at ${path}`);
    if (typeof value !== "object" || Array.isArray(value)) {
      errors.push(`${path}: expected an object of type ${type}`);
      return errors;
    }
    for (const [k, v] of Object.entries(value)) {
      const attr = model.find((a) => a.baseName === k);
      if (!attr) errors.push(`${path}.${k}: no such field in ${type}`);
      else validateK8s(v, attr.type, `${path}.${k}`, errors);
    }
  }
  return errors;
}
