import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { data, health, rpcDetails, training } from "@glimpse/api";
import * as reflection from "@glimpse/api/gen/grpc/reflection/v1/reflection_pb.js";
import { createLogger } from "@glimpse/logging";
import { describe, expect, it } from "vitest";
import { ApiKeys } from "./auth.js";
import { grpcClient } from "./client.js";
import { HealthRegistry, ServingStatus } from "./health.js";
import { bind, routesFor, startGrpcServer } from "./server.js";

const logger = createLogger("test", "silent");

async function freePort(): Promise<number> {
  const s = await startGrpcServer({ name: "f", host: "127.0.0.1", port: 0, logger, apiKeys: new ApiKeys([]), services: [] });
  await s.close(0);
  return s.port;
}

describe("routes (in-memory transport)", () => {
  const healthRegistry = new HealthRegistry([data.DataService.typeName]);
  const transport = createRouterTransport(
    routesFor([bind(data.DataService, { getDatasetInfo: () => create(data.GetDatasetInfoResponseSchema, {}) })], healthRegistry),
    { router: { interceptors: [new ApiKeys(["w:write", "r:read"]).interceptor()] } },
  );

  it("answers UNIMPLEMENTED for methods a binding leaves out (unary and streaming)", async () => {
    const client = createClient(data.DataService, transport);
    await expect(client.getDatasetInfo({})).resolves.toBeDefined();
    const err = await client.listSamples({}).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.Unimplemented });
    expect((err as ConnectError).message).toContain("not implemented");
    const stream = await (async () => {
      for await (const _ of client.watchPipelineRun({ runId: "x" })) void _;
    })().catch((e: unknown) => ConnectError.from(e));
    expect(stream).toMatchObject({ code: Code.Unimplemented });
  });

  it("checks each request against the proto's buf.validate rules before the method runs", async () => {
    const calls: string[] = [];
    const impl = {
      listTrainingRuns: () => (calls.push("list"), create(training.ListTrainingRunsResponseSchema, {})),
      async *watchTraining() {
        calls.push("watch");
      },
    };
    const routes = (checkedElsewhere?: true) =>
      createRouterTransport(routesFor([{ ...bind(training.TrainingService, impl), ...(checkedElsewhere ? { checkedElsewhere } : {}) }], new HealthRegistry([])));
    const client = createClient(training.TrainingService, routes());
    const bad = await client.listTrainingRuns({ pageSize: -1 }).catch((e: unknown) => ConnectError.from(e));
    expect(bad).toMatchObject({ code: Code.InvalidArgument });
    expect((bad as ConnectError).findDetails(rpcDetails.BadRequestSchema)[0]?.fieldViolations.map((v) => [v.field, v.reason])).toEqual([["page_size", "OUT_OF_RANGE"]]);
    const stream = await (async () => {
      for await (const _ of client.watchTraining({ runId: "../x" })) void _;
    })().catch((e: unknown) => ConnectError.from(e));
    expect(stream).toMatchObject({ code: Code.InvalidArgument });
    expect(calls).toEqual([]);
    await client.listTrainingRuns({ pageSize: 100 });
    for await (const _ of client.watchTraining({ runId: "tr-1" })) void _;
    expect(calls).toEqual(["list", "watch"]);
    // A relay (the gateway's) leaves the check to the service it relays to.
    await createClient(training.TrainingService, routes(true)).listTrainingRuns({ pageSize: -1 });
    expect(calls).toEqual(["list", "watch", "list"]);
  });

  it("enforces access levels from the proto options", async () => {
    const client = createClient(data.DataService, transport);
    const start = (key?: string) =>
      client.startPipelineRun({}, key ? { headers: { authorization: `Bearer ${key}` } } : {}).catch((e: unknown) => ConnectError.from(e).code);
    expect(await start()).toBe(Code.Unauthenticated);
    expect(await start("r")).toBe(Code.PermissionDenied);
    expect(await start("w")).toBe(Code.Unimplemented);
    // Reads stay open unless reads are locked.
    await expect(client.getDatasetInfo({})).resolves.toBeDefined();
  });

  it("locks reads too when configured", async () => {
    const locked = createRouterTransport(routesFor([bind(data.DataService, {})], new HealthRegistry([])), {
      router: { interceptors: [new ApiKeys(["r:read"], true).interceptor()] },
    });
    const client = createClient(data.DataService, locked);
    expect(await client.listSamples({}).catch((e: unknown) => ConnectError.from(e).code)).toBe(Code.Unauthenticated);
    expect(await client.listSamples({}, { headers: { authorization: "Bearer r" } }).catch((e: unknown) => ConnectError.from(e).code)).toBe(Code.Unimplemented);
  });

  it("streams health changes to watchers", async () => {
    const client = createClient(health.Health, transport);
    const abort = new AbortController();
    const seen: number[] = [];
    const watching = (async () => {
      try {
        for await (const res of client.watch({ service: data.DataService.typeName }, { signal: abort.signal })) {
          seen.push(res.status);
          if (seen.length === 1) healthRegistry.set(data.DataService.typeName, ServingStatus.SERVING);
          if (seen.length === 2) abort.abort();
        }
      } catch {
        // aborted
      }
    })();
    await watching;
    expect(seen).toEqual([ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
    expect((await client.check({ service: data.DataService.typeName })).status).toBe(ServingStatus.SERVING);
    expect(await client.check({ service: "nope" }).catch((e: unknown) => ConnectError.from(e).code)).toBe(Code.NotFound);
  });

  it("describes services through reflection", async () => {
    const client = createClient(reflection.ServerReflection, transport);
    async function* requests() {
      yield create(reflection.ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } });
      yield create(reflection.ServerReflectionRequestSchema, { messageRequest: { case: "fileContainingSymbol", value: "glimpse.data.v1.DataService.ListSamples" } });
      yield create(reflection.ServerReflectionRequestSchema, { messageRequest: { case: "fileByFilename", value: "nope.proto" } });
    }
    const out = [];
    for await (const res of client.serverReflectionInfo(requests())) out.push(res.messageResponse);
    expect(out[0]!.case).toBe("listServicesResponse");
    expect(out[1]!.case).toBe("fileDescriptorResponse");
    // The file and its imports (annotations, dataset, timestamp, descriptor).
    expect((out[1]!.value as reflection.FileDescriptorResponse).fileDescriptorProto.length).toBeGreaterThanOrEqual(4);
    expect(out[2]!.case).toBe("errorResponse");
  });
});

