// Public-key tokens for `dropfix/server`: the customer's backend signs with a private key that
// never leaves it, and the workspace registers only the public half, so nothing DropFix stores
// can mint a user. The payload (sub, iat, exp, traits) is built and validated by the same Rust
// core as the HS256 tokens (`claimsPayload` of the node-signing wasm); the signature is made by
// node:crypto, so the private key never enters the wasm.
//
// node:crypto is looked up when first needed, not imported: this module is part of
// `dropfix/server`, which edge runtimes load too (they have no node:crypto, and their bundlers
// refuse a static `node:` import), where only the HS256 and seed-form helpers work.
let nodeCrypto;
function nodeCryptoModule() {
  if (nodeCrypto) return nodeCrypto;
  const get = globalThis.process?.getBuiltinModule;
  nodeCrypto = typeof get === 'function' ? get('node:crypto') : undefined;
  if (!nodeCrypto) {
    throw new Error(
      'DropFix: public-key tokens (signClaims with { privateKey }, generateKeyPair) are signed with ' +
        "Node's crypto module (Node.js 20.16 or later); on an edge runtime, sign with the claims key " +
        '(signClaims with { secret }) or mint the token with a WebCrypto JWT library such as jose',
    );
  }
  return nodeCrypto;
}

/** The algorithms each key type can sign with; the first is the default. */
const ALGS_BY_KEY = {
  'ec:prime256v1': ['ES256'],
  'ec:secp384r1': ['ES384'],
  ed25519: ['EdDSA'],
  rsa: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
};
const MIN_RSA_BITS = 2048;

function keyType(key) {
  const { asymmetricKeyType: type, asymmetricKeyDetails: details } = key;
  if (type === 'ec') return `ec:${details?.namedCurve}`;
  return type;
}

function privateKeyFrom(privateKey) {
  if (privateKey === undefined || privateKey === null || privateKey === '') {
    throw new TypeError(
      'DropFix: no private key; pass { privateKey } (a PKCS#8 PEM, a private JWK or a KeyObject)',
    );
  }
  let key;
  try {
    if (privateKey instanceof nodeCryptoModule().KeyObject) key = privateKey;
    else if (typeof privateKey === 'object' && !Buffer.isBuffer(privateKey) && privateKey.kty) {
      key = nodeCryptoModule().createPrivateKey({ key: privateKey, format: 'jwk' });
    } else key = nodeCryptoModule().createPrivateKey(privateKey);
  } catch (e) {
    throw new TypeError(`DropFix: privateKey is not a readable private key (${e.message})`);
  }
  if (key.type !== 'private') {
    throw new TypeError('DropFix: privateKey is a public key; sign with the private half and register the public one');
  }
  return key;
}

