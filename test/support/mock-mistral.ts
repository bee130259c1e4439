/**
 * A loopback HTTP/1.1 server that speaks the Mistral API closely enough for
 * end-to-end tests of the usage logger (shapes follow
 * /work/shared/reference/mistral-api-and-clients.md, sections 1 and 2).
 *
 * Layout: flag parsing -> pure body / SSE builders -> one writer that applies
 * encoding, chunking and delays -> the request handler and its route table.
 *
 * With `http2: true` it serves HTTP/2 over TLS (and HTTP/1.1 to clients that do not offer h2), with
 * a self-signed certificate for 127.0.0.1 (test/support/tls.ts); clients trust it through
 * `NODE_EXTRA_CA_CERTS=<mock.caFile>`.
 *
 * Standalone: `node --import tsx test/support/mock-mistral.ts [--port N] [--defaults FLAGS]`
 * prints `{"url":"http://127.0.0.1:PORT"}` and serves until SIGTERM/SIGINT.
 */
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createH2cServer, createSecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import { testCertificate } from './tls.js';

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

export interface ServedResponse {
  /** Request pathname as received, including any prefix and /mock/<flags>/ segment. */
  path: string;
  /** Canonical endpoint path, e.g. `/v1/chat/completions` (prefix and flags stripped). */
  route: string;
  /** The model the CSV row must show (what the API returned; the request model for speech). */
  model: string;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  stream: boolean;
}

export interface Disconnect {
  path: string;
  /** Content chunks (content events) fully written before the client went away. */
  chunksWritten: number;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** `1.1`, or `2.0` for an HTTP/2 request. */
  httpVersion: string;
}

export interface MockMistral {
  /** `http://127.0.0.1:PORT` (`https://` with `http2` or `tls`), no trailing slash. */
  url: string;
  /** With `http2`: the PEM file of the server's self-signed certificate, for NODE_EXTRA_CA_CERTS. */
  caFile?: string;
  /** `127.0.0.1:PORT` */
  hostPort: string;
  port: number;
  /** One entry per 2xx response that carried usage, in the order they were completed. */
  served: ServedResponse[];
  /** Streams whose client went away before the end (hang, aborts, cancels). */
  disconnects: Disconnect[];
  /** Every request received, in arrival order (handy to check headers such as accept-encoding). */
  requests: ReceivedRequest[];
  /** Resolves once `served.length >= count` (rejects after timeoutMs). */
  waitForServed(count: number, timeoutMs?: number): Promise<ServedResponse[]>;
  /** Resolves once `disconnects.length >= count` (rejects after timeoutMs). */
  waitForDisconnects(count: number, timeoutMs?: number): Promise<Disconnect[]>;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Comma-separated flags applied to every request; `/mock/<flags>/` path flags override them. */
  defaults?: string;
  /** Port to listen on (default 0: an ephemeral port). */
  port?: number;
  /**
   * `true`: serve HTTP/2 over TLS (HTTP/1.1 too, for clients that do not offer h2 in ALPN).
   * `'h2c'`: cleartext HTTP/2 only (prior knowledge, as `http2.connect('http://...')` speaks it).
   */
  http2?: boolean | 'h2c';
  /** Serve HTTPS with this certificate (PEM) instead of plain HTTP; `url` then starts with https://. */
  tls?: { key: string; cert: string };
}

export type Encoding = 'identity' | 'gzip' | 'deflate' | 'br' | 'zstd';

export interface MockFlags {
  encoding: Encoding;
  /** Write the (encoded) body in writes of this many bytes. */
  chunk?: number;
  /** Milliseconds between writes (0: a setImmediate turn, so writes stay separate). */
  delay: number;
  crlf: boolean;
  /** Content chunks in a stream. */
  events: number;
  /** Reply with this error status in Mistral's error shape. */
  status?: number;
  malformed: boolean;
  truncated: boolean;
  nousage: boolean;
  hang: boolean;
  /** Stream this many content chunks of ~1 KiB each. */
  big?: number;
  nocontenttype: boolean;
  /** Model name to put in the response instead of echoing the request. */
  model?: string;
  /** `content-encoding` to announce on an identity body (`utf-8`, `none`, `compress`). */
  label?: string;
}

export type EndpointKind =
  | 'chat'
  | 'fim'
  | 'agents'
  | 'embeddings'
  | 'moderations'
  | 'classifications'
  | 'conversations'
  | 'transcriptions'
  | 'speech'
  | 'models'
  | 'ocr';

export interface SseEvent {
  event?: string;
  data: string;
}

/** Everything a body builder needs; all of it is derived from the request and the counter. */
export interface ResponseContext {
  kind: EndpointKind;
  /** Per-server response counter (1, 2, ...): makes usage numbers unique per response. */
  n: number;
  /** Model to put in the response. */
  model: string;
  /** Model the request asked for, if any (speech responses carry no model, so the log needs it). */
  requestModel?: string;
  /** Number of inputs (embeddings, moderations, classifications). */
  inputs: number;
  conversationId: string;
  flags: MockFlags;
}

export interface UsageNumbers {
  /** The object as it goes on the wire. */
  wire: Record<string, unknown>;
  prompt: number;
  completion: number;
  total: number;
}

export interface SsePlan {
  /** Number of events in the stream. */
  length: number;
  /** Index of the event that carries usage, or -1 (nousage, malformed). */
  usageIndex: number;
  /** Index of the first content event (after prelude events such as conversation.response.started). */
  firstContentIndex: number;
  /** Number of content events. */
  contentCount: number;
  /** Event i, built on demand. */
  eventAt(i: number): SseEvent;
}

// ---------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------

