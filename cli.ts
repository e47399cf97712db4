/**
 * The `denotorrent` command line: a thin layer over `mod.ts` that parses arguments, calls the
 * library and maps errors to exit codes (0 ok, 1 runtime failure, 2 usage error).
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import denoJson from "./deno.json" with { type: "json" };
import {
  decode,
  downloadPiece,
  type DownloadProgress,
  downloadTorrent,
  findPeers,
  formatPeerAddress,
  handshakePeer,
  type Metainfo,
  parsePeerAddress,
  type PeerAddress,
  ProgressReporter,
  type ProgressStats,
  readTorrentFile,
  runDemo,
  toJson,
} from "./mod.ts";

/** A mistake in how the command was called: exit code 2 and a usage line. */
class UsageError extends Error {
  readonly usage: string;
  constructor(message: string, usage: string) {
    super(message);
    this.name = "UsageError";
    this.usage = usage;
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Options;
  /** Positional argument count: exact, or [min, max]. */
  positionals: number | [number, number];
  run(values: Values, positionals: string[], signal: AbortSignal): Promise<void>;
}

const PEER_OPTION: Options = { peer: { type: "string", multiple: true } };

const COMMANDS: Command[] = [
  {
    name: "decode",
    summary: "Print a bencoded value as JSON",
    usage: "decode <bencoded>",
    options: {},
    positionals: 1,
    run(_values, [input]) {
      const value = decode(new TextEncoder().encode(input!));
      console.log(toJson(value));
      return Promise.resolve();
    },
  },
  {
    name: "info",
    summary: "Show what a torrent file describes",
    usage: "info [--json] <file.torrent>",
    options: { json: { type: "boolean" } },
    positionals: 1,
    async run(values, [path]) {
      const metainfo = await readTorrentFile(path!);
      console.log(values.json ? JSON.stringify(infoJson(metainfo)) : infoLines(metainfo));
    },
  },
  {
    name: "peers",
    summary: "Ask the torrent's trackers for peers",
    usage: "peers <file.torrent>",
    options: {},
    positionals: 1,
    async run(_values, [path], signal) {
      const metainfo = await readTorrentFile(path!);
      const peers = await findPeers(metainfo, { signal });
      for (const peer of peers) console.log(formatPeerAddress(peer));
    },
  },
  {
    name: "handshake",
    summary: "Shake hands with a peer and print its peer id",
    usage: "handshake <file.torrent> <ip>:<port>",
    options: {},
    positionals: 2,
    async run(_values, [path, address], signal) {
      const metainfo = await readTorrentFile(path!);
      const peer = parseAddressArgument(address!, "handshake <file.torrent> <ip>:<port>");
      const hello = await handshakePeer(peer, metainfo.infoHash, { signal });
      console.log(`Peer ID: ${hello.peerId.toHex()}`);
    },
  },
  {
    name: "download_piece",
    summary: "Download one piece, verified, to a file",
    usage: "download_piece -o <out> [--peer <ip:port>]... <file.torrent> <index>",
    options: { output: { type: "string", short: "o" }, ...PEER_OPTION },
    positionals: 2,
    async run(values, [path, indexText], signal) {
      const usage = "download_piece -o <out> [--peer <ip:port>]... <file.torrent> <index>";
      const out = values.output;
      if (typeof out !== "string") throw new UsageError("missing -o <out>", usage);
      const index = Number(indexText);
      if (!/^\d+$/.test(indexText!) || !Number.isSafeInteger(index)) {
        throw new UsageError(`piece index "${indexText}" is not a whole number`, usage);
      }
      const metainfo = await readTorrentFile(path!);
      if (index >= metainfo.pieceCount) {
        throw new RangeError(
          `Piece index ${index} is out of range: the torrent has ${metainfo.pieceCount} pieces`,
        );
      }
      const peers = peerArguments(values, usage);
      const bytes = await downloadPiece(metainfo, index, {
        signal,
        ...(peers.length > 0 ? { peers } : {}),
      });
      await Deno.writeFile(out, bytes);
      console.log(`Piece ${index} downloaded to ${out}.`);
    },
  },
  {
    name: "download",
    summary: "Download a whole torrent, verified, and resume a partial one",
    usage: "download [-o <out>] [options] <file.torrent>",
    options: {
      output: { type: "string", short: "o" },
      ...PEER_OPTION,
      port: { type: "string" },
      "max-connections": { type: "string" },
      "no-trackers": { type: "boolean" },
      seed: { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
      json: { type: "boolean" },
    },
    positionals: 1,
    run: runDownload,
  },
  {
    name: "demo",
    summary: "Seed a generated payload over loopback and download it (no internet needed)",
    usage: "demo [--size <MiB>] [--seeders <n>]",
    options: { size: { type: "string" }, seeders: { type: "string" } },
    positionals: 0,
    async run(values, _positionals, signal) {
      const usage = "demo [--size <MiB>] [--seeders <n>]";
      const sizeMiB = integerOption(values.size, "--size", usage, 1, 1024 * 1024) ?? 64;
      const seeders = integerOption(values.seeders, "--seeders", usage, 1, 50) ?? 3;
      const reporter = new ProgressReporter(Deno.stderr, {
        isTerminal: Deno.stderr.isTerminal(),
        width: () => Deno.stderr.isTerminal() ? Deno.consoleSize().columns : 80,
      });
      const result = await runDemo({
        size: sizeMiB * 1024 * 1024,
        seeders,
        signal,
        onLine: (line) => {
          reporter.clear();
          console.log(line);
        },
        onProgress: (progress) => reporter.update(progressStats(progress)),
      });
      if (!result.identical) throw new Error("The downloaded copy differs from the source");
    },
  },
];

function infoLines(metainfo: Metainfo): string {
  const lines = [];
  const tracker = metainfo.announce ?? metainfo.announceList[0]?.[0];
  if (tracker !== undefined) lines.push(`Tracker URL: ${tracker}`);
  if (metainfo.announceList.length > 1 || (metainfo.announceList[0]?.length ?? 0) > 1) {
    lines.push(`Trackers: ${metainfo.announceList.map((tier) => tier.join(" ")).join(" | ")}`);
  }
  lines.push(`Length: ${metainfo.totalLength}`);
  lines.push(`Info Hash: ${metainfo.infoHash.toHex()}`);
  lines.push(`Piece Length: ${metainfo.pieceLength}`);
  lines.push("Piece Hashes:");
  for (let i = 0; i < metainfo.pieceCount; i++) {
    lines.push(metainfo.pieceHashes.subarray(i * 20, i * 20 + 20).toHex());
  }
  if (metainfo.multiFile) {
    lines.push(`Name: ${metainfo.name}`);
    lines.push("Files:");
    for (const file of metainfo.files) lines.push(`${file.path.join("/")} (${file.length})`);
  }
  return lines.join("\n");
}

function infoJson(metainfo: Metainfo): Record<string, unknown> {
  const pieceHashes = [];
  for (let i = 0; i < metainfo.pieceCount; i++) {
    pieceHashes.push(metainfo.pieceHashes.subarray(i * 20, i * 20 + 20).toHex());
  }
  return {
    name: metainfo.name,
    infoHash: metainfo.infoHash.toHex(),
    announce: metainfo.announce ?? null,
    announceList: metainfo.announceList,
    length: metainfo.totalLength,
    pieceLength: metainfo.pieceLength,
    pieceCount: metainfo.pieceCount,
    private: metainfo.private,
    files: metainfo.files.map((file) => ({ path: file.path, length: file.length })),
    pieceHashes,
  };
}

async function runDownload(values: Values, [path]: string[], signal: AbortSignal): Promise<void> {
  const usage = "download [-o <out>] [options] <file.torrent>";
  const metainfo = await readTorrentFile(path!);
  const peers = peerArguments(values, usage);
  const port = integerOption(values.port, "--port", usage, 0, 65535);
  const maxConnections = integerOption(values["max-connections"], "--max-connections", usage, 1);
  const reporter = values.quiet ? undefined : new ProgressReporter(
    values.json ? Deno.stdout : Deno.stderr,
    {
      isTerminal: !values.json && Deno.stderr.isTerminal(),
      json: values.json === true,
      width: () => Deno.stderr.isTerminal() ? Deno.consoleSize().columns : 80,
    },
  );
  // One warning per tracker and message: a dead tracker retried for hours says so once.
  const warned = new Set<string>();
  const onTrackerError = (url: string, error: Error) => {
    const line = `warning: ${error.message}`;
    if (warned.has(`${url} ${line}`)) return;
    warned.add(`${url} ${line}`);
    reporter?.clear();
    console.error(line);
  };
  const result = await downloadTorrent(metainfo, {
    ...(typeof values.output === "string" ? { out: values.output } : {}),
    peers,
    signal,
    useTrackers: !values["no-trackers"],
    seed: values.seed === true,
    ...(port !== undefined ? { port } : {}),
    ...(maxConnections !== undefined ? { maxConnections } : {}),
    ...(reporter ? { onProgress: (progress) => reporter.update(progressStats(progress)) } : {}),
    ...(reporter ? { onTrackerError } : {}),
  });
  reporter?.finish(progressStats(result.progress));
  if (!result.complete) {
    throw new Error(
      `Stopped with ${result.progress.piecesHave} of ${metainfo.pieceCount} pieces verified ` +
        `in "${result.out}": run the same command again to resume`,
    );
  }
  if (!values.json) console.log(`Downloaded ${path} to ${result.out}.`);
}

function progressStats(progress: DownloadProgress): ProgressStats {
  return {
    totalBytes: progress.totalBytes,
    verifiedBytes: progress.verifiedBytes,
    downloadRate: progress.downloadRate,
    uploadRate: progress.uploadRate,
    uploaded: progress.uploaded,
    downloaded: progress.downloaded,
    peersConnected: progress.peersConnected,
    peersKnown: progress.peersKnown,
    piecesDone: progress.piecesHave,
    pieceCount: progress.pieceCount,
    elapsedMs: progress.elapsedMs,
  };
}

function integerOption(
  value: Values[string],
  name: string,
  usage: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (typeof value !== "string" || !/^\d+$/.test(value) || number < min || number > max) {
    throw new UsageError(`${name} must be a whole number from ${min} to ${max}`, usage);
  }
  return number;
}

function parseAddressArgument(text: string, usage: string): PeerAddress {
  try {
    return parsePeerAddress(text);
  } catch (error) {
    throw new UsageError((error as Error).message, usage);
  }
}

function peerArguments(values: Values, usage: string): PeerAddress[] {
  const list = values.peer;
  if (list === undefined) return [];
  return (Array.isArray(list) ? list : [list]).map((text) =>
    parseAddressArgument(String(text), usage)
  );
}

function globalHelp(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length));
  return [
    `denotorrent ${denoJson.version}: a BitTorrent client`,
    "",
    "Usage: denotorrent <command> [options] [arguments]",
    "",
    "Commands:",
    ...COMMANDS.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
    "",
    "Options:",
    "  -h, --help     Show help (also: <command> --help)",
    "  -V, --version  Show the version",
    "  --verbose      Show the cause chain and stack of errors",
  ].join("\n");
}

