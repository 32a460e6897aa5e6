import type { Body, ObjectInfo, ObjectStore, PutOptions } from "@glimpse/objectstore";

/**
 * Wraps a store to inject faults: `failAfterPuts` makes every put after the first N throw
 * (a crash in the middle of an upload); `putDelayMs` slows every put; `onPut` sees each key.
 */
export function faultyStore(inner: ObjectStore, opts: { failAfterPuts?: number; putDelayMs?: number; onPut?: (key: string, n: number) => void } = {}): ObjectStore & { puts: string[] } {
  const puts: string[] = [];
  let started = 0;
  const store: ObjectStore & { puts: string[] } = {
    puts,
    kind: inner.kind,
    location: inner.location,
    init: () => inner.init(),
    async put(key: string, body: Body, options?: PutOptions): Promise<ObjectInfo> {
      if (opts.failAfterPuts !== undefined && started >= opts.failAfterPuts) throw new Error(`injected fault: put ${key} after ${started} puts`);
      started++;
      if (opts.putDelayMs) await new Promise((r) => setTimeout(r, opts.putDelayMs));
      const info = await inner.put(key, body, options);
      puts.push(key);
      opts.onPut?.(key, puts.length);
      return info;
    },
    get: (key, range) => inner.get(key, range),
    getBuffer: (key) => inner.getBuffer(key),
    stat: (key) => inner.stat(key),
    list: (prefix, options) => inner.list(prefix, options),
    listPage: (prefix, options) => inner.listPage(prefix, options),
    delete: (key) => inner.delete(key),
    close: () => inner.close(),
  };
  return store;
}
