import type { ObserverFactory } from "./exchange.js";
import { tapNodeHttp } from "./node-http.js";
import { tapNodeHttp2 } from "./node-http2.js";
import { tapUndici } from "./undici-diagnostics.js";

/**
 * A tap observes one HTTP stack and reports each exchange that `observe` accepts. It returns the
 * function that removes every subscription and patch it made.
 */
export type Tap = (observe: ObserverFactory, onInternalError: (error: unknown) => void) => () => void;

/**
 * Every in-process tap `install()` attaches. Each HTTP stack has one, and a call goes through exactly
 * one stack, so no call is seen twice. A new transport is one file here and one entry in this list.
 */
export const TAPS: readonly Tap[] = [tapUndici, tapNodeHttp, tapNodeHttp2];