function commandHelp(command: Command): string {
  const flags = Object.entries(command.options).map(([name, spec]) =>
    `  ${spec.short ? `-${spec.short}, ` : ""}--${name}${spec.type === "string" ? " <value>" : ""}${
      spec.multiple ? " (repeatable)" : ""
    }`
  );
  return [
    `${command.summary}.`,
    "",
    `Usage: denotorrent ${command.usage}`,
    ...(flags.length > 0 ? ["", "Options:", ...flags] : []),
    "  -h, --help",
  ].join("\n");
}

function describeError(error: unknown, verbose: boolean): string {
  if (!(error instanceof Error)) return String(error);
  if (!verbose) return error.message;
  const parts = [error.stack ?? error.message];
  let cause = error.cause;
  while (cause !== undefined) {
    parts.push(`caused by: ${cause instanceof Error ? cause.stack ?? cause.message : cause}`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return parts.join("\n");
}

/**
 * Runs the command line with the given arguments.
 *
 * @param args The arguments, without the program name.
 * @returns The exit code: 0 on success, 1 on a runtime failure, 2 on a usage error.
 */
export async function main(args: string[]): Promise<number> {
  const verbose = args.includes("--verbose");
  args = args.filter((arg) => arg !== "--verbose");
  const [name, ...rest] = args;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    console.log(globalHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === "-V" || name === "--version") {
    console.log(`denotorrent ${denoJson.version}`);
    return 0;
  }
  const command = COMMANDS.find((candidate) => candidate.name === name);
  const controller = new AbortController();
  const onSignal = () => controller.abort(new Error("Interrupted"));
  try {
    if (command === undefined) {
      throw new UsageError(`unknown command "${name}"`, "<command> [options] [arguments]");
    }
    if (rest.includes("-h") || rest.includes("--help")) {
      console.log(commandHelp(command));
      return 0;
    }
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        options: command.options,
        allowPositionals: true,
        strict: true,
      });
    } catch (error) {
      throw new UsageError((error as Error).message, command.usage);
    }
    const [min, max] = typeof command.positionals === "number"
      ? [command.positionals, command.positionals]
      : command.positionals;
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw new UsageError(
        `expected ${min === max ? min : `${min} to ${max}`} argument${
          max === 1 ? "" : "s"
        }, got ${parsed.positionals.length}`,
        command.usage,
      );
    }
    Deno.addSignalListener("SIGINT", onSignal);
    try {
      await command.run(parsed.values as Values, parsed.positionals, controller.signal);
    } finally {
      Deno.removeSignalListener("SIGINT", onSignal);
    }
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`Usage: denotorrent ${error.usage}`);
      console.error(`error: ${error.message}`);
      return 2;
    }
    console.error(`error: ${describeError(error, verbose)}`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
