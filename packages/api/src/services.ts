import type { DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { getOption } from "@bufbuild/protobuf";
import { Access, access } from "./gen/glimpse/api/v1/annotations_pb.js";
import { DataService } from "./gen/glimpse/data/v1/data_service_pb.js";
import { RankingService } from "./gen/glimpse/ranking/v1/ranking_service_pb.js";
import { TrainingService } from "./gen/glimpse/training/v1/training_service_pb.js";

/** The three Glimpse services, by the short name used in config and logs. */
export const SERVICES = {
  ranking: RankingService,
  training: TrainingService,
  data: DataService,
} as const satisfies Record<string, DescService>;

export type ServiceName = keyof typeof SERVICES;

/**
 * The access level a method declares in its proto options. Infrastructure services
 * (grpc.health, grpc.reflection) are reads; a Glimpse method without the option counts as a
 * write, so a forgotten annotation fails closed.
 */
export function methodAccess(method: DescMethod): Access {
  if (!method.parent.typeName.startsWith("glimpse.")) return Access.READ;
  const a = getOption(method, access);
  return a === Access.UNSPECIFIED ? Access.WRITE : a;
}

/** Every request message of the Glimpse services and the Glimpse messages they nest, once each. */
export function requestMessages(): DescMessage[] {
  const seen = new Map<string, DescMessage>();
  const visit = (m: DescMessage) => {
    if (seen.has(m.typeName) || !m.typeName.startsWith("glimpse.")) return;
    seen.set(m.typeName, m);
    for (const f of m.fields) if (f.message) visit(f.message);
  };
  for (const service of Object.values(SERVICES)) for (const m of service.methods) visit(m.input);
  return [...seen.values()];
}
