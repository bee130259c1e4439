import assert from "node:assert/strict";
import { describe, test } from "node:test";
import zlib from "node:zlib";
import { BodyTooLargeError, decodeBody, parseContentEncoding, type Coding } from "../../../src/decode/content-encoding.js";
import { BINARY_GARBAGE, CHAT_JSON, CHAT_SSE_UNICODE_EVENTS, COMPRESS, CONVERSATION_SSE, hasZstd, sseStream, utf8 } from "../fixtures.js";

const skipZstd = hasZstd ? false : "this Node has no zlib.zstdCompressSync";

const MAX = 1 << 20;

type Compressor = (data: Buffer) => Buffer;

/** Each coding, and how a server applies it to a whole body and to a stream flushed but not finished. */
const CODINGS: Array<{ name: string; coding: Coding; whole: Compressor; flushed: Compressor; skip: string | false }> = [
  { name: "gzip", coding: "gzip", ...COMPRESS.gzip, skip: false },
  { name: "deflate (zlib-wrapped, as HTTP specifies)", coding: "deflate", ...COMPRESS.deflate, skip: false },
  { name: "deflate (raw, as some servers send it)", coding: "deflate", ...COMPRESS.deflateRaw, skip: false },
  { name: "br", coding: "br", ...COMPRESS.br, skip: false },
  { name: "zstd", coding: "zstd", ...COMPRESS.zstd, skip: skipZstd },
];

describe("parseContentEncoding", () => {
  const cases: Array<[string | undefined, readonly Coding[]]> = [
    [undefined, []],
    ["", []],
    ["   ", []],
    ["identity", []],
    ["IDENTITY", []],
    ["gzip", ["gzip"]],
    ["x-gzip", ["gzip"]],
    ["GZip", ["gzip"]],
    ["deflate", ["deflate"]],
    ["br", ["br"]],
    ["BR", ["br"]],
    [" gzip ", ["gzip"]],
    ["gzip, br", ["gzip", "br"]],
    ["gzip,br", ["gzip", "br"]],
    ["deflate, gzip", ["deflate", "gzip"]],
    ["gzip, identity, br", ["gzip", "br"]],
    ["gzip,,br,", ["gzip", "br"]],
    ["gzip, gzip", ["gzip", "gzip"]],
    ["gzip, gzip, gzip, gzip, gzip", ["gzip", "gzip", "gzip", "gzip", "gzip"]],
  ];
  for (const [header, codings] of cases) {
    test(`${JSON.stringify(header) ?? "undefined"} → [${codings.join(", ")}]`, () => {
      assert.deepEqual(parseContentEncoding(header), { ok: true, codings });
    });
  }

  const unsupported: Array<[string, string]> = [
    ["compress", "compress"],
    ["x-compress", "x-compress"],
    ["sdch", "sdch"],
    ["gzip, foo", "foo"],
    ["foo, gzip", "foo"],
    ["gzip;q=1", "gzip;q=1"],
    ["gzip br", "gzip br"],
    ["aes128gcm", "aes128gcm"],
  ];
  for (const [header, name] of unsupported) {
    test(`${JSON.stringify(header)} is unsupported (${name})`, () => {
      assert.deepEqual(parseContentEncoding(header), { ok: false, unsupported: name, reason: "unknown" });
    });
  }

  test("more than five codings is refused, as undici does", () => {
    const header = "gzip, gzip, gzip, gzip, gzip, gzip";
    assert.deepEqual(parseContentEncoding(header), { ok: false, unsupported: header, reason: "too-many" });
  });

  test("zstd only when this Node can decode it", () => {
    const expected = hasZstd ? { ok: true, codings: ["zstd"] } : { ok: false, unsupported: "zstd", reason: "unknown" };
    assert.deepEqual(parseContentEncoding("zstd"), expected);
    assert.deepEqual(parseContentEncoding("ZSTD"), expected);
  });
});

describe("decodeBody: whole bodies", () => {
  const json = utf8(CHAT_JSON);
  const sse = utf8(sseStream(CHAT_SSE_UNICODE_EVENTS));

  for (const { name, coding, whole, skip } of CODINGS) {
    test(`${name}: JSON body`, { skip }, () => {
      assert.deepEqual(decodeBody(whole(json), [coding], MAX), json);
    });
    test(`${name}: SSE body with multi-byte text`, { skip }, () => {
      const decoded = decodeBody(whole(sse), [coding], MAX);
      assert.deepEqual(decoded, sse);
      assert.equal(decoded.toString("utf8"), sseStream(CHAT_SSE_UNICODE_EVENTS));
    });
  }

  test("x-gzip decodes through the gzip coding parseContentEncoding maps it to", () => {
    const encoding = parseContentEncoding("x-gzip");
    assert.ok(encoding.ok);
    assert.deepEqual(decodeBody(zlib.gzipSync(json), encoding.codings, MAX), json);
  });

  test("no codings: the bytes unchanged", () => {
    assert.deepEqual(decodeBody(json, [], MAX), json);
    assert.deepEqual(decodeBody(BINARY_GARBAGE, [], MAX), BINARY_GARBAGE);
  });

  describe("stacked codings are undone in reverse order", () => {
    const stacks: Array<[string, Compressor, boolean]> = [
      ["gzip, br", (data) => zlib.brotliCompressSync(zlib.gzipSync(data)), false],
      ["deflate, gzip", (data) => zlib.gzipSync(zlib.deflateSync(data)), false],
      ["br, deflate", (data) => zlib.deflateRawSync(zlib.brotliCompressSync(data)), false],
      ["gzip, gzip", (data) => zlib.gzipSync(zlib.gzipSync(data)), false],
      ["gzip, zstd", (data) => (hasZstd ? COMPRESS.zstd.whole(zlib.gzipSync(data)) : data), true],
    ];
    for (const [header, compress, needsZstd] of stacks) {
      test(header, { skip: needsZstd ? skipZstd : false }, () => {
        const encoding = parseContentEncoding(header);
        assert.ok(encoding.ok);
        assert.deepEqual(decodeBody(compress(json), encoding.codings, MAX), json);
      });
    }

    test("in the wrong order it fails", () => {
      assert.throws(() => decodeBody(zlib.brotliCompressSync(zlib.gzipSync(json)), ["br", "gzip"], MAX));
    });
  });
});

