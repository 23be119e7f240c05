// Which key signs what: the seed form (`signUser`) is keyed with the workspace secret
// (`DROPFIX_SECRET_KEY`, `dfsk_...`). Signed-claims tokens are keyed with the workspace's claims
// key (`dfck_...`), derived from the secret: `signClaims` derives it for you; `claimsKey` returns it
// for signing with your own JWT library. A token signed with the secret itself is refused.

/** Optional fields also take an explicit `undefined` ("absent"): `secret: process.env.X` compiles under `exactOptionalPropertyTypes`. */
export interface SignOptions {
  /**
   * The workspace secret key (`dfsk_...`), never the claims key. Default:
   * `process.env.DROPFIX_SECRET_KEY`.
   */
  secret?: string | undefined;
  /** Unix seconds. Default: now. */
  now?: number | undefined;
}

export interface SignedUser {
  /** `hex(HMAC-SHA256(secret, userId))`: pass as `hash` (or `signature`). */
  dropfix_hash: string;
  /** Unix seconds: pass as `signedAt`. */
  dropfix_signed_at: number;
}

/** Seed form, as Step 1 of "Secure your identify() call". */
export declare function signUser(userId: string | number, options?: SignOptions): SignedUser;

/**
 * Trusted traits to put under the MAC: the standard ones and any custom trait (string, number,
 * boolean or null; reserved names such as `verified` are refused). A trait that is `undefined` is
 * left out of the token.
 */
export interface Claims {
  plan?: string | undefined;
  mrr?: number | undefined;
  email?: string | undefined;
  name?: string | undefined;
  signup_date?: string | undefined;
  [trait: string]: string | number | boolean | null | undefined;
}

/**
 * The workspace's claims key (`dfck_` + 64 hex digits) derived from `secret` (default
 * `process.env.DROPFIX_SECRET_KEY`): the HS256 key for an ordinary JWT library, e.g.
 * `jwt.sign({ sub: '42', plan: 'pro' }, claimsKey(), { algorithm: 'HS256', expiresIn: 300 })`.
 * Keep it on the server, like the secret.
 */
export declare function claimsKey(secret?: string | undefined): string;

/**
 * Signed claims: an HS256 token to pass as `signature` (no `signedAt` needed). Takes the workspace
 * secret and signs with the claims key derived from it.
 */
export declare function signClaims(
  userId: string | number,
  claims?: Claims,
  options?: SignOptions & { /** Default 300. */ ttlSeconds?: number | undefined },
): string;
