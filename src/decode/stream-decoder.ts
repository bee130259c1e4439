import type Zlib from "node:zlib";
import { BodyTooLargeError, decodeBody, isZlibHeader, loadZlib, type Coding } from "./content-encoding.js";

/**
 * Decodes a content-encoded body as its chunks arrive, synchronously: each `push` returns what the
 * bytes pushed so far decode to. So the usage in a compressed stream is known on the tick its
 * bytes arrive, as for an uncompressed one, and a process that ends abruptly right after (a signal
 * without a handler, `worker.terminate()`) has its row already.
 *
 * Node has no public synchronous incremental decompressor: the `*Sync` functions decode one whole
 * buffer, and `_processChunk` closes its handle after one call (decoding the growing prefix again
 * on every chunk would be quadratic). What those `*Sync` functions do inside is public in Node's
 * source and the same from Node 20 to 26 (lib/zlib.js, processChunkSync): they call the native
 * handle's `writeSync(flush, in, inOff, inLen, out, outOff, outLen)` and read what is left of the
 * input and output from `_writeState`, in a loop, until the output buffer is not full. We drive a
 * handle the same way, but keep it open between chunks. The handle is Node's own zlib, brotli or
 * zstd decoder, so the bytes decode exactly as they do for the app's client (undici and node:http
 * clients decode with the same handles). Neither `_handle` nor `_writeState` is documented: their
 * shape is checked once, and a Node without them gets the whole-body decoding at the end instead
 * (a row lost on an abrupt end, never a wrong one).
 *
 * Bounded: every layer stops with BodyTooLargeError once its output passes `maxOutputBytes`, and
 * one native call never produces more than one output buffer (16 KiB).
 */
export interface StreamDecoder {
  /** True when rows can be recorded while the body arrives; false for the whole-body fallback. */
  readonly incremental: boolean;
  /** Decodes the next bytes. Throws BodyTooLargeError, or an Error for corrupt input. */
  push(chunk: Uint8Array): Buffer[];
  /**
   * The body ended or was cut short: returns what is left (only the fallback holds anything) and
   * releases the decoders. Like undici, lenient about a missing end: a stream cut mid-way yields
   * what arrived. Throws like `push`.
   */
  end(): Buffer[];
  /** Releases the decoders without decoding more. */
  close(): void;
}

/** Codings in the order they were applied (as parseContentEncoding returns them). */
export function createStreamDecoder(codings: readonly Coding[], maxOutputBytes: number): StreamDecoder {
  if (!nativeHandlesUsable()) return new WholeBodyDecoder(codings, maxOutputBytes);
  // The last coding applied is the first undone.
  const layers = codings.map((coding) => new NativeLayer(coding, maxOutputBytes)).reverse();
  return layers.length === 1 ? layers[0]! : new LayeredDecoder(layers);
}

const OUTPUT_CHUNK = 16 * 1024;

/** What a zlib stream object holds that its own synchronous functions use. */
interface ZlibEngine {
  _handle?: NativeHandle | null;
  _writeState?: Uint32Array;
  close(): void;
  on(event: "error", listener: () => void): unknown;
}

/** The stream object's own output buffer is never used: the smallest size zlib allows. */
const ENGINE_OPTIONS = { chunkSize: 64 };

interface NativeHandle {
  writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
  close(): void;
  onerror: (message: string, errno: number, code?: string) => void;
}

let usable: boolean | undefined;

/** Whether this Node's zlib objects have the handle and state its synchronous functions use. */
export function nativeHandlesUsable(): boolean {
  if (usable === undefined) {
    try {
      const engine = loadZlib().createGunzip() as unknown as ZlibEngine;
      const handle = engine._handle;
      usable = typeof handle?.writeSync === "function" && typeof handle.close === "function" && engine._writeState instanceof Uint32Array;
      engine.close();
    } catch {
      usable = false;
    }
  }
  return usable;
}

