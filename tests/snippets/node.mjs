// The seed page's Node snippet (Step 1), verbatim between the BEGIN/END markers. The wrapper
// only feeds it a user from USER_ID and prints what it returns; DROPFIX_SECRET_KEY comes from the
// environment exactly as in production.
import { createHmac } from 'crypto'

function login(user) {
// BEGIN seed snippet
const signed_at = Math.floor(Date.now() / 1000)
const dropfix_hash = createHmac('sha256', process.env.DROPFIX_SECRET_KEY)
.update(user.id)
.digest('hex')
// Return both to the frontend
return { user: { ...user, dropfix_hash, dropfix_signed_at: signed_at } }
// END seed snippet
}

const { user } = login({ id: process.env.USER_ID, name: 'Ada' })
console.log(JSON.stringify({ dropfix_hash: user.dropfix_hash, dropfix_signed_at: user.dropfix_signed_at }))
