/**
 * Interop: our HTTP and UDP tracker clients against a real `opentracker` (Debian's build runs in
 * whitelist mode). Skipped when opentracker is not installed.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import {
  announceHttp,
  type AnnounceRequest,
  announceUdp,
  ConnectionIdCache,
  TrackerError,
  TrackerFailureError,
} from "../../lib/tracker/mod.ts";

const OPENTRACKER = findExecutable("opentracker");
const NOT_AUTHORIZED = "Requested download is not authorized for use with this tracker.";

function findExecutable(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    try {
      const path = `${dir}/${name}`;
      if (Deno.statSync(path).isFile) return path;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  return undefined;
}

if (!OPENTRACKER) {
  console.warn(
    "tracker_interop_test: opentracker is not installed, skipping (apt-get install opentracker)",
  );
}

/** A port free for both TCP and UDP on 127.0.0.1 right now. */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const udpFree = await new Promise<boolean>((resolve) => {
      const socket = dgram.createSocket("udp4");
      socket.once("error", () => socket.close(() => resolve(false)));
      socket.bind(port, "127.0.0.1", () => socket.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
  throw new Error("Cannot find a free port for opentracker");
}

interface RunningTracker extends AsyncDisposable {
  port: number;
}

/** Starts opentracker with a whitelist, retrying on a port race, and waits until it accepts. */
async function startOpentracker(whitelist: Uint8Array[]): Promise<RunningTracker> {
  const dir = await Deno.makeTempDir({ prefix: "opentracker_" });
  // Started as root it chroots into dir and drops to "nobody", who must be able to read it.
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(`${dir}/whitelist`, whitelist.map((h) => h.toHex() + "\n").join(""));
  await Deno.chmod(`${dir}/whitelist`, 0o644);
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = new Deno.Command(OPENTRACKER!, {
      args: ["-i", "127.0.0.1", "-p", `${port}`, "-P", `${port}`, "-d", dir, "-w", "whitelist"],
      cwd: dir,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let exited = false;
    const status = child.status.then((s) => {
      exited = true;
      return s;
    });
    const stop = async () => {
      if (!exited) child.kill("SIGTERM");
      const output = await child.output();
      await status;
      return new TextDecoder().decode(output.stderr);
    };
    const deadline = Date.now() + 5000;
    while (!exited && Date.now() < deadline) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        return {
          port,
          [Symbol.asyncDispose]: async () => {
            await stop();
            await Deno.remove(dir, { recursive: true });
          },
        };
      } catch (error) {
        if (!(error instanceof Deno.errors.ConnectionRefused)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    const stderr = await stop();
    console.warn(`opentracker on port ${port} did not start (attempt ${attempt + 1}): ${stderr}`);
  }
  await Deno.remove(dir, { recursive: true });
  throw new Error("Cannot start opentracker");
}

function hash(fill: number): Uint8Array {
  // Include bytes that need percent-encoding, so the tracker has to decode them right.
  const bytes = new Uint8Array(20).fill(fill);
  bytes.set([0x00, 0x20, 0x25, 0x26, 0xff, 0x7e], 0);
  return bytes;
}

function request(infoHash: Uint8Array, peer: number, port: number): AnnounceRequest {
  return {
    infoHash,
    peerId: new TextEncoder().encode(`-DT0001-peer${String(peer).padStart(8, "0")}`),
    port,
    uploaded: 0,
    downloaded: 0,
    left: 1024,
    event: "started",
    numWant: 50,
  };
}

Deno.test({
  name: "tracker clients interoperate with opentracker over HTTP and UDP",
  ignore: OPENTRACKER === undefined,
  async fn(t) {
    const httpHash = hash(0x11);
    const udpHash = hash(0x22);
    const mixedHash = hash(0x33);
    await using tracker = await startOpentracker([httpHash, udpHash, mixedHash]);
    const http = `http://127.0.0.1:${tracker.port}/announce`;
    const udp = `udp://127.0.0.1:${tracker.port}/announce`;
    const udpOptions = {
      retryBaseMs: 500,
      maxAttempts: 3,
      connectionCache: new ConnectionIdCache(),
    };

    // opentracker lists the announcing peer itself too, so check inclusion of the other peer.
    const ports = (response: { peers: { host: string; port: number }[] }) =>
      response.peers.map((p) => `${p.host}:${p.port}`).sort();

    await t.step("HTTP: two peers see each other", async () => {
      const first = await announceHttp(http, request(httpHash, 1, 40001));
      assert.ok(!ports(first).includes("127.0.0.1:40002"));
      assert.ok(first.interval > 0);
      const second = await announceHttp(http, request(httpHash, 2, 40002));
      assert.ok(ports(second).includes("127.0.0.1:40001"), `got ${ports(second)}`);
      const again = await announceHttp(http, request(httpHash, 1, 40001));
      assert.ok(ports(again).includes("127.0.0.1:40002"), `got ${ports(again)}`);
      assert.equal((again.complete ?? 0) + (again.incomplete ?? 0), 2);
    });

    await t.step("UDP: two peers see each other", async () => {
      const first = await announceUdp(udp, request(udpHash, 3, 40003), udpOptions);
      assert.ok(!ports(first).includes("127.0.0.1:40004"));
      const second = await announceUdp(udp, request(udpHash, 4, 40004), udpOptions);
      assert.ok(ports(second).includes("127.0.0.1:40003"), `got ${ports(second)}`);
      const again = await announceUdp(udp, request(udpHash, 3, 40003), udpOptions);
      assert.ok(ports(again).includes("127.0.0.1:40004"), `got ${ports(again)}`);
      assert.equal((again.complete ?? 0) + (again.incomplete ?? 0), 2);
    });

    await t.step("HTTP and UDP announces share one swarm", async () => {
      await announceHttp(http, request(mixedHash, 5, 40005));
      const viaUdp = await announceUdp(udp, request(mixedHash, 6, 40006), udpOptions);
      assert.ok(ports(viaUdp).includes("127.0.0.1:40005"), `got ${ports(viaUdp)}`);
      const viaHttp = await announceHttp(http, request(mixedHash, 5, 40005));
      assert.ok(ports(viaHttp).includes("127.0.0.1:40006"), `got ${ports(viaHttp)}`);
    });

    await t.step("HTTP: a hash not on the whitelist is refused with the reason", async () => {
      await assert.rejects(announceHttp(http, request(hash(0x44), 7, 40007)), (error) => {
        assert.ok(error instanceof TrackerFailureError, `got ${error}`);
        assert.equal(error.reason, NOT_AUTHORIZED);
        return true;
      });
    });

    await t.step("UDP: a hash not on the whitelist gets a header-only reply", async () => {
      // opentracker answers with action 1 and no body (8 bytes) instead of an error packet, so
      // there is no reason to report: the client rejects the truncated response.
      await assert.rejects(
        announceUdp(udp, request(hash(0x44), 7, 40007), udpOptions),
        (error) => {
          assert.ok(error instanceof TrackerError, `got ${error}`);
          assert.ok(!(error instanceof TrackerFailureError));
          assert.match(error.message, /8 bytes is shorter than 20/);
          return true;
        },
      );
    });
  },
});
