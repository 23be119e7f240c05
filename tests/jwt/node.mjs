// Issues a signed-claims token the way a Node backend would, with `jsonwebtoken`.
import jwt from 'jsonwebtoken'

const token = jwt.sign(
  { sub: process.env.SUB, plan: process.env.PLAN, mrr: Number(process.env.MRR) },
  process.env.DROPFIX_SECRET_KEY,
  { algorithm: 'HS256', expiresIn: '5m' },
)
console.log(token)
