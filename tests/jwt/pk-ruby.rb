# Issues a public-key token the way a Ruby backend would, with ruby-jwt (EdDSA through rbnacl):
# the private key from KEY_FILE (PKCS#8 PEM), the algorithm ALG, and optional KID, ISS, AUD
# (comma-separated: several make an array), EXP_IN / NBF_IN (seconds from now).
require 'jwt'
require 'openssl'

pem = File.read(ENV.fetch('KEY_FILE'))
alg = ENV.fetch('ALG')
key = OpenSSL::PKey.read(pem)
if alg == 'EdDSA'
  require 'rbnacl'
  # ruby-jwt signs Ed25519 with rbnacl, which takes the 32-byte seed: the end of the PKCS#8 DER.
  key = RbNaCl::Signatures::Ed25519::SigningKey.new(key.private_to_der[-32..])
end
now = Time.now.to_i
payload = { sub: ENV['SUB'], iat: now, exp: now + Integer(ENV['EXP_IN'] || 300), plan: ENV['PLAN'],
            mrr: ENV['MRR'].to_f, signup_date: ENV['SIGNUP_DATE'], team: ENV['TEAM'] }
payload[:nbf] = now + Integer(ENV['NBF_IN']) if ENV['NBF_IN'].to_s != ''
payload[:iss] = ENV['ISS'] if ENV['ISS'].to_s != ''
if ENV['AUD'].to_s != ''
  aud = ENV['AUD'].split(',')
  payload[:aud] = aud.length > 1 ? aud : aud[0]
end
header = ENV['KID'].to_s != '' ? { kid: ENV['KID'] } : {}
puts JWT.encode(payload, key, alg, header)