export const DEFAULT_FLAGS: Readonly<MockFlags> = Object.freeze({
  encoding: 'identity',
  delay: 0,
  crlf: false,
  events: 5,
  malformed: false,
  truncated: false,
  nousage: false,
  hang: false,
  nocontenttype: false,
});

// Node 20 has no zstd; Node >= 22.15 does. @types/node@20 does not declare it, hence the cast.
interface ZstdZlib {
  zstdCompressSync?: (buf: Buffer) => Buffer;
  zstdDecompressSync?: (buf: Buffer) => Buffer;
  createZstdCompress?: () => Transform & zlib.Zlib;
}
const zstdApi = zlib as unknown as ZstdZlib;
export const zstdAvailable = typeof zstdApi.zstdCompressSync === 'function';

const BOOLEAN_FLAGS = ['crlf', 'malformed', 'truncated', 'nousage', 'hang', 'nocontenttype'] as const;
type BooleanFlag = (typeof BOOLEAN_FLAGS)[number];

function isBooleanFlag(name: string): name is BooleanFlag {
  return (BOOLEAN_FLAGS as readonly string[]).includes(name);
}

export class FlagError extends Error {}

function parseCount(name: string, value: string | undefined, min: number): number {
  const num = value === undefined ? NaN : Number(value);
  if (!Number.isInteger(num) || num < min) throw new FlagError(`mock flag ${name} needs an integer >= ${min}, got ${JSON.stringify(value)}`);
  return num;
}

/**
 * Parse `gzip,chunk=1,model=foo` into the flags it sets. Unknown flags throw a
 * FlagError: a typo silently ignored would make a test pass for the wrong reason.
 * Boolean flags accept `=0`/`=false` so a path can switch off a default.
 */
export function parseFlags(spec: string): Partial<MockFlags> {
  const out: Partial<MockFlags> = {};
  for (const raw of spec.split(',')) {
    const token = raw.trim();
    if (token === '') continue;
    const eq = token.indexOf('=');
    const name = eq === -1 ? token : token.slice(0, eq);
    const value = eq === -1 ? undefined : token.slice(eq + 1);
    switch (name) {
      case 'identity':
      case 'gzip':
      case 'deflate':
      case 'br':
      case 'zstd':
        out.encoding = name;
        break;
      case 'chunk':
        out.chunk = parseCount(name, value, 1);
        break;
      case 'delay':
        out.delay = parseCount(name, value, 0);
        break;
      case 'events':
        out.events = parseCount(name, value, 1);
        break;
      case 'status':
        out.status = parseCount(name, value, 100);
        break;
      case 'big':
        out.big = parseCount(name, value, 1);
        break;
      case 'model':
        if (!value) throw new FlagError('mock flag model needs a value: model=NAME');
        out.model = value;
        break;
      case 'label':
        // A content-encoding header that names a coding no client decodes; the body stays as it is.
        if (!value) throw new FlagError('mock flag label needs a value: label=CODING');
        out.label = value;
        break;
      default:
        if (!isBooleanFlag(name)) throw new FlagError(`unknown mock flag ${JSON.stringify(name)}`);
        if (value === undefined || value === '1' || value === 'true') out[name] = true;
        else if (value === '0' || value === 'false') out[name] = false;
        else throw new FlagError(`mock flag ${name} takes no value or 0/1, got ${JSON.stringify(value)}`);
    }
  }
  return out;
}

export function resolveFlags(...layers: Partial<MockFlags>[]): MockFlags {
  return Object.assign({}, DEFAULT_FLAGS, ...layers) as MockFlags;
}

export interface ParsedPath {
  /** Everything before `/v1/` (e.g. `/gw/mock/gzip`). */
  prefix: string;
  /** The endpoint part after `/v1/` (e.g. `chat/completions`). */
  endpoint: string;
  /** Flags from `/mock/<flags>/` segments in the prefix, joined with commas. */
  flagSpec: string;
}

/**
 * Split a pathname at the first `/v1/`. Without one, a gateway shape: the endpoint at the end of
 * the path (`/chat/completions`, Azure AI Foundry's `/models/chat/completions`), with everything
 * before it as the prefix. Null when there is neither.
 */
export function parsePath(pathname: string): ParsedPath | null {
  const at = pathname.indexOf('/v1/');
  let prefix: string;
  let endpoint: string;
  if (at !== -1) {
    prefix = pathname.slice(0, at);
    endpoint = pathname.slice(at + 4).replace(/\/+$/, '');
  } else {
    const trimmed = pathname.replace(/\/+$/, '');
    const found = GATEWAY_ENDPOINTS.find((candidate) => trimmed === `/${candidate}` || trimmed.endsWith(`/${candidate}`));
    if (found === undefined) return null;
    prefix = trimmed.slice(0, trimmed.length - found.length - 1);
    endpoint = found;
  }
  const segments = prefix.split('/');
  const specs: string[] = [];
  for (let i = 0; i < segments.length - 1; i++) {
    if (segments[i] === 'mock') specs.push(decodeURIComponent(segments[i + 1] ?? ''));
  }
  return { prefix, endpoint, flagSpec: specs.join(',') };
}

/** Endpoints a gateway serves without `/v1/` (longest first, so `chat/completions` wins over nothing shorter). */
const GATEWAY_ENDPOINTS = ['chat/completions', 'fim/completions', 'embeddings', 'ocr'];

// ---------------------------------------------------------------------------
// Pure builders: usage, JSON bodies, SSE events
// ---------------------------------------------------------------------------

