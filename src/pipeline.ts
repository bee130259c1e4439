import { HostMatcher, matchCall, pathWithoutQuery } from "./endpoints.js";
import { MicrosecondClock } from "./record/clock.js";
import { ObservedCall, type CallDeps, type Limits } from "./record/observed-call.js";
import type { CallUsage, UsageEvent } from "./record/usage-event.js";
import { internalErrorReporter } from "./report.js";
import { fanOut, type UsageSink } from "./sink/sink.js";
import type { ObserverFactory } from "./taps/exchange.js";

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 32 * 1024 * 1024,
  maxEventBytes: 8 * 1024 * 1024,
  maxRequestBytes: 1024 * 1024,
};

export interface PipelineOptions {
  /** Where usage events go, in this order. */
  readonly sinks: readonly UsageSink[];
  /** Hosts that count as the Mistral API besides `mistral.ai` and `*.mistral.ai` (`MISTRAL_USAGE_HOSTS`). */
  readonly extraHosts?: readonly string[];
  readonly limits?: Limits;
  /** One line per problem; the caller decides where it goes (the preload: stderr, deduplicated). */
  readonly warn: (message: string) => void;
  /** The time of an event, in microseconds since the Unix epoch. */
  readonly nowMicros?: () => number;
}

/**
 * The chain every usage row goes through: a tap's exchange → ObservedCall (decode, extract) → one
 * timestamped event → the sinks. It touches nothing global: the preload's `install()` feeds it from
 * Node's diagnostics channels, the proxy from the bytes it forwards.
 */
export interface Pipeline {
  /** Called by a tap once per request; returns undefined for requests that are not usage-bearing Mistral calls. */
  readonly observe: ObserverFactory;
  /** Writes what the sinks hold, synchronously (see UsageSink.flush). */
  flush(): void;
  /**
   * Records what the calls still open have already received (compressed streams on a Node whose
   * zlib can only decode them whole), then flushes and closes the sinks. The exit path: synchronous, never throws.
   */
  close(): void;
}

export function createPipeline(options: PipelineOptions): Pipeline {
  const { warn } = options;
  const reportInternalError = internalErrorReporter(warn);
  const sink = fanOut(options.sinks, reportInternalError);
  const clock = options.nowMicros === undefined ? new MicrosecondClock() : undefined;
  const nowMicros = options.nowMicros ?? (() => clock!.nowMicros());
  const hosts = new HostMatcher(options.extraHosts ?? []);
  const openStreams = new Set<ObservedCall>();
  const deps: CallDeps = {
    record: (usage: CallUsage) => {
      const event: UsageEvent = {
        epochMicros: nowMicros(),
        endpoint: usage.endpoint,
        server: usage.server,
        requestModel: usage.requestModel,
        responseModel: usage.responseModel,
        counts: usage.counts,
      };
      sink.append(event);
    },
    warn,
    limits: options.limits ?? DEFAULT_LIMITS,
    openStreams,
  };

  const observe: ObserverFactory = (origin, path, method) => {
    const call = matchCall(hosts, origin, path, method);
    if (call === undefined) return undefined;
    return new ObservedCall(call, () => `${method} ${origin}${redactPath(pathWithoutQuery(path))}`, deps);
  };

  return {
    observe,
    flush: () => sink.flush(),
    close: () => {
      try {
        for (const call of openStreams) call.finishAtExit();
      } catch (error) {
        reportInternalError(error);
      }
      sink.close();
    },
  };
}

/**
 * A request path as warnings may print it: gateways put keys in paths (`/key/<key>/v1/...`), and a
 * forward proxy's absolute-form path may carry `user:password@`. Path segments that look like a
 * secret (a run of 16 or more characters between separators that mixes letters and digits, or of
 * 24 or more letters and digits) become `[redacted]`; userinfo goes. Names, versions, dates and UUID-shaped ids
 * stay readable. Warnings only: rows never hold a path.
 */
export function redactPath(path: string): string {
  const withoutUserinfo = path.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, "$1");
  return withoutUserinfo.replace(/[^/]+/g, (segment) => (looksSecret(segment) ? "[redacted]" : segment));
}

function looksSecret(segment: string): boolean {
  if (segment.length < 16) return false;
  for (const run of segment.split(/[-_.~:;,=+]/)) {
    if (run.length >= 24 && /^[A-Za-z0-9%]+$/.test(run)) return true;
    if (run.length >= 16 && /[0-9]/.test(run) && /[A-Za-z]/.test(run)) return true;
  }
  return false;
}
