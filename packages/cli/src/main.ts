import { banner, startMesh } from "./mesh.js";

const USAGE = `usage: glimpse <command>

commands:
  up          run the whole mesh on this machine (the embedded default)
`;

const [command] = process.argv.slice(2);
switch (command) {
  case "up": {
    const mesh = await startMesh();
    process.stdout.write(banner(mesh) + "\n");
    const stop = () => void mesh.stop().then(() => process.exit(0));
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    break;
  }
  default:
    process.stderr.write(USAGE);
    process.exit(command === undefined || command === "help" ? 0 : 2);
}