/** Fixed timestamp: responses must be byte-identical between runs, so never the clock. */
export const CREATED = 1700000000;
const CREATED_AT = new Date(CREATED * 1000).toISOString();
/** Model used when the request has none to echo (agents, conversation append/restart). */
export const FIXED_MODEL = 'mistral-medium-2505';

/**
 * Content pieces of a stream. They include 2-, 3- and 4-byte UTF-8 characters so
 * that `chunk=1` splits characters across TCP writes.
 */
export const CONTENT_PIECES = ['Bonjour', ' café', ' à', ' 日本', ' 🙂', ' naïve', ' fin.'] as const;

export function contentPiece(i: number, big: boolean): string {
  const piece = CONTENT_PIECES[i % CONTENT_PIECES.length] ?? '';
  // ~1 KiB of UTF-8: the piece, its index, then a filler of 2-, 3- and 4-byte characters (10 bytes per repeat).
  return big ? `${piece} #${String(i).padStart(6, '0')} ${'é日🙂x'.repeat(100)}` : piece;
}

/** The full text a non-streamed reply carries. */
export const REPLY_TEXT = CONTENT_PIECES.join('');

function pad(n: number): string {
  return String(n).padStart(6, '0');
}

/**
 * Usage numbers unique per response: prompt = 100 + n, completion = 7n + 3, and the
 * total follows each endpoint's real-world rule (it is NOT always prompt + completion).
 */
export function usageFor(kind: EndpointKind, n: number): UsageNumbers {
  const prompt = 100 + n;
  const completion = 7 * n + 3;
  switch (kind) {
    case 'embeddings':
      // Real embeddings usage omits completion_tokens.
      return { wire: { prompt_tokens: prompt, total_tokens: prompt }, prompt, completion: 0, total: prompt };
    case 'moderations':
    case 'classifications': {
      // As in the docs' moderation example: completion 0, total > prompt.
      const total = prompt * 3;
      return {
        wire: { prompt_audio_seconds: null, prompt_tokens: prompt, total_tokens: total, completion_tokens: 0, request_count: 1, prompt_token_details: null },
        prompt,
        completion: 0,
        total,
      };
    }
    case 'transcriptions': {
      // Transcription totals differ from the sum in real payloads.
      const total = prompt + completion + 1000;
      return {
        wire: { prompt_audio_seconds: 12, prompt_tokens: prompt, total_tokens: total, completion_tokens: completion, request_count: 1, num_cached_tokens: 0 },
        prompt,
        completion,
        total,
      };
    }
    case 'conversations':
      return {
        wire: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, connector_tokens: null, connectors: null },
        prompt,
        completion,
        total: prompt + completion,
      };
    case 'speech':
      return {
        wire: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
        prompt,
        completion,
        total: prompt + completion,
      };
    default:
      // chat / fim / agents, key order as in the live capture.
      return {
        wire: { prompt_tokens: prompt, total_tokens: prompt + completion, completion_tokens: completion, prompt_tokens_details: { cached_tokens: 0 } },
        prompt,
        completion,
        total: prompt + completion,
      };
  }
}

/** The model the log must show for this response (speech replies carry none, so the request's). */
export function loggedModel(ctx: ResponseContext): string {
  return ctx.kind === 'speech' ? (ctx.requestModel ?? '') : ctx.model;
}

function embeddingVector(index: number): number[] {
  // Exact binary fractions: identical JSON on every platform.
  return Array.from({ length: 8 }, (_, j) => ((index * 8 + j) % 16) / 16 - 0.5);
}

function audioBytes(i: number): string {
  return Buffer.from(Array.from({ length: 48 }, (_, j) => (i * 31 + j * 7) & 0xff)).toString('base64');
}

const MODERATION_CATEGORIES = ['sexual', 'hate_and_discrimination', 'violence_and_threats', 'dangerous_and_criminal_content', 'selfharm', 'health', 'financial', 'law', 'pii'];

/** The JSON body of a successful non-streamed response (without usage when `nousage`). */
export function buildJsonBody(ctx: ResponseContext): Record<string, unknown> {
  const { n, model } = ctx;
  const usage = ctx.flags.nousage ? undefined : usageFor(ctx.kind, n).wire;
  const withUsage = (body: Record<string, unknown>): Record<string, unknown> => (usage ? { ...body, usage } : body);
  switch (ctx.kind) {
    case 'chat':
    case 'fim':
    case 'agents':
      return withUsage({
        id: `cmpl-mock-${pad(n)}`,
        object: 'chat.completion',
        model,
        created: CREATED,
        choices: [{ index: 0, message: { role: 'assistant', content: REPLY_TEXT, tool_calls: null, prefix: false }, finish_reason: 'stop' }],
      });
    case 'embeddings':
      return withUsage({
        id: `embd-mock-${pad(n)}`,
        object: 'list',
        data: Array.from({ length: ctx.inputs }, (_, index) => ({ object: 'embedding', embedding: embeddingVector(index), index })),
        model,
      });
    case 'moderations':
      return withUsage({
        id: `mod-mock-${pad(n)}`,
        model,
        results: Array.from({ length: ctx.inputs }, () => ({
          categories: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, false])),
          category_scores: Object.fromEntries(MODERATION_CATEGORIES.map((c, j) => [c, (j + 1) / 1024])),
        })),
      });
    case 'classifications':
      return withUsage({
        id: `cls-mock-${pad(n)}`,
        model,
        results: Array.from({ length: ctx.inputs }, () => ({ sentiment: { scores: { positive: 0.75, negative: 0.125, neutral: 0.125 } } })),
      });
    case 'conversations':
      // No top-level model: the model is only on the output entries.
      return withUsage({
        object: 'conversation.response',
        conversation_id: ctx.conversationId,
        outputs: [
          {
            object: 'entry',
            type: 'message.output',
            created_at: CREATED_AT,
            completed_at: CREATED_AT,
            id: `msg_mock_${pad(n)}`,
            agent_id: null,
            model,
            role: 'assistant',
            content: REPLY_TEXT,
          },
        ],
      });
    case 'transcriptions':
      return withUsage({ model, text: REPLY_TEXT, language: 'fr', segments: [] });
    case 'speech':
      // Non-streamed speech never carries usage (nor a model).
      return { audio_data: audioBytes(n) };
    case 'models':
      return buildModelList();
    case 'ocr':
      return buildOcrBody();
  }
}

