/**
 * The WorkflowTemplate as the owner of the Workflows run from it, so removing the template (helm
 * uninstall) garbage-collects the runs' Workflows and their pods, running ones included.
 */
import type * as k8s from "@kubernetes/client-node";

const TEMPLATES = { group: "argoproj.io", version: "v1alpha1", plural: "workflowtemplates" } as const;

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
}

/** Reads the template's uid (RBAC: get on that one WorkflowTemplate). */
export async function templateOwner(api: k8s.CustomObjectsApi, namespace: string, name: string): Promise<OwnerReference> {
  const t = (await api.getNamespacedCustomObject({ ...TEMPLATES, namespace, name })) as { metadata?: { uid?: string } };
  const uid = t.metadata?.uid;
  if (!uid) throw new Error(`WorkflowTemplate ${namespace}/${name} has no uid`);
  return { apiVersion: `${TEMPLATES.group}/${TEMPLATES.version}`, kind: "WorkflowTemplate", name, uid };
}
