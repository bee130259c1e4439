/** What a tap reports about one HTTP exchange it matched. Taps are thin: they only forward bytes. */

export interface ResponseHead {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly contentEncoding: string | undefined;
}

export interface ExchangeObserver {
  /** Only then does the tap forward request body chunks (they cost a copy). */
  readonly wantsRequestBody: boolean;
  requestBody(chunk: Uint8Array): void;
  responseStart(head: ResponseHead): void;
  /** Raw body bytes as they came off the connection: still content-encoded. */
  responseData(chunk: Uint8Array): void;
  responseEnd(): void;
  /** The exchange failed or was cancelled (by the app, the server or the network). */
  responseError(error: unknown): void;
}

/** Called once per request; returns undefined for requests that are not usage-bearing Mistral calls. */
export type ObserverFactory = (origin: string, path: string, method: string) => ExchangeObserver | undefined;