/**
 * `POST /v1/ocr` as the spec shapes it: pages, and `usage_info` with pages and bytes, no tokens.
 * It also carries a token-shaped `usage` object, as a gateway might add one: a logger that counted
 * OCR would have to invent a mapping from these, so no row may come of it.
 */
export function buildOcrBody(): Record<string, unknown> {
  return {
    pages: [{ index: 0, markdown: `# Page 1\n\n${REPLY_TEXT}`, images: [], dimensions: { dpi: 200, height: 2200, width: 1700 } }],
    model: 'mistral-ocr-2505',
    document_annotation: null,
    usage_info: { pages_processed: 24, doc_size_bytes: 12640953 },
    usage: { prompt_tokens: 1000, completion_tokens: 0, total_tokens: 1000 },
  };
}

export function buildModelList(): Record<string, unknown> {
  const models = ['mistral-small-latest', 'mistral-medium-latest', 'mistral-large-latest', 'codestral-latest', 'mistral-embed', 'mistral-moderation-latest', 'voxtral-mini-latest'];
  return {
    object: 'list',
    data: models.map((id) => ({
      id,
      object: 'model',
      created: CREATED,
      owned_by: 'mistralai',
      capabilities: { completion_chat: !id.includes('embed') && !id.includes('moderation'), completion_fim: id.startsWith('codestral'), function_calling: true, fine_tuning: false, vision: false, classification: id.includes('moderation') },
      name: id,
      description: `Mock ${id}`,
      max_context_length: 32768,
      aliases: [],
      deprecation: null,
      default_model_temperature: 0.3,
      type: 'base',
    })),
  };
}

/**
 * Garbled JSON in place of the usage-bearing data: cut inside the usage object,
 * the way a broken proxy would truncate it.
 */
export function malformedJson(ctx: ResponseContext): string {
  return `{"id":"mock-${pad(ctx.n)}","model":${JSON.stringify(ctx.model)},"usage":{"prompt_tokens":${100 + ctx.n},"completion_tok`;
}

/** The SSE content event number `i` (0-based) for a stream of this kind, without usage. */
export function contentEvent(ctx: ResponseContext, i: number, last: boolean): SseEvent {
  const text = contentPiece(i, ctx.flags.big !== undefined);
  switch (ctx.kind) {
    case 'conversations':
      return {
        event: 'message.output.delta',
        data: JSON.stringify({ type: 'message.output.delta', created_at: CREATED_AT, output_index: 0, id: `msg_mock_${pad(ctx.n)}`, content_index: 0, model: ctx.model, agent_id: null, role: 'assistant', content: text }),
      };
    case 'transcriptions':
      return { event: 'transcription.text.delta', data: JSON.stringify({ type: 'transcription.text.delta', text }) };
    case 'speech':
      return { event: 'speech.audio.delta', data: JSON.stringify({ type: 'speech.audio.delta', audio_data: audioBytes(i) }) };
    default: {
      const delta = i === 0 ? { role: 'assistant', content: text } : { content: text };
      return {
        data: JSON.stringify({
          id: `cmpl-mock-${pad(ctx.n)}`,
          object: 'chat.completion.chunk',
          created: CREATED,
          model: ctx.model,
          choices: [{ index: 0, delta, finish_reason: last ? 'stop' : null }],
        }),
      };
    }
  }
}

/** True for the data-only SSE of chat/fim/agents (usage rides on the last content chunk, then [DONE]). */
export function isDataOnlyStream(kind: EndpointKind): boolean {
  return kind === 'chat' || kind === 'fim' || kind === 'agents';
}

function withUsageField(data: string, usage: Record<string, unknown>): string {
  return JSON.stringify({ ...(JSON.parse(data) as Record<string, unknown>), usage });
}

/** Events before the first content event (named-event streams only). */
export function preludeEvents(ctx: ResponseContext): SseEvent[] {
  switch (ctx.kind) {
    case 'conversations':
      return [{ event: 'conversation.response.started', data: JSON.stringify({ type: 'conversation.response.started', created_at: CREATED_AT, conversation_id: ctx.conversationId }) }];
    case 'transcriptions':
      return [{ event: 'transcription.language', data: JSON.stringify({ type: 'transcription.language', audio_language: 'fr' }) }];
    default:
      return [];
  }
}

/**
 * The event sequence of a successful stream. `nousage` drops the usage field,
 * `malformed` replaces the usage-bearing event's data with invalid JSON. Truncation
 * and hanging are writer behaviour, not part of the plan. Events are built on demand
 * so that `big=N` streams never sit in memory whole.
 */
