// Issues a public-key token the way a Node backend would, with `jose`: the private key from
// KEY_FILE (PKCS#8 PEM), the algorithm ALG, and optional KID, ISS, AUD (comma-separated: several
// make an array), EXP_IN / NBF_IN (seconds from now), EXTRA_HEADER (JSON merged into the header).
// With PRINT_JWK=1 it prints the public JWK of KEY_FILE instead (as node:crypto exports it), with
// PRINT_JWK=private the private JWK.
import { readFileSync } from 'node:fs'
import { createPrivateKey, createPublicKey } from 'node:crypto'
import { SignJWT, importPKCS8 } from 'jose'

const env = process.env
const pem = readFileSync(env.KEY_FILE, 'utf8')
if (env.PRINT_JWK) {
  const key = env.PRINT_JWK === 'private' ? createPrivateKey(pem) : createPublicKey(pem)
  console.log(JSON.stringify(key.export({ format: 'jwk' })))
  process.exit(0)
}
const key = await importPKCS8(pem, env.ALG)
const now = Math.floor(Date.now() / 1000)
const header = { alg: env.ALG, ...(env.KID ? { kid: env.KID } : {}), ...JSON.parse(env.EXTRA_HEADER || '{}') }
let jwt = new SignJWT({
  plan: env.PLAN, mrr: Number(env.MRR), signup_date: env.SIGNUP_DATE, team: env.TEAM,
})
  .setProtectedHeader(header)
  .setSubject(env.SUB)
  .setIssuedAt(now)
  .setExpirationTime(now + Number(env.EXP_IN || 300))
if (env.NBF_IN) jwt = jwt.setNotBefore(now + Number(env.NBF_IN))
if (env.ISS) jwt = jwt.setIssuer(env.ISS)
if (env.AUD) jwt = jwt.setAudience(env.AUD.includes(',') ? env.AUD.split(',') : env.AUD)
console.log(await jwt.sign(key))
