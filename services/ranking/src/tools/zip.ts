/** Reads selected entries of a zip archive into memory (yauzl, streaming). */
import yauzl from "yauzl";

export function readZipEntries(path: string, want: (name: string) => boolean): Promise<Map<string, Buffer>> {
  return new Promise((resolvePromise, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error("cannot open zip"));
      const out = new Map<string, Buffer>();
      zip.on("error", reject);
      zip.on("end", () => resolvePromise(out));
      zip.on("entry", (e: yauzl.Entry) => {
        if (!want(e.fileName)) return zip.readEntry();
        zip.openReadStream(e, (err2, stream) => {
          if (err2 || !stream) return reject(err2 ?? new Error("cannot read entry"));
          const chunks: Buffer[] = [];
          stream.on("data", (c: Buffer) => chunks.push(c));
          stream.on("error", reject);
          stream.on("end", () => {
            out.set(e.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.readEntry();
    });
  });
}

/** Flickr8K from the original archives: captions (cleaned), official splits, and the JPEG bytes of `want` images. */
export async function readFlickr8k(dir: string, want?: (id: string, splits: { train: string[]; dev: string[]; test: string[] }) => boolean): Promise<{ captions: Map<string, string[]>; splits: { train: string[]; dev: string[]; test: string[] }; images: Map<string, Buffer> }> {
  const { parseSplitList, parseTokenFile } = await import("@glimpse/pipeline");
  const { join } = await import("node:path");
  const text = await readZipEntries(join(dir, "Flickr8k_text.zip"), (f) => /Flickr8k\.token\.txt$|Flickr_8k\.(train|dev|test)Images\.txt$/.test(f));
  const find = (suffix: string) => [...text].find(([k]) => k.endsWith(suffix))![1].toString("utf8");
  const { captions } = parseTokenFile(find("Flickr8k.token.txt"));
  const splits = { train: parseSplitList(find("Flickr_8k.trainImages.txt")), dev: parseSplitList(find("Flickr_8k.devImages.txt")), test: parseSplitList(find("Flickr_8k.testImages.txt")) };
  const raw = await readZipEntries(join(dir, "Flickr8k_Dataset.zip"), (f) => {
    const m = /([^/]+)\.jpg$/i.exec(f);
    return m !== null && !f.includes("__MACOSX") && (want ? want(m[1]!, splits) : true);
  });
  const images = new Map<string, Buffer>();
  for (const [name, bytes] of raw) images.set(/([^/]+)\.jpg$/i.exec(name)![1]!, bytes);
  return { captions, splits, images };
}
