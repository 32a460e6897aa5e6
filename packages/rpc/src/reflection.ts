import { create, createRegistry, toBinary, type DescFile, type DescService, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import * as v1 from "@glimpse/api/gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "@glimpse/api/gen/grpc/reflection/v1alpha/reflection_pb.js";

type Req = v1.ServerReflectionRequest;
type Res = v1.ServerReflectionResponse;

/**
 * grpc.reflection (v1 and the older v1alpha grpcurl still tries), answered from the
 * descriptors protobuf-es generated, so tools need no .proto files.
 */
export function registerReflection(router: ConnectRouter, served: DescService[]): void {
  const services = [...served, v1.ServerReflection, v1alpha.ServerReflection];
  const files = new Set<DescFile>();
  const addWithDeps = (f: DescFile) => {
    if (files.has(f)) return;
    files.add(f);
    f.dependencies.forEach(addWithDeps);
  };
  services.forEach((s) => addWithDeps(s.file));
  const registry = createRegistry(...files);
  const byName = new Map([...files].map((f) => [f.name + ".proto", f]));
  const names = services.map((s) => s.typeName).sort();

  const respond = (req: Req): Res => {
    const base = { validHost: req.host, originalRequest: req };
    const mr = req.messageRequest;
    const filesResponse = (file: DescFile | undefined, what: string): Res => {
      if (!file) return create(v1.ServerReflectionResponseSchema, { ...base, messageResponse: notFound(what) });
      return create(v1.ServerReflectionResponseSchema, {
        ...base,
        messageResponse: { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDeps(file).map(encode) } },
      });
    };
    switch (mr.case) {
      case "listServices":
        return create(v1.ServerReflectionResponseSchema, {
          ...base,
          messageResponse: { case: "listServicesResponse", value: { service: names.map((name) => ({ name })) } },
        });
      case "fileByFilename":
        return filesResponse(byName.get(mr.value), `file ${mr.value}`);
      case "fileContainingSymbol":
        return filesResponse(fileOfSymbol(registry, mr.value), `symbol ${mr.value}`);
      case "fileContainingExtension": {
        const message = registry.getMessage(mr.value.containingType);
        const ext = message ? registry.getExtensionFor(message, mr.value.extensionNumber) : undefined;
        return filesResponse(ext?.file, `extension ${mr.value.extensionNumber} of ${mr.value.containingType}`);
      }
      case "allExtensionNumbersOfType": {
        const numbers: number[] = [];
        for (const d of registry) if (d.kind === "extension" && d.extendee.typeName === mr.value) numbers.push(d.number);
        return create(v1.ServerReflectionResponseSchema, {
          ...base,
          messageResponse: { case: "allExtensionNumbersResponse", value: { baseTypeName: mr.value, extensionNumber: numbers } },
        });
      }
      default:
        return create(v1.ServerReflectionResponseSchema, {
          ...base,
          messageResponse: { case: "errorResponse", value: { errorCode: 12, errorMessage: "unsupported request" } },
        });
    }
  };

  router.service(v1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) yield respond(req);
    },
  });
  // v1alpha has the same wire format under another package name.
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        const res = respond(fromBinaryCompat(req));
        yield create(v1alpha.ServerReflectionResponseSchema, res as unknown as v1alpha.ServerReflectionResponse);
      }
    },
  });
}

function fromBinaryCompat(req: v1alpha.ServerReflectionRequest): Req {
  return create(v1.ServerReflectionRequestSchema, req as unknown as Req);
}

function notFound(what: string): Res["messageResponse"] {
  return { case: "errorResponse", value: create(v1.ErrorResponseSchema, { errorCode: 5, errorMessage: `${what} not found` }) };
}

function encode(file: DescFile): Uint8Array {
  return toBinary(FileDescriptorProtoSchema, file.proto);
}

function withDeps(file: DescFile): DescFile[] {
  const out: DescFile[] = [];
  const visit = (f: DescFile) => {
    if (out.includes(f)) return;
    out.push(f);
    f.dependencies.forEach(visit);
  };
  visit(file);
  return out;
}

function fileOfSymbol(registry: Registry, symbol: string): DescFile | undefined {
  const name = symbol.replace(/^\./, "");
  const direct = registry.get(name);
  if (direct) return direct.file;
  // A method: package.Service.Method
  const dot = name.lastIndexOf(".");
  const service = dot > 0 ? registry.getService(name.slice(0, dot)) : undefined;
  if (service?.methods.some((m) => m.name === name.slice(dot + 1))) return service.file;
  return undefined;
}
