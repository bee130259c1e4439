import zlib from "node:zlib";

/**
 * Realistic Mistral payloads shared by the unit tests. Shapes and numbers come from the captures and
 * docs quoted in shared/reference/mistral-api-and-clients.md (sections 1 and 2).
 */

/** Joins SSE events (each a "\n"-separated block of lines) into a stream with the given line ending. */
export function sseStream(events: readonly string[], eol: "\n" | "\r\n" | "\r" = "\n"): string {
  return events.map((event) => `${event}\n\n`.replaceAll("\n", eol)).join("");
}

export const utf8 = (text: string): Buffer => Buffer.from(text, "utf8");

// --- Compression, as a server applies it ----------------------------------------------------------

// zstd arrived in Node 22.15 / 23.8; @types/node 20 does not declare it.
interface ZstdZlib {
  zstdCompressSync?(data: Buffer, options?: { finishFlush?: number }): Buffer;
  createZstdCompress?(): zlib.Zlib & NodeJS.ReadWriteStream;
  constants: { ZSTD_e_flush?: number };
}
const zstd = zlib as unknown as ZstdZlib;
export const hasZstd = typeof zstd.zstdCompressSync === "function";

export interface Compression {
  /** A finished body. */
  whole(data: Buffer): Buffer;
  /** A stream flushed but not finished: what has arrived when the app cancels mid-stream. */
  flushed(data: Buffer): Buffer;
  /**
   * One stream, flushed after each segment as a server flushes after each event, then finished:
   * the bytes sent for each segment (the last entry is the end of the stream).
   */
  segments(data: readonly Buffer[]): Promise<Buffer[]>;
}

/** Compresses segment by segment with a streaming compressor, flushing after each. */
async function streamSegments(compressor: zlib.Zlib & NodeJS.ReadWriteStream, data: readonly Buffer[], flushKind?: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let pending: Buffer[] = [];
  compressor.on("data", (chunk: Buffer) => pending.push(chunk));
  const take = (): Buffer => {
    const bytes = Buffer.concat(pending);
    pending = [];
    return bytes;
  };
  for (const segment of data) {
    compressor.write(segment);
    await new Promise<void>((resolve) => (flushKind === undefined ? compressor.flush(() => resolve()) : compressor.flush(flushKind, () => resolve())));
    await new Promise((resolve) => setImmediate(resolve));
    out.push(take());
  }
  await new Promise<void>((resolve) => {
    compressor.once("end", () => resolve());
    compressor.end();
    compressor.resume();
  });
  out.push(take());
  return out;
}

/** One per coding (deflateRaw: the raw deflate that some servers send as "deflate"). */
export const COMPRESS: Readonly<Record<"gzip" | "deflate" | "deflateRaw" | "br" | "zstd", Compression>> = {
  gzip: {
    whole: (data) => zlib.gzipSync(data),
    flushed: (data) => zlib.gzipSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH }),
    segments: (data) => streamSegments(zlib.createGzip(), data, zlib.constants.Z_SYNC_FLUSH),
  },
  deflate: {
    whole: (data) => zlib.deflateSync(data),
    flushed: (data) => zlib.deflateSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH }),
    segments: (data) => streamSegments(zlib.createDeflate(), data, zlib.constants.Z_SYNC_FLUSH),
  },
  deflateRaw: {
    whole: (data) => zlib.deflateRawSync(data),
    flushed: (data) => zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH }),
    segments: (data) => streamSegments(zlib.createDeflateRaw(), data, zlib.constants.Z_SYNC_FLUSH),
  },
  br: {
    whole: (data) => zlib.brotliCompressSync(data),
    flushed: (data) => zlib.brotliCompressSync(data, { finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH }),
    segments: (data) => streamSegments(zlib.createBrotliCompress(), data),
  },
  zstd: {
    whole: (data) => zstd.zstdCompressSync!(data),
    flushed: (data) => zstd.zstdCompressSync!(data, { finishFlush: zstd.constants.ZSTD_e_flush! }),
    segments: (data) => streamSegments(zstd.createZstdCompress!(), data),
  },
};

// --- Chat / FIM / agents: data-only SSE -----------------------------------------------------------

const CHAT_ID = "b5810ef45cbb4d59a8a0b0c2f81b1e07";

/** The vercel/ai live capture: usage on the last content chunk, unknown `p` padding, then [DONE]. */
export const CHAT_SSE_EVENTS = [
  `data: {"id":"${CHAT_ID}","object":"chat.completion.chunk","created":1787865810,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
  `data: {"id":"${CHAT_ID}","object":"chat.completion.chunk","created":1787865810,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"OK"},"finish_reason":null}],"p":"abcdefghijklmnopqrstuvwxyz0123456789"}`,
  `data: {"id":"${CHAT_ID}","object":"chat.completion.chunk","created":1787865810,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"total_tokens":21,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":0},"service_tier":"standard"},"p":"abcdef"}`,
  "data: [DONE]",
] as const;
export const CHAT_SSE = sseStream(CHAT_SSE_EVENTS);
export const CHAT_USAGE = { promptTokens: 19, completionTokens: 2, totalTokens: 21 } as const;

