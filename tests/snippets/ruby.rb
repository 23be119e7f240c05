# The seed page's Ruby snippet (Step 1), verbatim between the BEGIN/END markers. The wrapper
# stands in for the Rails controller: `user` comes from USER_ID and `render json:` prints.
require 'openssl'
require 'json'

User = Struct.new(:id)

def render(json:)
  puts JSON.generate(json)
end

def login(user)
# BEGIN seed snippet
signed_at = Time.now.to_i
dropfix_hash = OpenSSL::HMAC.hexdigest(
'SHA256',
ENV['DROPFIX_SECRET_KEY'],
user.id.to_s
)
# Return both to the frontend
render json: { dropfix_hash: dropfix_hash, dropfix_signed_at: signed_at }
# END seed snippet
end

login(User.new(ENV['USER_ID']))
