/** Options of `DropFix.init`. */
export interface InitOptions {
  /** The workspace's public app id (`app_...`). Never the secret key. */
  appId: string;
  /** Verifier base URL, e.g. `https://verify.example.com`. Default: this page's origin (for a verifier proxied at `/v1/identify` on your own domain). */
  endpoint?: string;
  /** Explain likely integration mistakes in the console. */
  debug?: boolean;
  /** Retries on network errors, 5xx and 429 (default 3; none on other 4xx). */
  maxRetries?: number;
  /** Where to load the SDK's wasm from (URL, bytes or a compiled module). Default: next to the SDK file. */
  wasm?: string | URL | BufferSource | WebAssembly.Module | Response;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
}

/** The second argument of `DropFix.identify`, as in Step 2 of "Secure your identify() call". */
export interface Traits {
  name?: string;
  email?: string;
  plan?: string;
  mrr?: number;
  signup_date?: string;
  /** `dropfix_hash` from your backend, or a signed-claims token. */
  signature?: string;
  /** Alias of `signature`. */
  hash?: string;
  /** `dropfix_signed_at` from your backend: Unix seconds. */
  signedAt?: number;
  /** Alias of `signedAt`. */
  signed_at?: number;
  /** Custom traits: kept as unverified data. */
  [custom: string]: unknown;
}

export interface IdentifyResult {
  /** True when the verifier checked the signature (200); false for an unsigned call (202). */
  verified: boolean;
  userId: string;
  method: 'seed_hmac' | 'signed_claims' | null;
}

/** Why an identify call failed. `status` is the HTTP status, or 0 when nothing was sent. */
export declare class DropFixError extends Error {
  readonly name: 'DropFixError';
  readonly status: number;
  /** Stable machine code: `signature_mismatch`, `signature_expired`, `invalid_type`, `network_error`, ... */
  readonly code: string;
  /** The offending field, for validation errors (`userId`, `traits.mrr`, ...). */
  readonly field?: string;
}

export interface DropFixApi {
  init(options: InitOptions): void;
  identify(userId: string | number, traits?: Traits): Promise<IdentifyResult>;
  /** Call on logout or user switch: pending retries are dropped. */
  reset(): void;
}

export declare const DropFix: DropFixApi;
export default DropFix;

declare global {
  interface Window {
    /** Defined by the script-tag build (`dropfix/global`) or the loader stub. */
    DropFix: DropFixApi & { DropFixError?: typeof DropFixError };
  }
}