/** The algorithms `key` can sign with, refusing what the verifier would refuse. */
function algorithmsOf(key) {
  const algs = ALGS_BY_KEY[keyType(key)];
  if (!algs) {
    throw new TypeError(
      `DropFix: unsupported key type ${keyType(key)}: use EC P-256 (ES256), Ed25519 (EdDSA) or RSA 2048+ bits (RS256, PS256)`,
    );
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (algs[0] === 'RS256' && bits < MIN_RSA_BITS) {
    throw new TypeError(`DropFix: RSA keys need at least ${MIN_RSA_BITS} bits; this one has ${bits}`);
  }
  return algs;
}

/** The node:crypto signature of `data` with `alg`, in JWS form (ECDSA as raw r || s). */
function jwsSignature(alg, data, key) {
  const hash = `sha${alg.slice(2)}`;
  switch (alg.slice(0, 2)) {
    case 'ES':
      return nodeCryptoModule().sign(hash, data, { key, dsaEncoding: 'ieee-p1363' });
    case 'RS':
      return nodeCryptoModule().sign(hash, data, { key, padding: nodeCryptoModule().constants.RSA_PKCS1_PADDING });
    case 'PS':
      return nodeCryptoModule().sign(hash, data, {
        key,
        padding: nodeCryptoModule().constants.RSA_PKCS1_PSS_PADDING,
        saltLength: nodeCryptoModule().constants.RSA_PSS_SALTLEN_DIGEST,
      });
    default: // EdDSA: Ed25519 hashes internally.
      return nodeCryptoModule().sign(null, data, key);
  }
}

function b64url(data) {
  return Buffer.from(data).toString('base64url');
}

function checkedText(name, value) {
  if (typeof value !== 'string' || value === '' || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new TypeError(`DropFix: ${name} must be a non-empty string without control characters`);
  }
  return value;
}

/**
 * A public-key token: `payloadJson` (built by the core) with `iss`/`aud` added when given, signed
 * with `options.privateKey`. `core` is the node-signing wasm module.
 */
export function signWithPrivateKey(core, id, claims, iat, exp, options) {
  if (!(exp > iat)) throw new TypeError('DropFix: ttlSeconds must be a positive number of seconds');
  const key = privateKeyFrom(options.privateKey);
  const algs = algorithmsOf(key);
  const alg = options.alg ?? algs[0];
  if (!algs.includes(alg)) {
    throw new TypeError(`DropFix: a ${keyType(key)} key signs ${algs.join(', ')}, not ${alg}`);
  }
  const payload = JSON.parse(core.claimsPayload(id, iat, exp, claims ?? {}));
  if (options.iss !== undefined) payload.iss = checkedText('iss', options.iss);
  if (options.aud !== undefined) {
    const auds = Array.isArray(options.aud) ? options.aud : [options.aud];
    if (auds.length === 0) throw new TypeError('DropFix: aud must name at least one audience');
    auds.forEach((a) => checkedText('aud', a));
    payload.aud = Array.isArray(options.aud) ? auds : options.aud;
  }
  const header = { alg, typ: 'JWT' };
  if (options.kid !== undefined) header.kid = checkedText('kid', options.kid);
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${b64url(jwsSignature(alg, Buffer.from(input), key))}`;
}

/**
 * The RFC 7638 thumbprint of a public JWK: SHA-256 over its required members in lexicographic
 * order, base64url. A stable `kid` that anyone holding the public key can recompute.
 */
export function jwkThumbprint(jwk) {
  const required = { EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'], RSA: ['e', 'kty', 'n'] }[jwk.kty];
  if (!required) throw new TypeError(`DropFix: no thumbprint for a ${jwk.kty} key`);
  const canonical = `{${required.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`;
  return nodeCryptoModule().createHash('sha256').update(canonical).digest('base64url');
}

/**
 * A new key pair for public-key tokens. `alg` (default ES256) picks the key type: ES256 (EC
 * P-256), ES384 (P-384), EdDSA (Ed25519), or RS256/PS256 and their SHA-384/512 variants (RSA,
 * `modulusLength` bits, default 3072). The public JWK names its `alg` (the verifier then accepts
 * only that one for it) and carries `kid`, its thumbprint.
 */
export function generateKeyPair({ alg = 'ES256', modulusLength = 3072 } = {}) {
  let pair;
  if (alg === 'ES256') pair = nodeCryptoModule().generateKeyPairSync('ec', { namedCurve: 'P-256' });
  else if (alg === 'ES384') pair = nodeCryptoModule().generateKeyPairSync('ec', { namedCurve: 'P-384' });
  else if (alg === 'EdDSA') pair = nodeCryptoModule().generateKeyPairSync('ed25519');
  else if (ALGS_BY_KEY.rsa.includes(alg)) {
    if (!Number.isInteger(modulusLength) || modulusLength < MIN_RSA_BITS) {
      throw new TypeError(`DropFix: modulusLength must be at least ${MIN_RSA_BITS}`);
    }
    pair = nodeCryptoModule().generateKeyPairSync('rsa', { modulusLength });
  } else {
    throw new TypeError(`DropFix: alg must be one of ES256, ES384, EdDSA, ${ALGS_BY_KEY.rsa.join(', ')}`);
  }
  const jwk = pair.publicKey.export({ format: 'jwk' });
  const kid = jwkThumbprint(jwk);
  return {
    privateKey: pair.privateKey.export({ format: 'pem', type: 'pkcs8' }),
    publicKey: pair.publicKey.export({ format: 'pem', type: 'spki' }),
    publicJwk: { ...jwk, kid, alg, use: 'sig' },
    kid,
    alg,
  };
}
