# Issues a signed-claims token the way a Ruby backend would, with ruby-jwt.
require 'jwt'

now = Time.now.to_i
payload = { sub: ENV['SUB'], iat: now, exp: now + 300, plan: ENV['PLAN'], mrr: ENV['MRR'].to_f,
            signup_date: ENV['SIGNUP_DATE'], team: ENV['TEAM'] }
# The workspace's claims key (dfck_...), not the secret: tokens and seed hashes use separate keys.
puts JWT.encode(payload, ENV['DROPFIX_CLAIMS_KEY'], 'HS256')
