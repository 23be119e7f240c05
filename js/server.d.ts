export interface SignOptions {
  /** The workspace secret key. Default: `process.env.DROPFIX_SECRET_KEY`. */
  secret?: string;
  /** Unix seconds. Default: now. */
  now?: number;
}

export interface SignedUser {
  /** `hex(HMAC-SHA256(secret, userId))`: pass as `hash` (or `signature`). */
  dropfix_hash: string;
  /** Unix seconds: pass as `signedAt`. */
  dropfix_signed_at: number;
}

/** Seed form, as Step 1 of "Secure your identify() call". */
export declare function signUser(userId: string | number, options?: SignOptions): SignedUser;

/** Trusted traits to put under the MAC. */
export interface Claims {
  plan?: string;
  mrr?: number;
  email?: string;
  name?: string;
}

/** Signed claims: an HS256 token to pass as `signature` (no `signedAt` needed). */
export declare function signClaims(
  userId: string | number,
  claims?: Claims,
  options?: SignOptions & { /** Default 300. */ ttlSeconds?: number },
): string;
