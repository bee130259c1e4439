import diagnostics from "node:diagnostics_channel";

export type ChannelHandlers = Record<string, (message: unknown) => void>;

/**
 * Subscribes each handler to its channel and returns the function that unsubscribes them all.
 * A subscriber that throws would surface in the app as an uncaught exception (diagnostics_channel
 * rethrows on the next tick), so every handler's errors go to `onInternalError` instead.
 */
export function subscribeAll(handlers: ChannelHandlers, onInternalError: (error: unknown) => void): () => void {
  const guarded = Object.entries(handlers).map(([name, handler]) => {
    const subscriber = (message: unknown): void => {
      try {
        handler(message);
      } catch (error) {
        onInternalError(error);
      }
    };
    diagnostics.subscribe(name, subscriber);
    return [name, subscriber] as const;
  });
  return () => {
    for (const [name, subscriber] of guarded) diagnostics.unsubscribe(name, subscriber);
  };
}

/** Types a channel handler by the message it receives (channels deliver `unknown`). */
export function on<T>(handler: (message: T) => void): (message: unknown) => void {
  return handler as (message: unknown) => void;
}
