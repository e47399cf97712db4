/**
 * Interop: libtorrent downloads from our in-process seeder (serveTorrent) with Message Stream
 * Encryption forced, so it can only succeed through our MSE responder; once with RC4 only and
 * once offering both (we then select plaintext). With libtorrent's defaults (encryption
 * enabled, tried first) it must connect at once, not after a plaintext retry about 1 s later.
 */
import assert from "node:assert/strict";
import { createTorrent } from "../../lib/metainfo/mod.ts";
import { MemoryStorage } from "../../lib/storage/mod.ts";
import { serveTorrent } from "../../lib/torrent/mod.ts";
import { deterministicBytes } from "../_helpers/fixtures.ts";
import { interopAvailable, startLibtorrent, tempDir } from "../_helpers/interop/mod.ts";

// libtorrent's enums (lt.enc_policy, lt.enc_level), checked with python3-libtorrent 2.0.8.
const PE_FORCED = 0;
const PE_RC4 = 2;
const PE_BOTH = 3;

const SIZE = 4 * 1024 * 1024 + 4321;

async function downloadFromUs(
  settings: Record<string, number>,
): Promise<{ seconds: number; firstConnectMs: number }> {
  await using dir = await tempDir({ prefix: "mse-interop-" });
  const data = deterministicBytes(SIZE, 21);
  const { metainfo, torrent } = await createTorrent({ name: "mse.bin", data }, {
    pieceLength: 262144,
  });
  const torrentPath = dir.join("mse.torrent");
  await Deno.writeFile(torrentPath, torrent);
  await Deno.mkdir(dir.join("out"));
  const storage = new MemoryStorage(data.length);
  await storage.write(0, data);
  await using server = await serveTorrent({ metainfo, storage, hostname: "127.0.0.1" });
  const started = performance.now();
  await using leecher = await startLibtorrent({
    mode: "download",
    torrentPath,
    savePath: dir.join("out"),
    peers: [`127.0.0.1:${server.port}`],
    settings,
  });
  const connected = await leecher.waitForEvent("peer_connected", { timeoutMs: 15_000 });
  const firstConnectMs = performance.now() - started;
  assert.ok(connected);
  const finished = await leecher.finished;
  assert.equal(finished.totalDone, SIZE);
  assert.deepEqual(await Deno.readFile(dir.join("out", "mse.bin")), data);
  return { seconds: finished.seconds, firstConnectMs };
}

Deno.test({
  name: "interop: libtorrent with encryption forced downloads from our seeder",
  ignore: !interopAvailable(["libtorrent"]),
  fn: async (t) => {
    for (const [label, level] of [["rc4 only", PE_RC4], ["rc4 or plaintext", PE_BOTH]] as const) {
      await t.step(label, async () => {
        const { seconds } = await downloadFromUs({
          out_enc_policy: PE_FORCED,
          in_enc_policy: PE_FORCED,
          allowed_enc_level: level,
        });
        console.error(`  libtorrent, encryption forced (${label}): ${seconds.toFixed(2)} s`);
      });
    }
  },
});

Deno.test({
  name: "interop: libtorrent with default encryption settings connects without a retry",
  ignore: !interopAvailable(["libtorrent"]),
  fn: async () => {
    const { seconds, firstConnectMs } = await downloadFromUs({});
    console.error(
      `  libtorrent defaults: connected after ${firstConnectMs.toFixed(0)} ms, done in ${
        seconds.toFixed(2)
      } s`,
    );
    // Before MSE support libtorrent's encrypted attempt failed and it retried ~1 s later.
    assert.ok(seconds < 1.0, `download took ${seconds} s`);
  },
});