/** The same stream with multi-byte text (2-, 3- and 4-byte UTF-8 sequences) in the content. */
export const CHAT_SSE_UNICODE_EVENTS = [
  CHAT_SSE_EVENTS[0],
  `data: {"id":"${CHAT_ID}","object":"chat.completion.chunk","created":1787865810,"model":"mistral-small-latest","choices":[{"index":0,"delta":{"content":"Café, 日本語 😀 — ok"},"finish_reason":null}],"p":"é日😀"}`,
  CHAT_SSE_EVENTS[2],
  CHAT_SSE_EVENTS[3],
] as const;

/** End of a 2024 raw curl capture: no extra usage fields, finish_reason "length". */
export const CHAT_SSE_2024 = sseStream([
  'data: {"id":"cmpl-3c5e5e1fd3e84b3e9d6f0c2a","object":"chat.completion.chunk","created":1718000000,"model":"mistral-large-latest","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}',
  'data: {"id":"cmpl-3c5e5e1fd3e84b3e9d6f0c2a","object":"chat.completion.chunk","created":1718000000,"model":"mistral-large-latest","choices":[{"index":0,"delta":{"content":"izable"},"finish_reason":"length"}],"usage":{"prompt_tokens":34,"total_tokens":134,"completion_tokens":100}}',
  "data: [DONE]",
]);

// --- Named-event streams --------------------------------------------------------------------------

export const CONVERSATION_SSE_EVENTS = [
  'event: conversation.response.started\ndata: {"type":"conversation.response.started","created_at":"2026-08-21T09:12:44.281Z","conversation_id":"conv_0682c9a1b2c3"}',
  'event: message.output.delta\ndata: {"type":"message.output.delta","created_at":"2026-08-21T09:12:44.900Z","output_index":1,"id":"msg_0682c9a4d5e6","content_index":0,"model":"mistral-medium-latest","agent_id":"ag_0682c9a0f1e2","role":"assistant","content":"The"}',
  'event: message.output.delta\ndata: {"type":"message.output.delta","created_at":"2026-08-21T09:12:44.950Z","output_index":1,"id":"msg_0682c9a4d5e6","content_index":0,"model":"mistral-medium-latest","agent_id":"ag_0682c9a0f1e2","role":"assistant","content":" capital — Paris, 巴黎 🇫🇷"}',
  'event: conversation.response.done\ndata: {"type":"conversation.response.done","created_at":"2026-08-21T09:12:45.310Z","usage":{"prompt_tokens":18709,"total_tokens":18892,"completion_tokens":183,"connector_tokens":null,"connectors":null}}',
] as const;
export const CONVERSATION_SSE = sseStream(CONVERSATION_SSE_EVENTS);
export const CONVERSATION_USAGE = { promptTokens: 18709, completionTokens: 183, totalTokens: 18892 } as const;

export const TRANSCRIPTION_SSE_EVENTS = [
  'event: transcription.language\ndata: {"type":"transcription.language","audio_language":"fr"}',
  'event: transcription.text.delta\ndata: {"type":"transcription.text.delta","text":"Bonjour à tous"}',
  'event: transcription.segment\ndata: {"type":"transcription.segment","text":"Bonjour à tous","start":0.0,"end":1.24}',
  'event: transcription.done\ndata: {"type":"transcription.done","model":"voxtral-mini-2507","text":"Bonjour à tous","language":"fr","segments":[],"usage":{"prompt_audio_seconds":203,"prompt_tokens":70,"total_tokens":716,"completion_tokens":646,"request_count":1,"num_cached_tokens":0}}',
] as const;
export const TRANSCRIPTION_SSE = sseStream(TRANSCRIPTION_SSE_EVENTS);
export const TRANSCRIPTION_USAGE = { promptTokens: 70, completionTokens: 646, totalTokens: 716 } as const;

/** Speech streams carry usage on `speech.audio.done` and never name the model. */
export const SPEECH_SSE_EVENTS = [
  'event: speech.audio.delta\ndata: {"type":"speech.audio.delta","audio_data":"SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjYxLjcuMTAwAAAAAAAAAAAAAAD/+1TAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}',
  'event: speech.audio.delta\ndata: {"type":"speech.audio.delta","audio_data":"//tUxAADwAABpAAAACAAADSAAAAETEFNRTMuMTAwVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVV"}',
  'event: speech.audio.done\ndata: {"type":"speech.audio.done","usage":{"prompt_tokens":56,"completion_tokens":94080,"total_tokens":94136}}',
] as const;
export const SPEECH_SSE = sseStream(SPEECH_SSE_EVENTS);
export const SPEECH_USAGE = { promptTokens: 56, completionTokens: 94080, totalTokens: 94136 } as const;
export const SPEECH_REQUEST = JSON.stringify({
  model: "voxtral-mini-tts-2603",
  input: "Bonjour à tous, et bienvenue.",
  voice_id: "c3f2a1b0-9d8e-4f7a-b6c5-d4e3f2a1b0c9",
  response_format: "mp3",
  stream: true,
});

