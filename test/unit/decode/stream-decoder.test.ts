import assert from "node:assert/strict";
import { describe, test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import zlib from "node:zlib";
import { BodyTooLargeError, type Coding } from "../../../src/decode/content-encoding.js";
import { createStreamDecoder, nativeHandlesUsable, setNativeHandlesUsableForTests } from "../../../src/decode/stream-decoder.js";
import { CHAT_SSE_UNICODE_EVENTS, COMPRESS, hasZstd, sseStream, utf8 } from "../fixtures.js";

const MAX = 1 << 20;
const skipZstd = hasZstd ? false : "this Node has no zstd";

const CODINGS: Array<{ name: string; coding: Coding; compress: typeof COMPRESS.gzip; skip: string | false }> = [
  { name: "gzip", coding: "gzip", compress: COMPRESS.gzip, skip: false },
  { name: "deflate (zlib-wrapped)", coding: "deflate", compress: COMPRESS.deflate, skip: false },
  { name: "deflate (raw)", coding: "deflate", compress: COMPRESS.deflateRaw, skip: false },
  { name: "br", coding: "br", compress: COMPRESS.br, skip: false },
  { name: "zstd", coding: "zstd", compress: COMPRESS.zstd, skip: skipZstd },
];

const BODY = utf8(sseStream(CHAT_SSE_UNICODE_EVENTS).repeat(20));

function decodeInChunks(coding: Coding | Coding[], bytes: Buffer, size: number, max = MAX): Buffer {
  const decoder = createStreamDecoder(Array.isArray(coding) ? coding : [coding], max);
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) out.push(...decoder.push(bytes.subarray(at, at + size)));
  out.push(...decoder.end());
  return Buffer.concat(out);
}

describe("createStreamDecoder", () => {
  test("this Node's zlib objects have the synchronous handle interface (Node 20.18 to 26)", () => {
    // If a Node release changes lib/zlib.js, this fails in CI rather than rows going missing quietly.
    assert.equal(nativeHandlesUsable(), true);
    assert.equal(createStreamDecoder(["gzip"], MAX).incremental, true);
  });

  for (const { name, coding, compress, skip } of CODINGS) {
    describe(name, { skip }, () => {
      for (const size of [1, 7, 16, 1000, 1 << 20]) {
        test(`a whole body in ${size}-byte chunks decodes to the original`, () => {
          assert.deepEqual(decodeInChunks(coding, compress.whole(BODY), size), BODY);
        });
      }

      test("each flushed segment decodes as soon as it is pushed", async () => {
        const segments = CHAT_SSE_UNICODE_EVENTS.map((event) => utf8(sseStream([event])));
        const compressed = await compress.segments(segments);
        const decoder = createStreamDecoder([coding], MAX);
        for (let i = 0; i < segments.length; i++) {
          assert.deepEqual(Buffer.concat(decoder.push(compressed[i]!)), segments[i], `segment ${i}`);
        }
        assert.deepEqual(Buffer.concat([...decoder.push(compressed.at(-1)!), ...decoder.end()]), Buffer.alloc(0));
      });

      test("a stream cut short (flushed, not finished) yields what arrived, no error", () => {
        assert.deepEqual(decodeInChunks(coding, compress.flushed(BODY), 13), BODY);
      });

      test("output past the limit throws BodyTooLargeError", () => {
        const decoder = createStreamDecoder([coding], 1000);
        assert.throws(() => decoder.push(compress.whole(BODY)), BodyTooLargeError);
      });

      test("corrupt input throws, and the decoder is closed", () => {
        const decoder = createStreamDecoder([coding], MAX);
        const garbage = Buffer.from(Array.from({ length: 400 }, (_, i) => (i * 131 + 7) % 256));
        assert.throws(() => {
          decoder.push(garbage);
          decoder.end();
        });
        assert.deepEqual(decoder.push(garbage), []);
      });
    });
  }

  test("stacked codings are undone in reverse order, chunk by chunk", () => {
    const stacked = zlib.brotliCompressSync(zlib.gzipSync(BODY));
    assert.deepEqual(decodeInChunks(["gzip", "br"], stacked, 5), BODY);
  });

  test("concatenated gzip members decode as one body, as Node's gunzip does", () => {
    const two = Buffer.concat([zlib.gzipSync(utf8("first ")), zlib.gzipSync(utf8("second"))]);
    assert.equal(decodeInChunks("gzip", two, 3).toString(), "first second");
  });

  test("a deflate body is held until its second byte tells zlib-wrapped from raw", () => {
    const compressed = COMPRESS.deflate.whole(BODY);
    const decoder = createStreamDecoder(["deflate"], MAX);
    assert.deepEqual(decoder.push(compressed.subarray(0, 1)), []);
    assert.deepEqual(Buffer.concat([...decoder.push(compressed.subarray(1)), ...decoder.end()]), BODY);
    const lone = createStreamDecoder(["deflate"], MAX);
    assert.deepEqual(lone.push(Buffer.from([0x78])), []);
    assert.deepEqual(Buffer.concat(lone.end()), Buffer.alloc(0));
  });

  test("a decompression bomb in one chunk stops at the limit", () => {
    const bomb = zlib.gzipSync(Buffer.alloc(64 << 20));
    const decoder = createStreamDecoder(["gzip"], 1 << 20);
    assert.throws(() => decoder.push(bomb), BodyTooLargeError);
  });

  test("handed-out pieces are never overwritten by later output", () => {
    const decoder = createStreamDecoder(["gzip"], MAX);
    const compressed = COMPRESS.gzip.whole(BODY);
    const pieces: Buffer[] = [];
    for (let at = 0; at < compressed.length; at += 50) pieces.push(...decoder.push(compressed.subarray(at, at + 50)));
    assert.deepEqual(Buffer.concat(pieces), BODY);
  });

  test("many decoders opened and closed leave nothing behind once collected", async () => {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    const collect = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const compressed = COMPRESS.gzip.flushed(BODY);
    await collect();
    const before = process.memoryUsage().external;
    for (let i = 0; i < 5000; i++) {
      const decoder = createStreamDecoder(["gzip"], MAX);
      decoder.push(compressed);
      decoder.close();
    }
    await collect();
    // Each decoder holds about 50 KiB outside the heap while open: 5,000 kept would be 250 MB.
    assert.ok(process.memoryUsage().external - before < 20 * 1024 * 1024);
  });

  describe("the whole-body fallback", () => {
    test("decodes at end(), for each coding", () => {
      setNativeHandlesUsableForTests(false);
      try {
        for (const { coding, compress, skip } of CODINGS) {
          if (skip !== false) continue;
          const decoder = createStreamDecoder([coding], MAX);
          assert.equal(decoder.incremental, false);
          assert.deepEqual(decoder.push(compress.whole(BODY)), []);
          assert.deepEqual(Buffer.concat(decoder.end()), BODY);
        }
      } finally {
        setNativeHandlesUsableForTests(undefined);
      }
    });
  });
});
