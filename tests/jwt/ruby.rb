# Issues a signed-claims token the way a Ruby backend would, with ruby-jwt.
require 'jwt'

now = Time.now.to_i
payload = { sub: ENV['SUB'], iat: now, exp: now + 300, plan: ENV['PLAN'], mrr: ENV['MRR'].to_f }
puts JWT.encode(payload, ENV['DROPFIX_SECRET_KEY'], 'HS256')