// --- JSON bodies ----------------------------------------------------------------------------------

export const CHAT_JSON = JSON.stringify({
  id: "cmpl-e5cc70bb28c444948073e77776eb30ef",
  object: "chat.completion",
  model: "mistral-small-latest",
  created: 1787865810,
  choices: [
    {
      index: 0,
      message: { role: "assistant", content: "The capital of France is Paris.", tool_calls: null },
      finish_reason: "stop",
    },
  ],
  usage: {
    prompt_tokens: 15,
    total_tokens: 23,
    completion_tokens: 8,
    prompt_tokens_details: { cached_tokens: 0 },
    service_tier: "standard",
  },
});
export const CHAT_JSON_USAGE = { promptTokens: 15, completionTokens: 8, totalTokens: 23 } as const;

/** Embeddings omit completion_tokens. */
export const EMBEDDINGS_JSON = JSON.stringify({
  id: "embd-aad6fc62b17349b192ef09225058bc45",
  object: "list",
  data: [{ object: "embedding", embedding: [-0.0165863037109375, 0.07012939453125, 0.031494140625], index: 0 }],
  model: "mistral-embed",
  usage: { prompt_tokens: 6, total_tokens: 6 },
});

/** Moderations report a total that is not prompt + completion, and a request_count. */
export const MODERATION_JSON = JSON.stringify({
  id: "4d71ae510af942108ef7344f903e2b88",
  model: "mistral-moderation-2411",
  results: [
    {
      categories: { sexual: false, hate_and_discrimination: false, violence_and_threats: false, selfharm: false },
      category_scores: { sexual: 0.0001, hate_and_discrimination: 0.0002, violence_and_threats: 0.0011, selfharm: 0.0001 },
    },
  ],
  usage: {
    prompt_audio_seconds: null,
    prompt_tokens: 38,
    total_tokens: 127,
    completion_tokens: 0,
    request_count: 1,
    prompt_token_details: null,
  },
});

/** The spec's moderation response: no usage at all. */
export const MODERATION_JSON_NO_USAGE = JSON.stringify({
  id: "4d71ae510af942108ef7344f903e2b88",
  model: "mistral-moderation-2411",
  results: [{ categories: { sexual: false }, category_scores: { sexual: 0.0001 } }],
});

/** Batch docs example: total 3263 although prompt 4 + completion 634. */
export const TRANSCRIPTION_JSON = JSON.stringify({
  model: "voxtral-mini-2507",
  text: "This week, I traveled to Chicago to deliver my final farewell address to the nation.",
  language: "en",
  segments: [],
  usage: {
    prompt_audio_seconds: 203,
    prompt_tokens: 4,
    total_tokens: 3263,
    completion_tokens: 634,
    request_count: 1,
    num_cached_tokens: 0,
  },
});

/** Conversations have no top-level model: the first output naming one stands in. */
export const CONVERSATION_JSON = JSON.stringify({
  object: "conversation.response",
  conversation_id: "conv_0682c9a1b2c3",
  outputs: [
    {
      object: "entry",
      type: "tool.execution",
      created_at: "2026-08-21T09:12:44.281Z",
      id: "tool_exec_0682c9a2",
      name: "web_search",
      arguments: '{"query": "capital of France"}',
    },
    {
      object: "entry",
      type: "message.output",
      created_at: "2026-08-21T09:12:45.310Z",
      id: "msg_0682c9a4d5e6",
      agent_id: "ag_0682c9a0f1e2",
      model: "mistral-medium-latest",
      role: "assistant",
      content: "The capital of France is Paris.",
    },
  ],
  usage: { prompt_tokens: 18709, total_tokens: 18892, completion_tokens: 183, connector_tokens: null, connectors: null },
  guardrails: null,
});

/** A conversation response whose outputs name no model (an append to an agent conversation). */
export const CONVERSATION_JSON_NO_MODEL = JSON.stringify({
  object: "conversation.response",
  conversation_id: "conv_0682c9a1b2c3",
  outputs: [{ object: "entry", type: "message.output", id: "msg_1", model: null, role: "assistant", content: "Yes." }],
  usage: { prompt_tokens: 120, total_tokens: 124, completion_tokens: 4 },
});

/** Non-streamed speech: audio only, never usage. */
export const SPEECH_JSON = JSON.stringify({ audio_data: "SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjYxLjcuMTAwAAAA" });

/** OCR reports pages, not tokens, under `usage_info`. */
export const OCR_JSON = JSON.stringify({
  pages: [],
  model: "mistral-ocr-2505",
  document_annotation: null,
  usage_info: { pages_processed: 24, doc_size_bytes: 12640953 },
});

/** A 429 error body (never usage-bearing). */
export const RATE_LIMIT_JSON = JSON.stringify({
  object: "error",
  message: "Requests rate limit exceeded",
  type: "rate_limited",
  param: null,
  code: "1300",
});

/** Bytes that are neither JSON nor UTF-8 (a PNG header and invalid UTF-8 sequences). */
export const BINARY_GARBAGE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0xfe, 0x00, 0xc3, 0x28, 0xe2, 0x82]);
