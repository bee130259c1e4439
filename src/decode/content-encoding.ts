import type Zlib from "node:zlib";

/**
 * Content decoding of our copy of a response. Observed below fetch's own decoding, a body is still
 * compressed when the server compressed it (fetch asks for br, gzip, deflate and, on newer Node, zstd).
 */

// Loaded on first use: node:zlib brings node:stream with it, about 3 ms of every app's start-up,
// and many apps never receive a compressed response.
let loadedZlib: typeof Zlib | undefined;
export const loadZlib = (): typeof Zlib => (loadedZlib ??= process.getBuiltinModule("node:zlib"));

// zstd arrived in Node 22.15 / 23.8; @types/node 20 does not know it.
interface ZstdZlib {
  zstdDecompressSync?(data: Buffer, options: { maxOutputLength: number; finishFlush?: number }): Buffer;
  constants: { ZSTD_e_flush?: number };
}
const loadZstd = (): ZstdZlib => loadZlib() as unknown as ZstdZlib;

export type Coding = "gzip" | "deflate" | "br" | "zstd";

export type ContentEncoding =
  | { readonly ok: true; readonly codings: readonly Coding[] }
  /**
   * `unknown`: a coding we cannot decode (`compress`, `utf-8`, `none`). undici then decodes none of
   * the codings and hands the body over as it came, so it is read as identity.
   * `too-many`: more than five codings, which undici refuses (the app gets an error).
   */
  | { readonly ok: false; readonly unsupported: string; readonly reason: "unknown" | "too-many" };

const IDENTITY: ContentEncoding = Object.freeze({ ok: true, codings: Object.freeze([]) });

/** Parses a `content-encoding` header: codings in the order they were applied. */
export function parseContentEncoding(header: string | undefined): ContentEncoding {
  if (header === undefined || header.trim() === "") return IDENTITY;
  const codings: Coding[] = [];
  for (const token of header.toLowerCase().split(",")) {
    const name = token.trim();
    if (name === "" || name === "identity") continue;
    if (name === "gzip" || name === "x-gzip") codings.push("gzip");
    else if (name === "deflate") codings.push("deflate");
    else if (name === "br") codings.push("br");
    else if (name === "zstd" && typeof loadZstd().zstdDecompressSync === "function") codings.push("zstd");
    else return { ok: false, unsupported: name, reason: "unknown" };
  }
  // undici refuses more than five codings; so do we (each layer is a decompression bomb multiplier).
  if (codings.length > 5) return { ok: false, unsupported: header, reason: "too-many" };
  return codings.length === 0 ? IDENTITY : { ok: true, codings };
}

export class BodyTooLargeError extends Error {}

/**
 * Decodes a whole body synchronously (the fallback of stream-decoder.ts), so that the usage it
 * holds is known before the app's own (asynchronous) decoding hands it the same bytes. Like undici's fetch, it is lenient about a
 * missing end (flush rather than finish): a body that fetch decodes for the app decodes here too,
 * and a stream cut off mid-way (a cancelled stream) yields what arrived. Throws on corrupt input or
 * when the output would exceed `maxOutputBytes`.
 */
export function decodeBody(body: Buffer, codings: readonly Coding[], maxOutputBytes: number): Buffer {
  let data = body;
  for (let i = codings.length - 1; i >= 0; i--) data = decodeOne(data, codings[i]!, maxOutputBytes);
  return data;
}

function decodeOne(data: Buffer, coding: Coding, maxOutputLength: number): Buffer {
  const zlib = loadZlib();
  const flush = { maxOutputLength, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  try {
    switch (coding) {
      case "gzip":
        return zlib.gunzipSync(data, flush);
      case "deflate":
        // HTTP "deflate" should be zlib-wrapped, but some servers send raw deflate; undici accepts both.
        return isZlibHeader(data) ? zlib.inflateSync(data, flush) : zlib.inflateRawSync(data, flush);
      case "br":
        return zlib.brotliDecompressSync(data, { maxOutputLength, finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH });
      case "zstd":
        return zstdDecompress(data, maxOutputLength);
    }
  } catch (error) {
    if (error instanceof RangeError) throw new BodyTooLargeError(`larger than ${maxOutputLength} bytes once decoded`);
    throw error;
  }
}

/** A zlib-wrapped deflate stream starts with a CMF/FLG pair whose 16-bit value is a multiple of 31. */
export function isZlibHeader(data: Uint8Array): boolean {
  return data.length >= 2 && (data[0]! & 0x0f) === 8 && ((data[0]! << 8) | data[1]!) % 31 === 0;
}

function zstdDecompress(data: Buffer, maxOutputLength: number): Buffer {
  const zstd = loadZstd();
  const flush = zstd.constants.ZSTD_e_flush;
  return zstd.zstdDecompressSync!(data, { maxOutputLength, ...(flush !== undefined ? { finishFlush: flush } : {}) });
}
