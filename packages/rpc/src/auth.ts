import { timingSafeEqual, createHash } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { Access, methodAccess } from "@glimpse/api";
import type { DescMethod } from "@bufbuild/protobuf";

export type KeyScope = "read" | "write";

/**
 * Bearer API keys. Configured as "key" (write scope) or "key:read" / "key:write", comma
 * separated. With no keys configured every RPC is open (only allowed when the operator says
 * so; the embedded default generates a key).
 */
export class ApiKeys {
  private readonly keys: { digest: Buffer; scope: KeyScope }[];

  constructor(entries: string[], readonly lockReads = false) {
    this.keys = entries.map((e) => {
      const m = /^(.*?)(?::(read|write))?$/.exec(e)!;
      return { digest: digest(m[1]!), scope: (m[2] as KeyScope | undefined) ?? "write" };
    });
  }

  get enabled(): boolean {
    return this.keys.length > 0;
  }

  /** The scope of a presented key, or undefined if it matches none. */
  scopeOf(key: string): KeyScope | undefined {
    const d = digest(key);
    // Compare digests in constant time so response timing says nothing about a key.
    return this.keys.find((k) => timingSafeEqual(k.digest, d))?.scope;
  }

  /** Throws UNAUTHENTICATED / PERMISSION_DENIED unless the header allows the method. */
  check(method: DescMethod, authorization: string | null): void {
    if (!this.enabled) return;
    const needed = methodAccess(method);
    if (needed === Access.READ && !this.lockReads) return;
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
    if (!m) {
      throw new ConnectError(`${method.parent.name}.${method.name} needs an API key: send "authorization: Bearer <key>"`, Code.Unauthenticated);
    }
    const scope = this.scopeOf(m[1]!);
    if (scope === undefined) throw new ConnectError("the API key is not valid", Code.Unauthenticated);
    if (needed === Access.WRITE && scope !== "write") {
      throw new ConnectError(`${method.parent.name}.${method.name} changes state; this key is read-only`, Code.PermissionDenied);
    }
  }

  interceptor(): Interceptor {
    return (next) => async (req) => {
      this.check(req.method, req.header.get("authorization"));
      return next(req);
    };
  }
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}
