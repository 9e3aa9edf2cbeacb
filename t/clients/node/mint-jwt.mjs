// Mints a JWT with jose (an independent implementation) for t/061:
//   node mint-jwt.mjs SECRET ALG CLAIMS_JSON
// ALG: HS256, HS384, HS512 or none (jose's UnsecuredJWT).  CLAIMS_JSON is
// the payload; "exp"/"nbf" are taken as given (seconds).
import { SignJWT, UnsecuredJWT } from 'jose';

const [secret, alg, claimsJson] = process.argv.slice(2);
const claims = JSON.parse(claimsJson);

let token;
if (alg === 'none') {
  token = new UnsecuredJWT(claims).encode();
} else {
  token = await new SignJWT(claims)
    .setProtectedHeader({ alg, typ: 'JWT' })
    .sign(new TextEncoder().encode(secret));
}
process.stdout.write(token + '\n');
