// The sink alone: rows per second appended to one CSV file, by WRITERS concurrent async writers in
// this process (and, when the orchestrator starts several of these at once, by several processes).
//
//   node bench/sink.mjs --file F --sink csvlog|raw|append-file --writers 8 --rows N
//                       [--batch immediate|tick] [--start-at EPOCH_MS]
//
// Sinks: csvlog = this package's CsvLog (dist/src/sink/csv-file.js), the real thing;
//        raw    = one writeSync of a preformatted row to an O_APPEND descriptor (the physical limit);
//        append-file = fs.appendFileSync per row (what the hand-written peer does).
// Each writer appends ROWS rows. --batch immediate (default) yields a macrotask (setImmediate)
// after each row, as rows from separate responses do, so every row is its own write;
// --batch tick yields a microtask only, so the rows the 8 writers append in one tick share a write.
// --start-at makes several processes start together. Prints one JSON line.
import fs from "node:fs";
import { parseArgs } from "node:util";
import { CsvLog } from "../dist/src/sink/csv-file.js";

const { values } = parseArgs({
  options: {
    file: { type: "string" },
    sink: { type: "string", default: "csvlog" },
    writers: { type: "string", default: "8" },
    rows: { type: "string", default: "5000" },
    batch: { type: "string", default: "immediate" },
    "start-at": { type: "string" },
  },
});
const file = values.file;
const writers = Number(values.writers);
const rows = Number(values.rows);
const HEADER = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\n";
const yieldNow = values.batch === "tick" ? () => Promise.resolve() : () => new Promise((resolve) => setImmediate(resolve));

let append;
let close = () => {};
if (values.sink === "csvlog") {
  const log = new CsvLog(file, { warn: (message) => process.stderr.write(`warn: ${message}\n`) });
  const server = { address: "127.0.0.1", port: 8080 };
  append = (i) =>
    log.append({
      epochMicros: Date.now() * 1000,
      endpoint: "chat",
      server,
      requestModel: undefined,
      responseModel: "mistral-small-2603",
      counts: { promptTokens: 23, completionTokens: i % 1000, totalTokens: 23 + (i % 1000) },
    });
  close = () => log.close();
} else if (values.sink === "raw") {
  try {
    fs.writeFileSync(file, HEADER, { flag: "wx" });
  } catch {}
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND);
  const row = Buffer.from("2026-11-24T10:30:01.123456+00:00,mistral-small-2603,23,50,73\n");
  append = () => fs.writeSync(fd, row);
  close = () => fs.closeSync(fd);
} else {
  if (!fs.existsSync(file)) fs.writeFileSync(file, HEADER);
  append = (i) =>
    fs.appendFileSync(file, `${new Date().toISOString().replace("Z", "000+00:00")},mistral-small-2603,23,${i % 1000},${23 + (i % 1000)}\n`);
}

const startAt = values["start-at"] === undefined ? undefined : Number(values["start-at"]);
if (startAt !== undefined) {
  while (Date.now() < startAt - 5) await new Promise((resolve) => setTimeout(resolve, 1));
  while (Date.now() < startAt);
}

const writer = async () => {
  for (let i = 0; i < rows; i++) {
    append(i);
    await yieldNow();
  }
};
const start = performance.timeOrigin + performance.now();
await Promise.all(Array.from({ length: writers }, writer));
close();
const end = performance.timeOrigin + performance.now();
const total = writers * rows;
process.stdout.write(`${JSON.stringify({ rows: total, start, end, elapsedMs: end - start, rowsPerSec: (total * 1000) / (end - start) })}\n`);
