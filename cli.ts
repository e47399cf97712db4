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
  DEFAULT_DHT_BOOTSTRAP,
  DhtPeerSource,
  downloadPiece,
  type DownloadProgress,
  downloadTorrent,
  findPeers,
  formatPeerAddress,
  handshakePeer,
  magnetHandshake,
  type Metainfo,
  parseMagnet,
  parsePeerAddress,
  type PeerAddress,
  ProgressReporter,
  type ProgressStats,
  readTorrentFile,
  resolveMagnet,
  runDemo,
  toJson,
  torrentFileBytes,
} from "./mod.ts";
import { createTorrentFile, type SeedStats, seedTorrent } from "./mod.ts";
import { Client, serveFile } from "./mod.ts";

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

/** Options of every command that takes a magnet link. */
const MAGNET_OPTIONS: Options = {
  "no-dht": { type: "boolean" },
  "dht-bootstrap": { type: "string", multiple: true },
  "dht-state": { type: "string" },
  "save-torrent": { type: "string" },
};

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
    usage: "info [--json] <file.torrent|magnet>",
    options: { json: { type: "boolean" }, ...MAGNET_OPTIONS },
    positionals: 1,
    async run(values, [path], signal) {
      await using loaded = await loadTorrentArgument(path!, values, "info <file.torrent|magnet>", {
        signal,
      });
      const metainfo = loaded.metainfo;
      console.log(values.json ? JSON.stringify(infoJson(metainfo)) : infoLines(metainfo));
    },
  },
  {
    name: "peers",
    summary: "Ask the torrent's trackers for peers",
    usage: "peers <file.torrent|magnet>",
    options: { ...MAGNET_OPTIONS },
    positionals: 1,
    async run(values, [path], signal) {
      await using loaded = await loadTorrentArgument(path!, values, "peers <file.torrent|magnet>", {
        signal,
      });
      // For a magnet link, the peers met while fetching its metadata (trackers, DHT, x.pe).
      const peers = loaded.magnet ? loaded.peers : await findPeers(loaded.metainfo, { signal });
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
      // A magnet link names the info hash: no need for its metadata here.
      const infoHash = /^magnet:/i.test(path!)
        ? parseMagnet(path!).infoHash
        : (await readTorrentFile(path!)).infoHash;
      const peer = parseAddressArgument(address!, "handshake <file.torrent> <ip>:<port>");
      const hello = await handshakePeer(peer, infoHash, { signal });
      console.log(`Peer ID: ${hello.peerId.toHex()}`);
    },
  },
  {
    name: "download_piece",
    summary: "Download one piece, verified, to a file",
    usage: "download_piece -o <out> [--peer <ip:port>]... <file.torrent> <index>",
    options: { output: { type: "string", short: "o" }, ...PEER_OPTION, ...MAGNET_OPTIONS },
    positionals: 2,
    async run(values, [path, indexText], signal) {
      const usage = "download_piece -o <out> [--peer <ip:port>]... <file.torrent> <index>";
      const out = values.output;
      if (typeof out !== "string") throw new UsageError("missing -o <out>", usage);
      const index = Number(indexText);
      if (!/^\d+$/.test(indexText!) || !Number.isSafeInteger(index)) {
        throw new UsageError(`piece index "${indexText}" is not a whole number`, usage);
      }
      await using loaded = await loadTorrentArgument(path!, values, usage, { signal });
      const metainfo = loaded.metainfo;
      if (index >= metainfo.pieceCount) {
        throw new RangeError(
          `Piece index ${index} is out of range: the torrent has ${metainfo.pieceCount} pieces`,
        );
      }
      const peers = [...peerArguments(values, usage), ...loaded.peers];
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
    usage: "download [-o <out>] [options] <file.torrent|magnet>",
    options: {
      output: { type: "string", short: "o" },
      ...PEER_OPTION,
      port: { type: "string" },
      "max-connections": { type: "string" },
      "no-trackers": { type: "boolean" },
      seed: { type: "boolean" },
      fsync: { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
      json: { type: "boolean" },
      ...MAGNET_OPTIONS,
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
  {
    name: "stream",
    summary: "Serve a file of a torrent over HTTP (with range requests) while it downloads",
    usage: "stream [--file <n>] [--port <port>] [--stdout] [-o <dir>] [--peer <ip:port>]... " +
      "<file.torrent|magnet>",
    options: {
      file: { type: "string" },
      port: { type: "string" },
      stdout: { type: "boolean" },
      output: { type: "string", short: "o" },
      "peer-port": { type: "string" },
      "no-trackers": { type: "boolean" },
      ...PEER_OPTION,
      ...MAGNET_OPTIONS,
    },
    positionals: 1,
    async run(values, [path], signal) {
      const usage = commandNamed("stream").usage;
      const index = integerOption(values.file, "--file", usage, 0) ?? 0;
      const port = integerOption(values.port, "--port", usage, 0, 65535) ?? 0;
      const peerPort = integerOption(values["peer-port"], "--peer-port", usage, 0, 65535);
      await using loaded = await loadTorrentArgument(path!, values, usage, { signal });
      const files = loaded.metainfo.files.filter((file) => !file.padding);
      if (index >= files.length) {
        throw new UsageError(`--file ${index}: the torrent has ${files.length} file(s)`, usage);
      }
      await using client = new Client({
        useTrackers: values["no-trackers"] !== true,
        ...(peerPort === undefined ? {} : { port: peerPort }),
      });
      const torrent = await client.add(loaded.metainfo, {
        dir: typeof values.output === "string" ? values.output : ".",
        peers: [...peerArguments(values, usage), ...loaded.peers],
        signal,
      });
      const file = torrent.files[index]!;
      if (values.stdout) {
        await file.stream({ signal }).pipeTo(Deno.stdout.writable, { preventClose: true });
        return;
      }
      await using server = serveFile(file, { port, signal });
      console.log(server.url);
      console.error(`Serving "${file.path}" (${mebibytes(file.length)}) until interrupted`);
      await server.finished;
    },
  },
  ...magnetCommands(),
  ...seedCommands(),
];

// --- create and seed ---

function seedCommands(): Command[] {
  return [
    {
      name: "create",
      summary: "Make a torrent file of a file or a directory",
      usage: createUsage(),
      options: {
        output: { type: "string", short: "o" },
        announce: { type: "string", short: "a", multiple: true },
        "piece-length": { type: "string", short: "l" },
        private: { type: "boolean" },
        comment: { type: "string", short: "c" },
        "web-seed": { type: "string", short: "w", multiple: true },
        force: { type: "boolean", short: "f" },
        quiet: { type: "boolean", short: "q" },
      },
      positionals: 1,
      run: runCreate,
    },
    {
      name: "seed",
      summary: "Share a torrent's data with peers until interrupted",
      usage: seedUsage(),
      options: {
        peer: { type: "string", multiple: true },
        port: { type: "string" },
        "upload-slots": { type: "string" },
        "max-connections": { type: "string" },
        "no-trackers": { type: "boolean" },
        "no-dht": { type: "boolean" },
        "dht-bootstrap": { type: "string", multiple: true },
        "dht-state": { type: "string" },
        "no-pex": { type: "boolean" },
        quiet: { type: "boolean", short: "q" },
      },
      positionals: 2,
      run: runSeed,
    },
  ];
}

function createUsage(): string {
  return "create [-o <out.torrent>] [--announce <url>]... [--piece-length <bytes>] " +
    "[--private] [--comment <text>] [--web-seed <url>]... <path>";
}

function seedUsage(): string {
  return "seed [--port <port>] [--peer <ip:port>]... [--upload-slots <n>] [--no-trackers] " +
    "[--no-dht] [--dht-bootstrap <host:port>]... [--dht-state <file>] [--no-pex] " +
    "<file.torrent> <path>";
}

/** `create`: hash a file or directory into `<name>.torrent`; info hash and magnet to stdout. */
async function runCreate(values: Values, [path]: string[], signal: AbortSignal): Promise<void> {
  const usage = createUsage();
  const pieceLength = byteCountOption(values["piece-length"], "--piece-length", usage);
  const powerOfTwo = pieceLength !== undefined && Number.isInteger(Math.log2(pieceLength));
  if (pieceLength !== undefined && (pieceLength < 16384 || !powerOfTwo)) {
    throw new UsageError("--piece-length must be a power of two of at least 16K", usage);
  }
  // As mktorrent: each --announce is a tier; commas separate trackers within one tier.
  const tiers = stringList(values.announce).map((tier) =>
    tier.split(",").map((url) => url.trim()).filter((url) => url.length > 0)
  ).filter((tier) => tier.length > 0);
  const webSeeds = stringList(values["web-seed"]);
  const showProgress = !values.quiet && Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  const created = await createTorrentFile(path!, {
    signal,
    createdBy: `denotorrent ${denoJson.version}`,
    overwrite: values.force === true,
    ...(typeof values.output === "string" ? { out: values.output } : {}),
    ...(pieceLength !== undefined ? { pieceLength } : {}),
    ...(tiers.length > 0 ? { announce: tiers } : {}),
    ...(values.private ? { private: true } : {}),
    ...(typeof values.comment === "string" ? { comment: values.comment } : {}),
    ...(webSeeds.length > 0 ? { urlList: webSeeds } : {}),
    ...(showProgress
      ? {
        onProgress: (done: number, total: number) => {
          const percent = total === 0 ? 100 : Math.floor((done / total) * 100);
          Deno.stderr.writeSync(
            encoder.encode(`\rHashing ${percent}% (${mebibytes(done)} of ${mebibytes(total)})`),
          );
        },
      }
      : {}),
  });
  if (showProgress) Deno.stderr.writeSync(encoder.encode("\n"));
  const { metainfo } = created;
  if (!values.quiet) {
    const files = metainfo.files.length;
    console.error(
      `Created ${created.out}: ${files} file${files === 1 ? "" : "s"}, ` +
        `${metainfo.pieceCount} pieces of ${metainfo.pieceLength} bytes.`,
    );
  }
  console.log(`Info Hash: ${metainfo.infoHash.toHex()}`);
  console.log(`Magnet: ${created.magnet}`);
}

/**
 * `seed`: verify the data, then serve it until SIGINT. Status lines go to stderr (stdout is
 * kept for data): `Seeding <name> on port <P> (<n> pieces verified).` once ready, a summary
 * when stopped.
 */
async function runSeed(
  values: Values,
  [torrentPath, path]: string[],
  signal: AbortSignal,
): Promise<void> {
  const usage = seedUsage();
  const metainfo = await readTorrentFile(torrentPath!);
  const peers = peerArguments(values, usage);
  const port = integerOption(values.port, "--port", usage, 0, 65535);
  const uploadSlots = integerOption(values["upload-slots"], "--upload-slots", usage, 1, 1000);
  const maxConnections = integerOption(values["max-connections"], "--max-connections", usage, 1);
  const quiet = values.quiet === true;
  const encoder = new TextEncoder();
  const showProgress = !quiet && Deno.stderr.isTerminal();
  // BEP 27: a private torrent's peers come from its trackers only.
  await using dht = values["no-dht"] === true || metainfo.private
    ? undefined
    : await openDht(values, usage);
  const seeder = await seedTorrent(metainfo, path!, {
    signal,
    peers,
    useTrackers: !values["no-trackers"],
    ...(dht ? { dht } : {}),
    ...(values["no-pex"] === true ? { pex: false } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(uploadSlots !== undefined ? { uploadSlots } : {}),
    ...(maxConnections !== undefined ? { maxConnections } : {}),
    ...(showProgress
      ? {
        onCheck: (progress) =>
          Deno.stderr.writeSync(
            encoder.encode(`\rChecking ${progress.piecesChecked} of ${progress.piecesToCheck}`),
          ),
      }
      : {}),
    ...(quiet ? {} : {
      onTrackerError: (url: string, error: Error) =>
        console.error(`warning: tracker ${url}: ${error.message}`),
      onDhtError: (error: unknown) =>
        console.error(`warning: DHT: ${error instanceof Error ? error.message : error}`),
    }),
  });
  if (showProgress) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
  const verified = seeder.complete
    ? `${seeder.piecesVerified} pieces verified`
    : `${seeder.piecesVerified} of ${seeder.pieceCount} pieces verified; only those are served`;
  console.error(`Seeding ${metainfo.name} on port ${seeder.port} (${verified}).`);
  if (dht && !quiet) console.error(`Announcing port ${seeder.port} to the DHT.`);
  let final: SeedStats;
  try {
    final = await seeder.stopped;
  } finally {
    await seeder.close();
  }
  if (!quiet) {
    const peersText = `${final.peersSeen} peer${final.peersSeen === 1 ? "" : "s"}`;
    console.error(
      `Stopped seeding ${metainfo.name}: uploaded ${final.uploaded} bytes to ${peersText}.`,
    );
  }
}

function stringList(value: Values[string]): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

/** A byte count: digits, optionally with a K, M or G suffix (binary units). */
function byteCountOption(value: Values[string], name: string, usage: string): number | undefined {
  if (value === undefined) return undefined;
  const match = typeof value === "string" ? /^(\d+)([KMG]?)(?:i?B)?$/i.exec(value) : null;
  if (!match) {
    throw new UsageError(`${name} must be a byte count such as 262144 or 256K`, usage);
  }
  const units: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };
  return Number(match[1]) * (units[match[2]!.toUpperCase()] ?? 1);
}

function mebibytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

// --- end of create and seed ---

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
  const usage = "download [-o <out>] [options] <file.torrent|magnet>";
  await using loaded = await loadTorrentArgument(path!, values, usage, {
    signal,
    dhtForFiles: true,
  });
  const metainfo = loaded.metainfo;
  const peers = [...peerArguments(values, usage), ...loaded.peers];
  const dht = loaded.dht;
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
  // SIGTERM (a service manager, `kill`) stops as cleanly as Ctrl-C: data, resume file, `stopped`.
  const terminate = new AbortController();
  const onTerminate = () => terminate.abort(new Error("Terminated"));
  const handlesTerm = Deno.build.os !== "windows";
  if (handlesTerm) Deno.addSignalListener("SIGTERM", onTerminate);
  const result = await downloadTorrent(metainfo, {
    ...(typeof values.output === "string" ? { out: values.output } : {}),
    peers,
    signal: AbortSignal.any([signal, terminate.signal]),
    useTrackers: !values["no-trackers"],
    seed: values.seed === true,
    fsync: values.fsync === true,
    ...(port !== undefined ? { port } : {}),
    ...(maxConnections !== undefined ? { maxConnections } : {}),
    ...(reporter ? { onProgress: (progress) => reporter.update(progressStats(progress)) } : {}),
    ...(reporter ? { onTrackerError } : {}),
    ...(dht
      ? {
        peerSource: ({ port, signal }) =>
          dht.peers(metainfo.infoHash, { signal, announcePort: port, intervalMs: 60_000 }),
      }
      : {}),
  }).finally(() => {
    if (handlesTerm) Deno.removeSignalListener("SIGTERM", onTerminate);
  });
  reporter?.finish(progressStats(result.progress));
  if (!result.complete) {
    throw new Error(
      `Stopped with ${result.progress.piecesHave} of ${metainfo.pieceCount} pieces verified ` +
        `in "${result.out}": run the same command again to resume`,
    );
  }
  if (!values.json) {
    console.log(`Downloaded ${loaded.magnet ? metainfo.name : path} to ${result.out}.`);
  }
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

/** A torrent named on the command line: a `.torrent` file, or a magnet link resolved from peers. */
interface LoadedTorrent extends AsyncDisposable {
  metainfo: Metainfo;
  /** True when it came from a magnet link. */
  magnet: boolean;
  /** Peers met while fetching a magnet link's metadata, to reuse for the download. */
  peers: PeerAddress[];
  /** The DHT, while on; disposing of the LoadedTorrent saves its table and closes it. */
  dht: DhtPeerSource | undefined;
}

/**
 * Reads a torrent file, or resolves a magnet link (x.pe, trackers and the DHT unless
 * `--no-dht`); writes `--save-torrent`. With `dhtForFiles`, a public torrent file gets a DHT
 * too, for the download to find more peers.
 */
async function loadTorrentArgument(
  argument: string,
  values: Values,
  usage: string,
  options: { signal: AbortSignal; dhtForFiles?: boolean },
): Promise<LoadedTorrent> {
  const magnet = /^magnet:/i.test(argument);
  const link = magnet ? parseMagnet(argument) : undefined;
  const file = magnet ? undefined : await readTorrentFile(argument);
  const wantDht = values["no-dht"] !== true &&
    (magnet || (options.dhtForFiles === true && file?.private === false));
  const dht = wantDht ? await openDht(values, usage) : undefined;
  const peers: PeerAddress[] = [];
  const loaded: LoadedTorrent = {
    metainfo: file!,
    magnet,
    peers,
    dht,
    [Symbol.asyncDispose]: async () => await dht?.close(),
  };
  try {
    if (link !== undefined) {
      loaded.metainfo = await resolveMagnet(link, {
        signal: options.signal,
        peers: peerArguments(values, usage),
        useTrackers: values["no-trackers"] !== true,
        onPeers: (found) => peers.push(...found),
        ...(dht ? { dht } : {}),
      });
      if (loaded.metainfo.private && dht) {
        // BEP 27: a private torrent's peers come from its trackers only.
        loaded.dht = undefined;
        await dht.close();
      }
    }
    const savePath = values["save-torrent"];
    if (typeof savePath === "string") {
      await Deno.writeFile(savePath, torrentFileBytes(loaded.metainfo));
    }
  } catch (error) {
    await dht?.close();
    throw error;
  }
  return loaded;
}

/**
 * The DHT bootstrap nodes used when `--dht-bootstrap` is not given: the environment variable
 * `DENOTORRENT_DHT_BOOTSTRAP` (comma-separated `host:port`; empty turns the DHT off unless
 * `--dht-bootstrap` is given), else the public routers.
 */
function dhtBootstrapDefault(): string[] | "off" {
  const text = Deno.env.get("DENOTORRENT_DHT_BOOTSTRAP");
  if (text === undefined) return [...DEFAULT_DHT_BOOTSTRAP];
  const nodes = text.split(/[\s,]+/).filter((node) => node !== "");
  return nodes.length === 0 ? "off" : nodes;
}

/**
 * Opens the DHT with `--dht-bootstrap` (or the default nodes) and `--dht-state`; undefined when
 * the environment turned it off.
 */
async function openDht(values: Values, usage: string): Promise<DhtPeerSource | undefined> {
  const listed = values["dht-bootstrap"] ?? dhtBootstrapDefault();
  if (listed === "off") return undefined;
  const bootstrap = (Array.isArray(listed) ? listed : [listed]).map((text) =>
    parseAddressArgument(String(text), usage)
  );
  return await DhtPeerSource.open({
    bootstrap,
    ...(typeof values["dht-state"] === "string" ? { statePath: values["dht-state"] } : {}),
  });
}

function commandNamed(name: string): Command {
  const command = COMMANDS.find((candidate) => candidate.name === name);
  if (command === undefined) throw new Error(`Cannot find the "${name}" command`);
  return command;
}

/** The magnet commands (BEP 9); the download ones share the torrent-file commands' code. */
function magnetCommands(): Command[] {
  return [
    {
      name: "magnet_parse",
      summary: "Show what a magnet link names",
      usage: "magnet_parse <magnet>",
      options: {},
      positionals: 1,
      run(_values, [uri]) {
        const link = parseMagnet(uri!);
        const lines = [];
        if (link.trackers[0] !== undefined) lines.push(`Tracker URL: ${link.trackers[0]}`);
        lines.push(`Info Hash: ${link.infoHash.toHex()}`);
        if (link.displayName !== undefined) lines.push(`Name: ${link.displayName}`);
        if (link.exactLength !== undefined) lines.push(`Length: ${link.exactLength}`);
        for (const peer of link.peers) lines.push(`Peer: ${formatPeerAddress(peer)}`);
        console.log(lines.join("\n"));
        return Promise.resolve();
      },
    },
    {
      name: "magnet_handshake",
      summary: "Shake hands (BEP 10) with a peer of a magnet link and print its ut_metadata id",
      usage: "magnet_handshake [--peer <ip:port>]... [--no-dht] <magnet>",
      options: { ...PEER_OPTION, ...MAGNET_OPTIONS, "no-trackers": { type: "boolean" } },
      positionals: 1,
      async run(values, [uri], signal) {
        const usage = "magnet_handshake [--peer <ip:port>]... [--no-dht] <magnet>";
        const link = parseMagnet(uri!);
        await using dht = values["no-dht"] === true ? undefined : await openDht(values, usage);
        const result = await magnetHandshake(link, {
          signal,
          peers: peerArguments(values, usage),
          useTrackers: values["no-trackers"] !== true,
          ...(dht ? { dht } : {}),
        });
        console.log(`Peer ID: ${result.peerId.toHex()}`);
        console.log(`Peer Metadata Extension ID: ${result.metadataExtensionId}`);
      },
    },
    {
      name: "magnet_info",
      summary: "Fetch a magnet link's metadata from peers and show it",
      usage: "magnet_info [--json] [--save-torrent <path>] <magnet>",
      get options() {
        return commandNamed("info").options;
      },
      positionals: 1,
      run: (values, positionals, signal) => commandNamed("info").run(values, positionals, signal),
    },
    {
      name: "magnet_download_piece",
      summary: "Download one piece of a magnet link's torrent, verified, to a file",
      usage: "magnet_download_piece -o <out> <magnet> <index>",
      get options() {
        return commandNamed("download_piece").options;
      },
      positionals: 2,
      run: (values, positionals, signal) =>
        commandNamed("download_piece").run(values, positionals, signal),
    },
    {
      name: "magnet_download",
      summary: "Download a magnet link's torrent, verified",
      usage: "magnet_download -o <out> [options] <magnet>",
      get options() {
        return commandNamed("download").options;
      },
      positionals: 1,
      run: (values, positionals, signal) =>
        commandNamed("download").run(values, positionals, signal),
    },
  ];
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

/** What each option means, for `<command> --help`; the same name means the same everywhere. */
const OPTION_HELP: Record<string, [placeholder: string, text: string]> = {
  announce: ["<url>", "tracker URL; each use is a tier (commas separate trackers in a tier)"],
  comment: ["<text>", "comment stored in the torrent"],
  "dht-bootstrap": ["<host:port>", "DHT bootstrap node (default: public routers)"],
  "dht-state": ["<path>", "where the DHT routing table is kept between runs"],
  file: ["<n>", "index of the file to serve (default 0)"],
  force: ["", "overwrite an existing output file"],
  fsync: ["", "sync data to disk before each resume save (survives a power cut)"],
  json: ["", "machine-readable output (JSON)"],
  "max-connections": ["<n>", "most peer connections (default 50)"],
  "no-dht": ["", "do not use the DHT"],
  "no-pex": ["", "do not exchange peers with peers (BEP 11)"],
  "no-trackers": ["", "do not ask the trackers; use --peer peers only"],
  output: ["<path>", "where to write"],
  peer: ["<ip:port>", "a peer to dial; skips the tracker where one is needed"],
  "peer-port": ["<n>", "port to accept peers on"],
  "piece-length": ["<bytes>", "piece length, a power of two from 16 KiB (e.g. 256K)"],
  port: ["<n>", "port to listen on (default 6881, or the next free one)"],
  private: ["", "mark the torrent private (BEP 27: trackers only)"],
  quiet: ["", "no progress output"],
  "save-torrent": ["<path>", "write the fetched metadata as a .torrent file"],
  seed: ["", "keep seeding after the download completes, until Ctrl-C"],
  size: ["<MiB>", "payload size in MiB (default 64)"],
  seeders: ["<n>", "number of serving peers (default 3)"],
  stdout: ["", "write the file to stdout instead of serving it"],
  "upload-slots": ["<n>", "peers uploaded to at once (default 4)"],
  "web-seed": ["<url>", "web seed URL (BEP 19)"],
};

function commandHelp(command: Command): string {
  const rows = Object.entries(command.options).map(([name, spec]) => {
    const [placeholder, text] = OPTION_HELP[name] ??
      [spec.type === "string" ? "<value>" : "", ""];
    const flag = `${spec.short ? `-${spec.short}, ` : "    "}--${name}${
      placeholder ? ` ${placeholder}` : ""
    }`;
    return [flag, `${text}${spec.multiple ? " (repeatable)" : ""}`] as const;
  });
  rows.push(["-h, --help", "show this help"]);
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return [
    `${command.summary}.`,
    "",
    `Usage: denotorrent ${command.usage}`,
    "",
    "Options:",
    ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`.trimEnd()),
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