export function planSse(ctx: ResponseContext): SsePlan {
  const count = ctx.flags.big ?? ctx.flags.events;
  const prelude = preludeEvents(ctx);
  const dataOnly = isDataOnlyStream(ctx.kind);
  // Data-only: usage rides on the last content chunk, then [DONE]. Named: a separate done event.
  const usageAt = dataOnly ? prelude.length + count - 1 : prelude.length + count;
  const length = prelude.length + count + 1;
  const usage = usageFor(ctx.kind, ctx.n).wire;

  const doneEvent = (): SseEvent => {
    const name = ctx.kind === 'conversations' ? 'conversation.response.done' : ctx.kind === 'transcriptions' ? 'transcription.done' : 'speech.audio.done';
    const done: Record<string, unknown> = { type: name };
    if (ctx.kind === 'conversations') done['created_at'] = CREATED_AT;
    if (ctx.kind === 'transcriptions') {
      const text = Array.from({ length: count }, (_, i) => contentPiece(i, ctx.flags.big !== undefined)).join('');
      Object.assign(done, { model: ctx.model, text, language: 'fr', segments: [] });
    }
    if (!ctx.flags.nousage) done['usage'] = usage;
    return { event: name, data: JSON.stringify(done) };
  };

  const eventAt = (i: number): SseEvent => {
    if (i < 0 || i >= length) throw new RangeError(`event ${i} outside 0..${length - 1}`);
    if (i === usageAt && ctx.flags.malformed) {
      const shape = dataOnly ? {} : { event: doneEvent().event ?? '' };
      return { ...shape, data: malformedJson(ctx) };
    }
    const prel = prelude[i];
    if (prel) return prel;
    if (i < prelude.length + count) {
      const ev = contentEvent(ctx, i - prelude.length, i === prelude.length + count - 1);
      return i === usageAt && !ctx.flags.nousage ? { ...ev, data: withUsageField(ev.data, usage) } : ev;
    }
    return dataOnly ? { data: '[DONE]' } : doneEvent();
  };

  return { length, usageIndex: ctx.flags.nousage || ctx.flags.malformed ? -1 : usageAt, firstContentIndex: prelude.length, contentCount: count, eventAt };
}

/** All events of `planSse(ctx)`, materialised (for unit tests; fine for small streams). */
export function buildSseEvents(ctx: ResponseContext): SseEvent[] {
  const plan = planSse(ctx);
  return Array.from({ length: plan.length }, (_, i) => plan.eventAt(i));
}

/** Serialise one event: `event:` line if named, one `data:` line per data line, blank line. */
export function formatSseEvent(ev: SseEvent, crlf = false): string {
  const eol = crlf ? '\r\n' : '\n';
  let out = ev.event === undefined ? '' : `event: ${ev.event}${eol}`;
  for (const line of ev.data.split('\n')) out += `data: ${line}${eol}`;
  return out + eol;
}

/**
 * Minimal SSE parser (any of CRLF / LF / CR line endings, comments, multi-line data)
 * for tests that need to inspect what actually went over the wire.
 */
export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  let name: string | undefined;
  let data: string[] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data.length > 0) events.push(name === undefined ? { data: data.join('\n') } : { event: name, data: data.join('\n') });
      name = undefined;
      data = [];
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') name = value;
  }
  return events;
}

export interface ErrorReply {
  status: number;
  body: Record<string, unknown>;
}

/** Error bodies in the shapes Mistral actually returns (gateway-level 401 differs from API errors). */
export function errorReply(status: number, n: number, detail?: string): ErrorReply {
  const apiError = (message: unknown, type: string, code: string | null): Record<string, unknown> => ({ object: 'error', message, type, param: null, code });
  switch (status) {
    case 401:
      return { status, body: { message: 'Unauthorized', request_id: `mock-req-${pad(n)}` } };
    case 400:
      return { status, body: detail === undefined ? apiError('Invalid model: mock-invalid', 'invalid_model', '1500') : apiError(detail, 'invalid_request_error', null) };
    case 404:
      return { status, body: apiError(detail ?? 'Not Found', 'invalid_request_error', null) };
    case 422:
      return {
        status,
        body: apiError({ detail: [{ type: 'extra_forbidden', loc: ['body', 'mock_field'], msg: 'Extra inputs are not permitted', input: true }] }, 'invalid_request_message_error', null),
      };
    case 429:
      return { status, body: apiError('Rate limit exceeded', 'rate_limited', '1300') };
    case 500:
      return { status, body: apiError('Internal server error', 'internal_server_error', '3000') };
    default:
      return { status, body: apiError(detail ?? `Mock error ${status}`, status >= 500 ? 'internal_server_error' : 'invalid_request_error', null) };
  }
}

// ---------------------------------------------------------------------------
// The writer: encoding, chunking, delays, backpressure
// ---------------------------------------------------------------------------

/** Encodes a body incrementally, flushing after each segment so every SSE event leaves at once. */
interface SegmentEncoder {
  encode(segment: Buffer): Promise<Buffer>;
  finish(): Promise<Buffer>;
  destroy(): void;
}

function createCompressor(encoding: Exclude<Encoding, 'identity'>): Transform & zlib.Zlib {
  switch (encoding) {
    case 'gzip':
      return zlib.createGzip();
    case 'deflate':
      return zlib.createDeflate();
    case 'br':
      return zlib.createBrotliCompress();
    case 'zstd': {
      if (!zstdApi.createZstdCompress) throw new Error('zstd is not available in this Node version');
      return zstdApi.createZstdCompress();
    }
  }
}