describe("decodeBody: truncated streams (a cancelled response)", () => {
  // The part of a conversation stream that arrived, flushed by the server after each event.
  const arrived = utf8(CONVERSATION_SSE);

  for (const { name, coding, whole, flushed, skip } of CODINGS) {
    test(`${name}: decodes everything a flushed, unfinished stream holds`, { skip }, () => {
      assert.deepEqual(decodeBody(flushed(arrived), [coding], MAX), arrived);
    });

    test(`${name}: a stream cut at an arbitrary byte gives a prefix, without throwing`, { skip }, () => {
      const compressed = whole(Buffer.concat([arrived, arrived, arrived]));
      for (const fraction of [0.25, 0.5, 0.75, 0.9]) {
        const cut = compressed.subarray(0, Math.floor(compressed.length * fraction));
        const decoded = decodeBody(cut, [coding], MAX);
        const original = Buffer.concat([arrived, arrived, arrived]);
        assert.ok(decoded.length <= original.length);
        assert.deepEqual(decoded, original.subarray(0, decoded.length), `cut at ${fraction}`);
      }
    });

  }

  test("an empty gzip body gives nothing, like fetch", () => {
    assert.equal(decodeBody(Buffer.alloc(0), ["gzip"], MAX).length, 0);
  });
});

describe("decodeBody: corrupt input throws", () => {
  const garbage: Array<[string, Buffer]> = [
    ["binary garbage", BINARY_GARBAGE],
    ["plain text", utf8("this is not compressed at all")],
    ["plain JSON", utf8(CHAT_JSON)],
  ];
  for (const { name, coding, skip } of CODINGS.filter((c) => !c.name.includes("raw"))) {
    for (const [what, bytes] of garbage) {
      test(`${name}: ${what}`, { skip }, () => {
        assert.throws(
          () => decodeBody(bytes, [coding], MAX),
          (error) => error instanceof Error && !(error instanceof BodyTooLargeError),
        );
      });
    }
  }

  test("gzip with a damaged body after a valid header", () => {
    const gz = zlib.gzipSync(utf8(CHAT_JSON));
    const damaged = Buffer.concat([gz.subarray(0, 10), Buffer.alloc(gz.length - 10, 0xff)]);
    assert.throws(() => decodeBody(damaged, ["gzip"], MAX));
  });

  test("gzip with a wrong CRC in the trailer", () => {
    const gz = Buffer.from(zlib.gzipSync(utf8(CHAT_JSON)));
    gz[gz.length - 8] = gz[gz.length - 8]! ^ 0xff;
    assert.throws(() => decodeBody(gz, ["gzip"], MAX));
  });
});

describe("decodeBody: output cap", () => {
  const body = utf8(CONVERSATION_SSE);

  for (const { name, coding, whole, flushed, skip } of CODINGS) {
    test(`${name}: exactly at the cap decodes`, { skip }, () => {
      assert.deepEqual(decodeBody(whole(body), [coding], body.length), body);
    });

    test(`${name}: one byte over the cap throws BodyTooLargeError`, { skip }, () => {
      assert.throws(() => decodeBody(whole(body), [coding], body.length - 1), BodyTooLargeError);
    });

    test(`${name}: a decompression bomb (1 MiB of zeros) throws BodyTooLargeError`, { skip }, () => {
      const bomb = whole(Buffer.alloc(1 << 20));
      assert.ok(bomb.length < 10_000);
      assert.throws(
        () => decodeBody(bomb, [coding], 64 * 1024),
        (error) => error instanceof BodyTooLargeError && /larger than 65536 bytes/.test(error.message),
      );
    });

    test(`${name}: the cap holds on a flushed, unfinished stream too`, { skip }, () => {
      assert.throws(() => decodeBody(flushed(Buffer.alloc(1 << 20)), [coding], 64 * 1024), BodyTooLargeError);
    });
  }

  test("the cap applies to each layer of a stack", () => {
    const stacked = zlib.brotliCompressSync(zlib.gzipSync(Buffer.alloc(1 << 20)));
    assert.throws(() => decodeBody(stacked, ["gzip", "br"], 64 * 1024), BodyTooLargeError);
  });

  test("BodyTooLargeError is an Error", () => {
    assert.ok(new BodyTooLargeError("x") instanceof Error);
  });
});
