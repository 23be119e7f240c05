// Types of the ESM entry `dropfix`. `window.DropFix` is declared only by `dropfix/global`
// (global.d.ts), for pages that load the script-tag build: an ESM app has no such global.

/**
 * Options of `DropFix.init`. Optional fields (here and in the traits) also take an explicit
 * `undefined`, which means "absent", so `endpoint: process.env.X` or a session's
 * `name?: string | undefined` compile under `exactOptionalPropertyTypes`.
 */
export interface InitOptions {
  /** The workspace's public app id (`app_...`). Never the secret key. */
  appId: string;
  /** Verifier base URL, e.g. `https://verify.example.com`. Default: this page's origin (for a verifier proxied at `/v1/identify` on your own domain). */
  endpoint?: string | undefined;
  /** Explain likely integration mistakes in the console. */
  debug?: boolean | undefined;
  /** Retries on network errors, 5xx and 429 (default 3; none on other 4xx, timeouts or a CORS refusal). */
  maxRetries?: number | undefined;
  /** Milliseconds one request (the call, or the wasm download) may take before it is aborted and the call rejects with `timeout` (default 10000). */
  timeoutMs?: number | undefined;
  /** Where to load the SDK's wasm from (URL, bytes or a compiled module). Default: next to the SDK file. */
  wasm?: string | URL | BufferSource | WebAssembly.Module | Response | undefined;
  /** A fetch implementation for the verifier calls (default: the global fetch). Outside a browser, passing one opts in to running there (tests, other runtimes); without it identify() rejects with `not_in_browser`. */
  fetch?: typeof fetch | undefined;
}

/** The traits of `DropFix.identify` other than the signature fields. */
export interface BaseTraits {
  name?: string | undefined;
  email?: string | undefined;
  plan?: string | undefined;
  mrr?: number | undefined;
  signup_date?: string | undefined;
  /** Custom traits: kept as unverified data. */
  [custom: string]: unknown;
}

/** `signature` or its alias `hash`, not both (the verifier refuses two different values). */
export type SignatureField =
  | {
      /** A signed-claims token (recommended), or `dropfix_hash` from your backend. */
      signature?: string | undefined;
      hash?: undefined;
    }
  | {
      /** Alias of `signature`. */
      hash?: string | undefined;
      signature?: undefined;
    };

/** `signedAt` or its alias `signed_at`, not both. Not needed with a signed-claims token. */
export type SignedAtField =
  | {
      /** `dropfix_signed_at` from your backend: Unix seconds. */
      signedAt?: number | undefined;
      signed_at?: undefined;
    }
  | {
      /** Alias of `signedAt`. */
      signed_at?: number | undefined;
      signedAt?: undefined;
    };

/** The second argument of `DropFix.identify`, as in Step 2 of "Secure your identify() call". */
export type Traits = BaseTraits & SignatureField & SignedAtField;

export interface IdentifyResult {
  /** True when the verifier checked the signature (200); false for an unsigned call (202). */
  verified: boolean;
  userId: string;
  method: 'seed_hmac' | 'signed_claims' | null;
}

/** Codes the SDK gives itself, with `status` 0 (no answer could be read). */
export type DropFixClientErrorCode =
  /** identify() before a successful init() (none yet, or the last one threw). */
  | 'not_initialized'
  /** Thrown by init() itself, synchronously (not a rejection): no usable appId (a non-empty string). */
  | 'invalid_config'
  /** identify() outside a browser (server-side rendering). */
  | 'not_in_browser'
  /** The wasm file could not be fetched or compiled (`status` is the HTTP status of a failed download); a later call tries again. */
  | 'sdk_load_failed'
  /**
   * The page's Content-Security-Policy blocks the SDK: WebAssembly (script-src needs
   * 'wasm-unsafe-eval'), or the calls to the verifier or the wasm download (connect-src needs
   * their origin). The message names the directive and the line to add; never retried.
   */
  | 'csp_blocked'
  /** The verifier could not be reached (after the retries). */
  | 'network_error'
  /** No answer within `timeoutMs` (the call may still have reached the verifier and been stored). */
  | 'timeout'
  /** DropFix.reset() was called while the call was pending (if it was already sent, the verifier may have stored it). */
  | 'reset'
  /** The call could not be built (an internal error of the SDK). */
  | 'invalid_call';

/** Codes of the verifier's answers; the validation codes also come from the SDK, before sending. */
export type DropFixServerErrorCode =
  | 'signature_required'
  | 'signed_claims_required'
  | 'signature_mismatch'
  | 'signature_expired'
  | 'signed_at_in_future'
  | 'signed_at_missing'
  | 'signed_at_not_seconds'
  | 'signature_malformed'
  | 'claims_mismatch'
  | 'unknown_app'
  /** With status 0: the browser refused the answer (CORS), most likely because this page's origin is not allowed. */
  | 'origin_not_allowed'
  | 'rate_limited'
  | 'store_unavailable'
  | 'body_too_large'
  | 'body_timeout'
  | 'body_unreadable'
  | 'unsupported_media_type'
  | 'method_not_allowed'
  | 'invalid_json'
  | 'invalid_type'
  | 'invalid_value'
  | 'missing_field'
  | 'empty_value'
  | 'too_long'
  | 'too_many_traits'
  | 'invalid_characters'
  | 'invalid_trait_name'
  | 'reserved_trait'
  | 'unknown_field'
  | 'conflicting_fields'
  | 'secret_not_allowed';

/** Every `DropFixError.code`; `http_<status>` when an error answer carried no code (a proxy's page). */
export type DropFixErrorCode = DropFixClientErrorCode | DropFixServerErrorCode | `http_${number}`;

/** Why an identify call failed. `status` is the HTTP status, or 0 when no answer could be read. */
export declare class DropFixError extends Error {
  readonly name: 'DropFixError';
  readonly status: number;
  /** Stable machine code. */
  readonly code: DropFixErrorCode;
  /** The offending field, for validation errors (`userId`, `traits.mrr`, ...). */
  readonly field?: string;
}

export interface DropFixApi {
  /**
   * Configures the SDK. Throws a DropFixError synchronously, and forgets any earlier
   * configuration, when `appId` is missing or empty (`invalid_config`) or the options carry a
   * secret key (`secret_not_allowed`).
   * @throws {DropFixError}
   */
  init(options: InitOptions): void;
  identify(userId: string | number, traits?: Traits): Promise<IdentifyResult>;
  /** Call on logout or user switch: aborts the calls in flight and queued (they reject with `reset`). */
  reset(): void;
}

export declare const DropFix: DropFixApi;
export default DropFix;