function createSegmentEncoder(encoding: Encoding): SegmentEncoder {
  if (encoding === 'identity') {
    return { encode: (s) => Promise.resolve(s), finish: () => Promise.resolve(Buffer.alloc(0)), destroy: () => {} };
  }
  const z = createCompressor(encoding);
  const out: Buffer[] = [];
  let failure: Error | undefined;
  z.on('data', (c: Buffer) => out.push(c));
  z.on('error', (e: Error) => (failure = e));
  const take = (): Buffer => {
    if (failure) throw failure;
    const b = Buffer.concat(out);
    out.length = 0;
    return b;
  };
  // Z_SYNC_FLUSH for gzip/deflate; brotli and zstd default to their own flush operation.
  const flush = (cb: () => void): void => (encoding === 'gzip' || encoding === 'deflate' ? z.flush(zlib.constants.Z_SYNC_FLUSH, cb) : z.flush(cb));
  return {
    encode: (segment) =>
      new Promise((resolve, reject) => {
        z.write(segment);
        // Output of the flush may be emitted on a later tick; setImmediate runs after those.
        flush(() => setImmediate(() => (failure ? reject(failure) : resolve(take()))));
      }),
    finish: () =>
      new Promise((resolve, reject) => {
        z.once('end', () => (failure ? reject(failure) : resolve(take())));
        z.end();
      }),
    destroy: () => z.destroy(),
  };
}

function encodeWhole(encoding: Encoding, body: Buffer): Buffer {
  switch (encoding) {
    case 'identity':
      return body;
    case 'gzip':
      return zlib.gzipSync(body);
    case 'deflate':
      return zlib.deflateSync(body);
    case 'br':
      return zlib.brotliCompressSync(body);
    case 'zstd': {
      if (!zstdApi.zstdCompressSync) throw new Error('zstd is not available in this Node version');
      return zstdApi.zstdCompressSync(body);
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));

/**
 * Writes raw bytes to one response, honouring chunk/delay, and waits for each write
 * to reach the socket (so truncation really happens mid-body and slow clients
 * apply backpressure). Tracks whether the client went away.
 */
class RawWriter {
  private writes = 0;
  clientGone = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly flags: MockFlags,
  ) {
    res.on('close', () => {
      if (!res.writableFinished) this.clientGone = true;
    });
  }

  get alive(): boolean {
    // An HTTP/2 compatibility response has no `destroyed` of its own: its stream has.
    const stream = (this.res as { stream?: { destroyed: boolean } }).stream;
    return !this.clientGone && !this.res.destroyed && stream?.destroyed !== true;
  }

  /** Returns false when the client is gone. */
  async write(bytes: Buffer): Promise<boolean> {
    const size = this.flags.chunk ?? Math.max(bytes.length, 1);
    for (let off = 0; off < bytes.length; off += size) {
      if (this.writes++ > 0 && (this.flags.chunk !== undefined || this.flags.delay > 0)) await sleep(this.flags.delay);
      if (!this.alive) return false;
      await this.writeOne(bytes.subarray(off, off + size));
    }
    return this.alive;
  }

  private writeOne(piece: Buffer): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.res.off('close', done);
        resolve();
      };
      // A write to a socket that is closing may never call back: 'close' settles it too.
      this.res.once('close', done);
      this.res.write(piece, done);
    });
  }

  end(): Promise<boolean> {
    return new Promise((resolve) => {
      if (!this.alive) return resolve(false);
      this.res.once('close', () => resolve(this.res.writableFinished));
      this.res.end(() => resolve(true));
    });
  }
}

function baseHeaders(flags: MockFlags, contentType: string): Record<string, string> {
  const headers: Record<string, string> = {};
  if (!flags.nocontenttype) headers['content-type'] = contentType;
  if (flags.encoding !== 'identity') headers['content-encoding'] = flags.encoding;
  else if (flags.label !== undefined) headers['content-encoding'] = flags.label;
  return headers;
}

/** Sends a complete JSON (or garbled) body. Resolves true when fully sent. */
async function sendJsonText(res: ServerResponse, status: number, text: string, flags: MockFlags): Promise<boolean> {
  const bytes = encodeWhole(flags.encoding, Buffer.from(text, 'utf8'));
  res.writeHead(status, { ...baseHeaders(flags, 'application/json'), 'content-length': String(bytes.length) });
  const writer = new RawWriter(res, flags);
  if (flags.truncated) {
    // Promise the full length, deliver about half, then drop the connection.
    await writer.write(bytes.subarray(0, Math.max(1, Math.floor(bytes.length / 2))));
    res.destroy();
    return false;
  }
  if (!(await writer.write(bytes))) return false;
  return writer.end();
}

interface StreamOutcome {
  usageWritten: boolean;
  disconnected: boolean;
  contentWritten: number;
}

/** Sends an SSE stream per plan; `hang` keeps emitting content every 20 ms until the client leaves. */
async function sendSse(res: ServerResponse, ctx: ResponseContext): Promise<StreamOutcome> {
  const { flags } = ctx;
  const plan = planSse(ctx);
  const encoder = createSegmentEncoder(flags.encoding);
  const writer = new RawWriter(res, flags);
  const outcome: StreamOutcome = { usageWritten: false, disconnected: false, contentWritten: 0 };
  res.writeHead(200, { ...baseHeaders(flags, 'text/event-stream'), 'cache-control': 'no-cache' });
  res.flushHeaders();
  const send = async (ev: SseEvent): Promise<boolean> => writer.write(await encoder.encode(Buffer.from(formatSseEvent(ev, flags.crlf), 'utf8')));
  const isContent = (i: number): boolean => i >= plan.firstContentIndex && i < plan.firstContentIndex + plan.contentCount;
  try {
    if (flags.hang) {
      for (let i = 0; i < plan.firstContentIndex; i++) if (!(await send(plan.eventAt(i)))) break;
      for (let i = 0; writer.alive; i++) {
        if (!(await send(contentEvent(ctx, i, false)))) break;
        outcome.contentWritten++;
        await sleep(20);
      }
      outcome.disconnected = true;
      return outcome;
    }
    // With `truncated`, stop right before the usage-bearing event (or the last event if none).
    const stopAt = flags.truncated ? (plan.usageIndex >= 0 ? plan.usageIndex : plan.length - 1) : plan.length;
    for (let i = 0; i < stopAt; i++) {
      if (!(await send(plan.eventAt(i)))) {
        outcome.disconnected = true;
        return outcome;
      }
      if (isContent(i)) outcome.contentWritten++;
      if (i === plan.usageIndex) outcome.usageWritten = true;
    }
    if (flags.truncated) {
      res.destroy();
      return outcome;
    }
    const tail = await encoder.finish();
    if (tail.length > 0 && !(await writer.write(tail))) outcome.disconnected = true;
    else if (!(await writer.end())) outcome.disconnected = true;
    return outcome;
  } finally {
    encoder.destroy();
  }
}

