/**
 * helm uninstall leaves nothing: no object of the release, no volume, and nothing the services created at
 * run time (training Jobs, pipeline Workflows) outlives it.
 */
import { describe, expect, it } from "vitest";
import { NS, RELEASE, helm, kubectl, kubectlJson, waitFor } from "./cluster.js";

describe("helm uninstall", () => {
  it("removes every object of the release and its volume", async () => {
    helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "5m");
    const kinds = "deployments,services,configmaps,secrets,serviceaccounts,roles,rolebindings,persistentvolumeclaims,jobs,pods";
    const left = await waitFor("the namespace to empty", () => {
      const items = (kubectlJson("get", kinds, "-n", NS).items as { kind: string; metadata: { name: string } }[])
        // Kubernetes' own objects in every namespace
        .filter((o) => !(o.kind === "ConfigMap" && o.metadata.name === "kube-root-ca.crt") && !(o.kind === "ServiceAccount" && o.metadata.name === "default"))
        .map((o) => `${o.kind}/${o.metadata.name}`);
      const workflows = (kubectlJson("get", "workflows.argoproj.io,workflowtemplates.argoproj.io", "-n", NS).items as { kind: string; metadata: { name: string } }[]).map((o) => `${o.kind}/${o.metadata.name}`);
      const all = [...items, ...workflows];
      return all.length === 0 ? all : undefined;
    }, 300_000, 2000).catch((err: Error) => [err.message, kubectl("get", "all,cm,secret,pvc,workflows", "-n", NS)]);
    expect(left).toEqual([]);
    await waitFor("the release's volume to be deleted", () => {
      const pvs = (kubectlJson("get", "pv").items as { spec: { claimRef?: { namespace: string } } }[]).filter((pv) => pv.spec.claimRef?.namespace === NS);
      return pvs.length === 0 ? true : undefined;
    }, 180_000);
    expect(helm("list", "-n", NS, "-q").trim()).toBe("");
    kubectl("delete", "namespace", NS, "--wait=true", "--timeout=180s");
  });
});
