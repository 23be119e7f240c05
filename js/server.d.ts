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

/** The algorithms of public-key tokens, by key type. */
export type PublicKeyAlg =
  | 'ES256' // EC P-256
  | 'ES384' // EC P-384
  | 'EdDSA' // Ed25519
  | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512'; // RSA, 2048 bits or more

/** A private JWK (with `d`), as `crypto.KeyObject#export({ format: 'jwk' })` gives it. */
export interface PrivateJwk {
  kty: string;
  d: string;
  [member: string]: unknown;
}

/** A node:crypto `KeyObject` (described structurally: these declarations need no @types/node). */
export interface KeyObjectLike {
  readonly type: string;
  readonly asymmetricKeyType?: string;
}

export interface PublicKeySignOptions {
  /**
   * The private key that signs (PKCS#8 or SEC1/PKCS#1 PEM, a private JWK, or a KeyObject). The
   * workspace registers only its public half; no DropFix secret is used.
   */
  privateKey: string | Uint8Array | PrivateJwk | KeyObjectLike;
  /** The `kid` header: the kid the public key was registered with. Default: none. */
  kid?: string;
  /** Default from the key: ES256 (P-256), ES384 (P-384), EdDSA (Ed25519), RS256 (RSA). */
  alg?: PublicKeyAlg;
  /** The `iss` claim: what the workspace's issuer was registered with (`--iss`). */
  iss?: string;
  /** The `aud` claim: one of the issuer's audiences (`--aud`). */
  aud?: string | string[];
  /** Unix seconds. Default: now. */
  now?: number;
  /** The token's lifetime (`exp` = `iat` + this). Default 300. */
  ttlSeconds?: number;
}

/**
 * A public-key token to pass as `signature`: the same payload as the HS256 token (`sub`, `iat`,
 * `exp`, the trusted traits), plus `iss`/`aud` when given, signed with your private key.
 */
export declare function signClaims(
  userId: string | number,
  claims: Claims | undefined,
  options: PublicKeySignOptions,
): string;

/** A public JWK as DropFix registers it. */
export interface PublicJwk {
  kty: 'EC' | 'OKP' | 'RSA';
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
  /** The RFC 7638 thumbprint of the key. */
  kid: string;
  alg: PublicKeyAlg;
  use: 'sig';
}

export interface KeyPair {
  /** PKCS#8 PEM: keep it on your backend (a secret manager, never the repository). */
  privateKey: string;
  /** SubjectPublicKeyInfo PEM: what `workspace add-issuer --public-key` takes. */
  publicKey: string;
  /** The public key as a JWK with `kid`, `alg` and `use`: also what add-issuer takes. */
  publicJwk: PublicJwk;
  /** The RFC 7638 thumbprint of the public key: pass it as `kid` to `signClaims`. */
  kid: string;
  alg: PublicKeyAlg;
}

/**
 * A new key pair for public-key tokens (default ES256). An RSA key has `modulusLength` bits
 * (default 3072, at least 2048).
 */
export declare function generateKeyPair(options?: { alg?: PublicKeyAlg; modulusLength?: number }): KeyPair;

/** The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK. */
export declare function jwkThumbprint(jwk: PublicJwk | { kty: string; [member: string]: unknown }): string;