/** Forces the whole-body fallback, so that tests can run it on a Node that has the handles. */
export function setNativeHandlesUsableForTests(value: boolean | undefined): void {
  usable = value;
}

/** One coding, decoded by one of Node's native zlib handles. */
class NativeLayer implements StreamDecoder {
  readonly incremental = true;
  readonly #coding: Coding;
  readonly #maxOutputBytes: number;
  #engine: ZlibEngine | undefined;
  #handle: NativeHandle | undefined;
  #state: Uint32Array | undefined;
  #flush = 0;
  #out: Buffer = Buffer.alloc(0);
  #outOffset = 0;
  #produced = 0;
  #error: string | undefined;
  /** Deflate only: the first byte, held until the second tells zlib-wrapped from raw. */
  #held: Uint8Array | undefined;
  #closed = false;

  constructor(coding: Coding, maxOutputBytes: number) {
    this.#coding = coding;
    this.#maxOutputBytes = maxOutputBytes;
  }

  push(chunk: Uint8Array): Buffer[] {
    if (this.#closed || chunk.byteLength === 0) return [];
    let input = chunk;
    if (this.#handle === undefined) {
      if (this.#coding === "deflate") {
        // HTTP "deflate" should be zlib-wrapped, but some servers send raw deflate; undici accepts
        // both, telling them apart by the first two bytes.
        if (this.#held !== undefined) input = Buffer.concat([this.#held, chunk]);
        if (input.byteLength < 2) {
          this.#held = Buffer.from(input);
          return [];
        }
        this.#held = undefined;
      }
      this.#open(input);
    }
    return this.#write(input);
  }

  end(): Buffer[] {
    const decoded = this.#held !== undefined && !this.#closed ? this.#decodeHeldByte() : [];
    this.close();
    return decoded;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#held = undefined;
    // What zlib's own synchronous functions do when they are done (lib/zlib.js, _close): the
    // stream object was never written to, so its destroy() machinery (8 µs) has nothing to do.
    if (this.#engine !== undefined) {
      this.#handle?.close();
      this.#engine._handle = null;
    }
    this.#engine = undefined;
    this.#handle = undefined;
  }

  /** A deflate body of one byte: too short to tell apart, so it decodes as zlib-wrapped (and fails). */
  #decodeHeldByte(): Buffer[] {
    const held = this.#held!;
    this.#held = undefined;
    this.#open(held);
    return this.#write(held);
  }

  #open(firstBytes: Uint8Array): void {
    const zlib = loadZlib();
    const engine = createEngine(zlib, this.#coding, firstBytes) as unknown as ZlibEngine;
    // A decoding error is reported to the handle's `onerror`, which would destroy the stream object
    // and emit 'error' on it a tick later; ours records it and the listener keeps that one quiet.
    engine.on("error", () => {});
    const handle = engine._handle!;
    handle.onerror = (message) => {
      this.#error = message;
    };
    this.#engine = engine;
    this.#handle = handle;
    this.#state = engine._writeState!;
    this.#flush = flushFlag(zlib, this.#coding);
  }

  /** The loop of Node's processChunkSync, with a handle that stays open. */
  #write(input: Uint8Array): Buffer[] {
    const handle = this.#handle!;
    const state = this.#state!;
    const decoded: Buffer[] = [];
    let inOff = 0;
    let inLen = input.byteLength;
    for (;;) {
      if (this.#outOffset >= this.#out.length) {
        // Handed-out slices keep the old buffer; the next output goes to a fresh one.
        this.#out = Buffer.allocUnsafe(OUTPUT_CHUNK);
        this.#outOffset = 0;
      }
      const outLen = this.#out.length - this.#outOffset;
      handle.writeSync(this.#flush, input, inOff, inLen, this.#out, this.#outOffset, outLen);
      if (this.#error !== undefined) {
        const message = this.#error;
        this.close();
        throw new Error(message);
      }
      const outLeft = state[0]!;
      const inLeft = state[1]!;
      const produced = outLen - outLeft;
      if (produced > 0) {
        decoded.push(this.#out.subarray(this.#outOffset, this.#outOffset + produced));
        this.#outOffset += produced;
        this.#produced += produced;
        if (this.#produced > this.#maxOutputBytes) {
          this.close();
          throw new BodyTooLargeError(`larger than ${this.#maxOutputBytes} bytes once decoded`);
        }
      }
      // A full output buffer means there may be more to come from the same input.
      if (outLeft !== 0) return decoded;
      inOff += inLen - inLeft;
      inLen = inLeft;
    }
  }
}

function createEngine(zlib: typeof Zlib, coding: Coding, firstBytes: Uint8Array): unknown {
  switch (coding) {
    case "gzip":
      return zlib.createGunzip(ENGINE_OPTIONS);
    case "deflate":
      return isZlibHeader(firstBytes) ? zlib.createInflate(ENGINE_OPTIONS) : zlib.createInflateRaw(ENGINE_OPTIONS);
    case "br":
      return zlib.createBrotliDecompress(ENGINE_OPTIONS);
    case "zstd":
      return (zlib as unknown as { createZstdDecompress(options: object): unknown }).createZstdDecompress(ENGINE_OPTIONS);
  }
}

/** Output as soon as it can be produced: what undici's and Node's decoders give their readers. */
function flushFlag(zlib: typeof Zlib, coding: Coding): number {
  const constants = zlib.constants as typeof zlib.constants & { ZSTD_e_continue?: number };
  if (coding === "br") return constants.BROTLI_OPERATION_PROCESS;
  if (coding === "zstd") return constants.ZSTD_e_continue ?? 0;
  return constants.Z_SYNC_FLUSH;
}

/** Stacked codings (`gzip, br`): each layer's output is the next one's input. */
class LayeredDecoder implements StreamDecoder {
  readonly incremental = true;
  readonly #layers: readonly StreamDecoder[];

  constructor(layers: readonly StreamDecoder[]) {
    this.#layers = layers;
  }

  push(chunk: Uint8Array): Buffer[] {
    return this.#through([chunk], false);
  }

  end(): Buffer[] {
    try {
      return this.#through([], true);
    } finally {
      this.close();
    }
  }

  close(): void {
    for (const layer of this.#layers) layer.close();
  }

  #through(input: readonly Uint8Array[], ending: boolean): Buffer[] {
    let pieces = input as readonly Buffer[];
    for (const layer of this.#layers) {
      const out: Buffer[] = [];
      for (const piece of pieces) out.push(...layer.push(piece));
      if (ending) out.push(...layer.end());
      pieces = out;
    }
    return pieces as Buffer[];
  }
}

/**
 * The fallback for a Node without the native handles' synchronous interface: the body is
 * collected (bounded) and decoded whole when it ends, is cut short, or the process exits.
 */
class WholeBodyDecoder implements StreamDecoder {
  readonly incremental = false;
  readonly #codings: readonly Coding[];
  readonly #maxOutputBytes: number;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(codings: readonly Coding[], maxOutputBytes: number) {
    this.#codings = codings;
    this.#maxOutputBytes = maxOutputBytes;
  }

  push(chunk: Uint8Array): Buffer[] {
    this.#size += chunk.byteLength;
    if (this.#size > this.#maxOutputBytes) {
      this.close();
      throw new BodyTooLargeError(`larger than ${this.#maxOutputBytes} bytes before decoding`);
    }
    // Copy: a tap may hand us a view of a buffer that is reused.
    this.#chunks.push(Buffer.from(chunk));
    return [];
  }

  end(): Buffer[] {
    const raw = Buffer.concat(this.#chunks);
    this.close();
    return raw.length === 0 ? [] : [decodeBody(raw, this.#codings, this.#maxOutputBytes)];
  }

  close(): void {
    this.#chunks = [];
  }
}