// ---------------------------------------------------------------------------
// Requests and routing
// ---------------------------------------------------------------------------

interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  kind: EndpointKind;
  /** For conversations: how the conversation id is obtained. */
  conversation?: 'start' | 'append' | 'restart';
}

/** The endpoint part after `/v1/`. */
const ROUTES: readonly Route[] = [
  { method: 'POST', pattern: /^chat\/completions$/, kind: 'chat' },
  { method: 'POST', pattern: /^fim\/completions$/, kind: 'fim' },
  { method: 'POST', pattern: /^agents\/completions$/, kind: 'agents' },
  { method: 'POST', pattern: /^embeddings$/, kind: 'embeddings' },
  { method: 'POST', pattern: /^(chat\/)?moderations$/, kind: 'moderations' },
  { method: 'POST', pattern: /^(chat\/)?classifications$/, kind: 'classifications' },
  { method: 'POST', pattern: /^conversations$/, kind: 'conversations', conversation: 'start' },
  { method: 'POST', pattern: /^conversations\/([^/]+)$/, kind: 'conversations', conversation: 'append' },
  { method: 'POST', pattern: /^conversations\/([^/]+)\/restart$/, kind: 'conversations', conversation: 'restart' },
  { method: 'POST', pattern: /^audio\/transcriptions$/, kind: 'transcriptions' },
  { method: 'POST', pattern: /^audio\/speech$/, kind: 'speech' },
  { method: 'GET', pattern: /^models$/, kind: 'models' },
  { method: 'POST', pattern: /^ocr$/, kind: 'ocr' },
];

interface RequestInfo {
  model?: string;
  stream: boolean;
  inputs: number;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

class BadRequest extends Error {}

/** Pull model / stream / input count out of a JSON or multipart body. */
async function parseRequest(req: IncomingMessage, body: Buffer): Promise<RequestInfo> {
  const contentType = req.headers['content-type'] ?? '';
  if (contentType.startsWith('multipart/form-data')) {
    // undici's multipart parser (via Response.formData) spares us a hand-written one.
    const form = await new Response(body, { headers: { 'content-type': contentType } }).formData().catch(() => {
      throw new BadRequest('Invalid multipart body');
    });
    const model = form.get('model');
    const info: RequestInfo = { stream: form.get('stream') === 'true', inputs: 1 };
    if (typeof model === 'string') info.model = model;
    return info;
  }
  let json: unknown = {};
  if (body.length > 0) {
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw new BadRequest('Invalid JSON body');
    }
  }
  const obj = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  const input = obj['input'] ?? obj['inputs'];
  const info: RequestInfo = { stream: obj['stream'] === true, inputs: Array.isArray(input) ? Math.max(1, input.length) : 1 };
  if (typeof obj['model'] === 'string') info.model = obj['model'];
  return info;
}

function defaultModel(kind: EndpointKind): string {
  switch (kind) {
    case 'embeddings':
      return 'mistral-embed';
    case 'moderations':
    case 'classifications':
      return 'mistral-moderation-latest';
    case 'transcriptions':
      return 'voxtral-mini-latest';
    case 'speech':
      return 'voxtral-mini-tts-latest';
    case 'fim':
      return 'codestral-latest';
    default:
      return 'mistral-small-latest';
  }
}

