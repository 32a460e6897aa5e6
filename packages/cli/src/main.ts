import { banner, startMesh } from "./mesh.js";

const USAGE = `usage: glimpse <command>

commands:
  up                  run the whole mesh on this machine (the embedded default)
  pipeline <step> …   run the dataset pipeline or one step (see: glimpse pipeline --help)

through the gateway (--gateway or GLIMPSE_URL, default http://127.0.0.1:8000; --api-key or
GLIMPSE_API_KEY, default the key \`npm start\` keeps in .data/api-key; --json on every one):
  search "<text>" [--top-k N]          gallery images for a text
  caption <photo file | image id>      captions for a photo (uploaded) or a gallery image
  train [--epochs N] [--set k=v]… [--config f.json] [--promote] [--watch]
                                       start a training run; --watch follows it to its end
  runs [--pipeline]                    training runs (or dataset pipeline runs), newest first
  models [list] | promote <version> | rollback
                                       model versions; make one production; back to the previous
  datasets [<dataset>]                 published dataset versions
  collections <cmd> …                  your own photos (alias: col; see: glimpse collections --help):
                                       create, list, get, sync, search, add, photos, duplicates, rm
`;

const [command] = process.argv.slice(2);
switch (command) {
  case "up": {
    const mesh = await startMesh();
    process.stdout.write(banner(mesh) + "\n");
    // `on`, not `once`: npm/tsx wrappers forward the same signal again, and a second
    // SIGTERM with no handler would kill this process before it has stopped its children.
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      void mesh.stop().then(() => process.exit(0));
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    break;
  }
  case "pipeline": {
    const { main } = await import("@glimpse/pipeline/cli");
    process.exit(await main(process.argv.slice(3)));
    break;
  }
  case "collections":
  case "col": {
    const { main } = await import("./collections.js");
    const code = await main(process.argv.slice(3), { stdout: process.stdout, stderr: process.stderr });
    // stdout may be a pipe: let what was written go out before exiting
    await new Promise<void>((r) => process.stdout.write("", () => r()));
    process.exit(code);
    break;
  }
  case "search":
  case "caption":
  case "train":
  case "runs":
  case "models":
  case "datasets": {
    const { COMMANDS } = await import("./commands.js");
    const code = await COMMANDS[command]!(process.argv.slice(3), { stdout: process.stdout, stderr: process.stderr });
    await new Promise<void>((r) => process.stdout.write("", () => r()));
    process.exit(code);
    break;
  }
  default:
    process.stderr.write(USAGE);
    process.exit(command === undefined || command === "help" ? 0 : 2);
}
