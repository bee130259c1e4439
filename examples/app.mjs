// An ordinary Mistral app: it knows nothing about usage logging.
// Run it under the preload and every call it makes lands in mistral_usage_log.csv:
//   node --import mistral-usage-log/register examples/app.mjs
import { Mistral } from "@mistralai/mistralai";

const client = new Mistral({
  apiKey: process.env.MISTRAL_API_KEY ?? "no-key-needed-for-the-mock",
  // Unset: the real API. The demo points it at a local mock server when there is no API key.
  ...(process.env.MISTRAL_SERVER_URL ? { serverURL: process.env.MISTRAL_SERVER_URL } : {}),
});

const question = "What is the capital of France? Answer in one sentence.";

const reply = await client.chat.complete({
  model: "mistral-small-latest",
  messages: [{ role: "user", content: question }],
});
console.log(`chat.complete: ${reply.choices[0]?.message?.content}`);

process.stdout.write("chat.stream:   ");
const stream = await client.chat.stream({
  model: "mistral-small-latest",
  messages: [{ role: "user", content: question }],
});
for await (const event of stream) process.stdout.write(event.data.choices[0]?.delta?.content ?? "");
process.stdout.write("\n");

const embeddings = await client.embeddings.create({ model: "mistral-embed", inputs: [question] });
console.log(`embeddings:    ${embeddings.data[0]?.embedding?.length} dimensions`);
