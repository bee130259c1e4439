// The response bodies of the bench server (bench/server.mjs), shared with bench/pipeline.mjs:
// a Mistral chat.completion JSON body, and a chat stream of CHUNKS content events (usage on the
// last one, as Mistral sends it) followed by `data: [DONE]`, one Buffer per event.
export const MODEL = "mistral-small-2603";
const CREATED = 1_764_000_000;

export function jsonBody(chunks = 50) {
  return Buffer.from(
    JSON.stringify({
      id: "cmpl-bench-0001",
      object: "chat.completion",
      model: MODEL,
      created: CREATED,
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: "Paris is the capital of France. ".repeat(4).trim(), tool_calls: null, prefix: false },
          finish_reason: "stop",
        },
      ],
      usage: usage(chunks),
    }),
  );
}

export function sseEvents(chunks = 50) {
  const events = [];
  for (let i = 0; i < chunks; i++) {
    const last = i === chunks - 1;
    const data = {
      id: "cmpl-bench-0001",
      object: "chat.completion.chunk",
      created: CREATED,
      model: MODEL,
      choices: [{ index: 0, delta: i === 0 ? { role: "assistant", content: "Paris" } : { content: ` token${i}` }, finish_reason: last ? "stop" : null }],
      ...(last ? { usage: usage(chunks) } : {}),
    };
    events.push(Buffer.from(`data: ${JSON.stringify(data)}\n\n`));
  }
  events.push(Buffer.from("data: [DONE]\n\n"));
  return events;
}

function usage(chunks) {
  return { prompt_tokens: 23, completion_tokens: chunks, total_tokens: 23 + chunks };
}
