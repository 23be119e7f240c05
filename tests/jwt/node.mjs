// Issues a signed-claims token the way a Node backend would, with `jsonwebtoken`.
import jwt from 'jsonwebtoken'

const token = jwt.sign(
  {
    sub: process.env.SUB, plan: process.env.PLAN, mrr: Number(process.env.MRR),
    signup_date: process.env.SIGNUP_DATE, team: process.env.TEAM,
  },
  // The workspace's claims key (dfck_...), not the secret: tokens and seed hashes use separate keys.
  process.env.DROPFIX_CLAIMS_KEY,
  { algorithm: 'HS256', expiresIn: '5m' },
)
console.log(token)