/** Resolve a promise-returning poll within a deadline (used by waitForServed/waitForDisconnects). */
function pollUntil<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const tick = (): void => {
      const value = check();
      if (value !== undefined) return resolve(value);
      if (Date.now() > deadline) return reject(new Error(`mock-mistral: timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

export async function startMockMistral(options: StartOptions = {}): Promise<MockMistral> {
  const defaults = parseFlags(options.defaults ?? '');
  const served: ServedResponse[] = [];
  const disconnects: Disconnect[] = [];
  const requests: ReceivedRequest[] = [];
  let counter = 0;

  const sendError = async (res: ServerResponse, reply: ErrorReply, flags: MockFlags): Promise<void> => {
    // An error reply is an error reply: truncation and friends would only blur it.
    await sendJsonText(res, reply.status, JSON.stringify(reply.body), { ...flags, truncated: false });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = req.method ?? 'GET';
    const pathname = new URL(req.url ?? '/', 'http://mock').pathname;
    requests.push({ method, path: pathname, headers: req.headers, httpVersion: req.httpVersion });
    const parsed = parsePath(pathname);
    let flags: MockFlags;
    try {
      flags = resolveFlags(defaults, parseFlags(parsed?.flagSpec ?? ''));
      if (flags.encoding === 'zstd' && !zstdAvailable) throw new FlagError('zstd is not available in this Node version');
    } catch (err) {
      if (!(err instanceof FlagError)) throw err;
      req.resume();
      return sendError(res, errorReply(400, 0, `mock: ${err.message}`), resolveFlags());
    }
    const route = parsed ? ROUTES.find((r) => r.pattern.test(parsed.endpoint)) : undefined;
    if (!parsed || !route) {
      req.resume();
      return sendError(res, errorReply(404, 0), flags);
    }
    if (route.method !== method) {
      req.resume();
      return sendError(res, errorReply(405, 0, 'Method Not Allowed'), flags);
    }
    if (route.kind === 'models' || route.kind === 'ocr') {
      req.resume();
      if (flags.status !== undefined) return sendError(res, errorReply(flags.status, 0), flags);
      // Neither carries token usage: never an entry in `served`.
      await sendJsonText(res, 200, JSON.stringify(route.kind === 'ocr' ? buildOcrBody() : buildModelList()), flags);
      return;
    }

    let info: RequestInfo;
    try {
      info = await parseRequest(req, await readBody(req));
    } catch (err) {
      if (!(err instanceof BadRequest)) throw err;
      return sendError(res, errorReply(400, 0, err.message), flags);
    }
    const n = ++counter;
    if (flags.status !== undefined) return sendError(res, errorReply(flags.status, n), flags);

    const pathId = route.pattern.exec(parsed.endpoint)?.[1];
    const conversationId = route.conversation === 'append' && pathId ? pathId : `conv_mock_${pad(n)}`;
    // Agents and conversation append/restart send no model: the API picks one, so do we.
    const requested = route.kind === 'agents' || route.conversation === 'append' || route.conversation === 'restart' ? undefined : info.model;
    const ctx: ResponseContext = {
      kind: route.kind,
      n,
      model: flags.model ?? requested ?? (route.kind === 'agents' || route.kind === 'conversations' ? FIXED_MODEL : defaultModel(route.kind)),
      inputs: info.inputs,
      conversationId,
      flags,
    };
    if (info.model !== undefined) ctx.requestModel = info.model;
    const record = (stream: boolean): void => {
      const u = usageFor(ctx.kind, n);
      served.push({ path: pathname, route: `/v1/${parsed.endpoint}`, model: loggedModel(ctx), promptTokens: u.prompt, completionTokens: u.completion, totalTokens: u.total, stream });
    };

    if (flags.hang && !info.stream) {
      // Non-streamed hang: headers, then nothing until the client gives up.
      res.writeHead(200, baseHeaders(flags, 'application/json'));
      res.flushHeaders();
      res.once('close', () => disconnects.push({ path: pathname, chunksWritten: 0 }));
      return;
    }

    if (info.stream) {
      const outcome = await sendSse(res, ctx);
      if (outcome.usageWritten) record(true);
      if (outcome.disconnected) disconnects.push({ path: pathname, chunksWritten: outcome.contentWritten });
      return;
    }

    const carriesUsage = ctx.kind !== 'speech' && !flags.nousage && !flags.malformed;
    const text = flags.malformed ? malformedJson(ctx) : JSON.stringify(buildJsonBody(ctx));
    const complete = await sendJsonText(res, 200, text, flags);
    if (complete && carriesUsage) record(false);
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      // A bug in the mock must be loud, not a hung test.
      console.error('mock-mistral: handler failed', err);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`mock-mistral internal error: ${String(err)}`);
    });
  };
  const certificate = options.http2 === true ? testCertificate() : undefined;
  // The HTTP/2 compatibility API hands the handler objects with the same methods the mock uses.
  const server: Server | ReturnType<typeof createSecureServer> | ReturnType<typeof createH2cServer> = certificate
    ? createSecureServer({ key: certificate.key, cert: certificate.cert, allowHTTP1: true }, onRequest as never)
    : options.http2 === 'h2c'
      ? createH2cServer(onRequest as never)
      : options.tls !== undefined
        ? createTlsServer({ keepAliveTimeout: 5000, ...options.tls }, onRequest)
        : createServer({ keepAliveTimeout: 5000 }, onRequest);
  const secure = certificate !== undefined || options.tls !== undefined;
  const sockets = new Set<Socket>();
  server.on(secure ? 'secureConnection' : 'connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;

  return {
    url: `${secure ? 'https' : 'http'}://127.0.0.1:${port}`,
    ...(certificate ? { caFile: certificate.certFile } : {}),
    hostPort: `127.0.0.1:${port}`,
    port,
    served,
    disconnects,
    requests,
    waitForServed: (count, timeoutMs = 5000) => pollUntil(() => (served.length >= count ? served : undefined), timeoutMs, `${count} served responses (have ${served.length})`),
    waitForDisconnects: (count, timeoutMs = 5000) => pollUntil(() => (disconnects.length >= count ? disconnects : undefined), timeoutMs, `${count} disconnects (have ${disconnects.length})`),
    close: () =>
      (closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Keep-alive sockets, HTTP/2 sessions and hanging streams would otherwise keep close() pending.
        for (const socket of sockets) socket.destroy();
      })),
  };
}

// ---------------------------------------------------------------------------
// Standalone mode
// ---------------------------------------------------------------------------

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

function argValue(args: string[], name: string): string | undefined {
  const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i === -1) return undefined;
  const arg = args[i] ?? '';
  return arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : args[i + 1];
}

if (isMain()) {
  const args = process.argv.slice(2);
  const portArg = argValue(args, '--port');
  const defaultsArg = argValue(args, '--defaults');
  const opts: StartOptions = {};
  if (portArg !== undefined) opts.port = Number(portArg);
  if (defaultsArg !== undefined) opts.defaults = defaultsArg;
  const mock = await startMockMistral(opts);
  process.stdout.write(`${JSON.stringify({ url: mock.url })}\n`);
  const stop = (): void => {
    void mock.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