describe("gRPC server over a real socket", () => {
  it("drains in-flight RPCs on close and refuses new ones", async () => {
    let release!: () => void;
    const started = new Promise<void>((resolve) => {
      release = resolve;
    });
    const server = await startGrpcServer({
      name: "t",
      host: "127.0.0.1",
      port: 0,
      logger,
      apiKeys: new ApiKeys([]),
      services: [
        bind(training.TrainingService, {
          async listTrainingRuns() {
            release();
            await new Promise((r) => setTimeout(r, 400));
            return create(training.ListTrainingRunsResponseSchema, { nextPageToken: "done" });
          },
        }),
      ],
    });
    const client = grpcClient(training.TrainingService, server.url, { attempts: 1 });
    const inflight = client.listTrainingRuns({});
    await started;
    const closing = server.close(5_000);
    expect((await inflight).nextPageToken).toBe("done");
    await closing;
    const fresh = createClient(training.TrainingService, createGrpcTransport({ baseUrl: server.url }));
    expect(await fresh.listTrainingRuns({}).catch((e: unknown) => ConnectError.from(e).code)).toBe(Code.Unavailable);
  });

  it("finishes closing within the grace period after a client left a stream with break", async () => {
    const server = await startGrpcServer({ name: "b", host: "127.0.0.1", port: 0, logger, apiKeys: new ApiKeys([]), services: [] });
    const client = createClient(health.Health, createGrpcTransport({ baseUrl: server.url }));
    for await (const m of client.watch({ service: "" })) {
      void m;
      break;
    }
    // close() must settle even with the abandoned stream open (a hang fails on the test timeout),
    // and afterwards the port is free again.
    await server.close(300);
    const again = await startGrpcServer({ name: "b2", host: "127.0.0.1", port: server.port, logger, apiKeys: new ApiKeys([]), services: [] });
    expect(again.port).toBe(server.port);
    await again.close(0);
  }, 10_000);

  it("retries idempotent calls while a backend comes up", async () => {
    // Pick a port, then start the server on it shortly after the first attempt fails.
    const services = [bind(data.DataService, { getDatasetInfo: () => create(data.GetDatasetInfoResponseSchema, {}) })];
    const probe = await startGrpcServer({ name: "p", host: "127.0.0.1", port: 0, logger, apiKeys: new ApiKeys([]), services });
    const port = probe.port;
    await probe.close(0);
    const client = grpcClient(data.DataService, `http://127.0.0.1:${port}`, { attempts: 6 });
    const late = new Promise<Awaited<ReturnType<typeof startGrpcServer>>>((resolve) =>
      setTimeout(() => void startGrpcServer({ name: "late", host: "127.0.0.1", port, logger, apiKeys: new ApiKeys([]), services }).then(resolve), 150),
    );
    // GetDatasetInfo is NO_SIDE_EFFECTS, so UNAVAILABLE is retried until the server is up.
    await expect(client.getDatasetInfo({})).resolves.toBeDefined();
    // StartPipelineRun is not idempotent: it must not be retried (one attempt reaches the
    // transport), while an idempotent call to the same dead address is tried every time.
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    const tries: string[] = [];
    const counting: Interceptor = (next) => (req) => {
      tries.push(req.method.name);
      return next(req);
    };
    const once = grpcClient(data.DataService, deadUrl, { attempts: 3, interceptors: [counting] });
    expect(await once.startPipelineRun({}).catch((e: unknown) => ConnectError.from(e).code)).toBe(Code.Unavailable);
    expect(tries).toEqual(["StartPipelineRun"]);
    expect(await once.getDatasetInfo({}).catch((e: unknown) => ConnectError.from(e).code)).toBe(Code.Unavailable);
    expect(tries.filter((m) => m === "GetDatasetInfo")).toHaveLength(3);
    await (await late).close(0);
  });
});
