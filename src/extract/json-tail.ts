/**
 * The top-level `usage` and `model` members of a JSON object, found by reading it backwards from its
 * end. Mistral serializes them last (`{"id", "object", "data": [...], "model", "usage"}` for
 * embeddings; `usage` after `choices` for chat), so for a body of megabytes of floats this reads a
 * few hundred bytes where `JSON.parse` reads everything. Pure: no I/O.
 *
 * Reading JSON backwards is sound because of one rule: a `"` preceded by an even number of
 * backslashes (zero included) is a string's delimiter, and one preceded by an odd number is an
 * escaped quote inside a string. So the value before the end can be skipped without knowing what
 * came before it: a string back to its opening quote, an array or object back to its matching
 * bracket (stepping over strings), a number or literal back to its first character.
 *
 * It answers only when it is sure, and otherwise returns undefined so that the caller parses the
 * whole body: the two members are not both among the last members in the bytes given, a key among
 * those is written with escapes (it could spell `usage`), or the text is not shaped like the end of
 * an object. The last occurrence of a duplicated key is the one found first,
 * as `JSON.parse` keeps the last one. What lies before the members read is not validated.
 */
export interface TailMembers {
  /** The JSON text of the last top-level `usage` value. */
  readonly usage: string;
  /** The JSON text of the last top-level `model` value. */
  readonly model: string;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const USAGE = [0x75, 0x73, 0x61, 0x67, 0x65]; // usage
const MODEL = [0x6d, 0x6f, 0x64, 0x65, 0x6c]; // model

/**
 * `tail` holds the last bytes of the body (all of it, or its last chunks): nothing before its start
 * is looked at, so reaching it without an answer means "not sure".
 */
export function membersFromTail(tail: Buffer): TailMembers | undefined {
  let i = skipSpaceBack(tail, tail.length - 1);
  if (i < 0 || tail[i] !== CLOSE_OBJECT) return undefined;
  i--;
  let usage: readonly [number, number] | undefined;
  let model: readonly [number, number] | undefined;
  for (;;) {
    i = skipSpaceBack(tail, i);
    if (i < 0) return undefined;
    const valueEnd = i + 1;
    const valueStart = valueStartBefore(tail, i);
    if (valueStart < 0) return undefined;
    i = skipSpaceBack(tail, valueStart - 1);
    if (i < 0 || tail[i] !== COLON) return undefined;
    i = skipSpaceBack(tail, i - 1);
    if (i < 0 || tail[i] !== QUOTE) return undefined;
    const keyStart = openingQuote(tail, i);
    if (keyStart < 0) return undefined;
    if (usage === undefined && spells(tail, keyStart + 1, i, USAGE)) usage = [valueStart, valueEnd];
    else if (model === undefined && spells(tail, keyStart + 1, i, MODEL)) model = [valueStart, valueEnd];
    else if (hasBackslash(tail, keyStart + 1, i)) return undefined;
    if (usage !== undefined && model !== undefined) {
      return { usage: tail.toString("utf8", usage[0], usage[1]), model: tail.toString("utf8", model[0], model[1]) };
    }
    i = skipSpaceBack(tail, keyStart - 1);
    // `{`: the object's first member, and the two were not both there; anything else is not JSON.
    if (i < 0 || tail[i] !== COMMA) return undefined;
    i--;
  }
}

function isSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

/** The index of the last non-space byte at or before `i`, or -1. */
function skipSpaceBack(bytes: Buffer, i: number): number {
  while (i >= 0 && isSpace(bytes[i])) i--;
  return i;
}

/** The first byte of the JSON value that ends at `end` (inclusive), or -1 when not sure. */
function valueStartBefore(bytes: Buffer, end: number): number {
  const last = bytes[end];
  if (last === QUOTE) return openingQuote(bytes, end);
  if (last === CLOSE_OBJECT || last === CLOSE_ARRAY) {
    let depth = 0;
    for (let j = end; j >= 0; j--) {
      const byte = bytes[j];
      if (byte === QUOTE) {
        j = openingQuote(bytes, j);
        if (j < 0) return -1;
      } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
        depth++;
      } else if ((byte === OPEN_OBJECT || byte === OPEN_ARRAY) && --depth === 0) {
        return j;
      }
    }
    return -1;
  }
  let j = end;
  while (j >= 0 && isScalarByte(bytes[j]!)) j--;
  // A number or literal that may go on before the tail's start is not known whole.
  return j === end || j < 0 ? -1 : j + 1;
}

/** Digits, letters (true, false, null, exponents), `.`, `+`, `-`. */
function isScalarByte(byte: number): boolean {
  return (
    (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a) || byte === 0x2e || byte === 0x2b || byte === 0x2d
  );
}

/** The index of the quote that opens the string closed by the quote at `close`, or -1. */
function openingQuote(bytes: Buffer, close: number): number {
  let j = close - 1;
  for (;;) {
    j = j < 0 ? -1 : bytes.lastIndexOf(QUOTE, j);
    if (j < 0) return -1;
    let k = j - 1;
    while (k >= 0 && bytes[k] === BACKSLASH) k--;
    // A run of backslashes reaching the tail's start: its parity is not known.
    if (k < 0) return -1;
    if ((j - 1 - k) % 2 === 0) return j;
    j--;
  }
}

function hasBackslash(bytes: Buffer, start: number, end: number): boolean {
  for (let k = start; k < end; k++) if (bytes[k] === BACKSLASH) return true;
  return false;
}

function spells(bytes: Buffer, start: number, end: number, word: readonly number[]): boolean {
  if (end - start !== word.length) return false;
  for (let k = 0; k < word.length; k++) if (bytes[start + k] !== word[k]) return false;
  return true;
}
