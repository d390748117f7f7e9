//! etcd's JWT tokens (`--auth-token jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…`): signed
//! claims `{username, revision, exp}`, so any member with the public key can check a token
//! without state. The revision in the token is the auth revision at sign-in: a token from before
//! a permission change is refused with "revision of auth store is old" and clients sign in again.
//! A member given only the public key checks tokens but cannot hand them out (etcd's rule).

use crate::config::GoDuration;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// etcd's default lifetime of a JWT.
const DEFAULT_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, PartialEq, Eq)]
pub struct JwtOptions {
    pub public_key: String,
    pub private_key: Option<String>,
    pub algorithm: Algorithm,
    pub ttl: Duration,
}

impl JwtOptions {
    /// Parses the options after `jwt,` in `--auth-token`.
    pub fn parse(options: &str) -> Result<JwtOptions, String> {
        let (mut public_key, mut private_key, mut algorithm, mut ttl) = (None, None, None, None);
        for pair in options.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("invalid JWT option {pair:?}: expected key=value"))?;
            let seen = match key {
                "pub-key" => public_key.replace(value.to_string()).is_some(),
                "priv-key" => private_key.replace(value.to_string()).is_some(),
                "sign-method" => {
                    let alg: Algorithm = value
                        .parse()
                        .map_err(|_| format!("invalid JWT sign-method {value:?}"))?;
                    algorithm.replace(alg).is_some()
                }
                "ttl" => {
                    let d: GoDuration = value
                        .parse()
                        .map_err(|e| format!("invalid JWT ttl {value:?}: {e}"))?;
                    ttl.replace(d.0).is_some()
                }
                other => return Err(format!("unknown JWT option {other:?}")),
            };
            if seen {
                return Err(format!("JWT option {key:?} given twice"));
            }
        }
        Ok(JwtOptions {
            public_key: public_key.ok_or("JWT needs pub-key=<file>")?,
            private_key,
            algorithm: algorithm.ok_or("JWT needs sign-method=<RS256|ES256|…>")?,
            ttl: ttl.unwrap_or(DEFAULT_TTL),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

pub struct JwtTokens {
    algorithm: Algorithm,
    signing: Option<EncodingKey>,
    checking: DecodingKey,
    ttl: Duration,
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading JWT key {path}: {e}"))
}

impl JwtTokens {
    pub fn load(o: &JwtOptions) -> Result<JwtTokens, String> {
        use Algorithm::*;
        let public = read(&o.public_key)?;
        let private = o.private_key.as_deref().map(read).transpose()?;
        let private_path = o.private_key.as_deref().unwrap_or_default();
        let bad_public = |e: jsonwebtoken::errors::Error| {
            format!("JWT key {} for {:?}: {e}", o.public_key, o.algorithm)
        };
        let bad = |e: jsonwebtoken::errors::Error| {
            format!("JWT key {private_path} for {:?}: {e}", o.algorithm)
        };
        let (checking, signing) = match o.algorithm {
            HS256 | HS384 | HS512 => (
                DecodingKey::from_secret(&public),
                private.map(|k| EncodingKey::from_secret(&k)),
            ),
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => (
                DecodingKey::from_rsa_pem(&public).map_err(bad_public)?,
                private
                    .map(|k| EncodingKey::from_rsa_pem(&k))
                    .transpose()
                    .map_err(bad)?,
            ),
            ES256 | ES384 => (
                DecodingKey::from_ec_pem(&public).map_err(bad_public)?,
                private
                    .map(|k| EncodingKey::from_ec_pem(&k))
                    .transpose()
                    .map_err(bad)?,
            ),
            EdDSA => (
                DecodingKey::from_ed_pem(&public).map_err(bad_public)?,
                private
                    .map(|k| EncodingKey::from_ed_pem(&k))
                    .transpose()
                    .map_err(bad)?,
            ),
        };
        let tokens = JwtTokens {
            algorithm: o.algorithm,
            signing,
            checking,
            ttl: o.ttl,
        };
        // A key pair that does not match would hand out tokens nobody accepts: found at start.
        if tokens.signing.is_some() {
            let probe = tokens.sign("probe", 1)?;
            tokens
                .check(&probe)
                .ok_or("the JWT private key does not match the public key")?;
        }
        Ok(tokens)
    }

    /// A token for `user` at auth revision `revision`.
    pub fn sign(&self, user: &str, revision: u64) -> Result<String, String> {
        let key = self
            .signing
            .as_ref()
            .ok_or("this member has no JWT private key (priv-key) to sign tokens with")?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let claims = Claims {
            username: user.to_string(),
            revision,
            exp: (now + self.ttl).as_secs(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key)
            .map_err(|e| format!("signing a JWT: {e}"))
    }

    /// The user and auth revision of a valid, unexpired token.
    pub fn check(&self, token: &str) -> Option<(String, u64)> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.checking, &validation).ok()?;
        Some((data.claims.username, data.claims.revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_as_etcd_spells_them() {
        let o = JwtOptions::parse("pub-key=/p,priv-key=/k,sign-method=RS256,ttl=10m").unwrap();
        assert_eq!(o.public_key, "/p");
        assert_eq!(o.private_key.as_deref(), Some("/k"));
        assert_eq!(o.algorithm, Algorithm::RS256);
        assert_eq!(o.ttl, Duration::from_secs(600));
        let o = JwtOptions::parse("pub-key=/p,sign-method=ES256").unwrap();
        assert_eq!((o.private_key, o.ttl), (None, DEFAULT_TTL));
        assert!(JwtOptions::parse("priv-key=/k,sign-method=ES256").is_err());
        assert!(JwtOptions::parse("pub-key=/p").is_err());
        assert!(JwtOptions::parse("pub-key=/p,sign-method=XX1").is_err());
        assert!(JwtOptions::parse("pub-key=/p,pub-key=/q,sign-method=ES256").is_err());
        assert!(JwtOptions::parse("pub-key=/p,sign-method=ES256,color=red").is_err());
        assert!(JwtOptions::parse("pub-key,sign-method=ES256").is_err());
    }

    #[test]
    fn signed_tokens_check_and_forged_or_expired_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let (pubk, privk) = (dir.path().join("pub.pem"), dir.path().join("priv.pem"));
        std::fs::write(&pubk, key.public_key_pem()).unwrap();
        std::fs::write(&privk, key.serialize_pem()).unwrap();
        let opts = |ttl: &str, with_private: bool| {
            let mut s = format!("pub-key={},sign-method=ES256,ttl={ttl}", pubk.display());
            if with_private {
                s.push_str(&format!(",priv-key={}", privk.display()));
            }
            JwtOptions::parse(&s).unwrap()
        };
        let t = JwtTokens::load(&opts("5m", true)).unwrap();
        let token = t.sign("alice", 7).unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(t.check(&token), Some(("alice".to_string(), 7)));
        let verify_only = JwtTokens::load(&opts("5m", false)).unwrap();
        assert_eq!(verify_only.check(&token), Some(("alice".to_string(), 7)));
        assert!(verify_only.sign("alice", 7).is_err());
        let mut forged = token.clone();
        forged.replace_range(forged.len() - 4.., "AAAA");
        assert_eq!(t.check(&forged), None);
        let other = rcgen::KeyPair::generate().unwrap();
        let other_priv = dir.path().join("other.pem");
        std::fs::write(&other_priv, other.serialize_pem()).unwrap();
        let mismatched = JwtOptions::parse(&format!(
            "pub-key={},priv-key={},sign-method=ES256",
            pubk.display(),
            other_priv.display()
        ))
        .unwrap();
        assert!(JwtTokens::load(&mismatched).is_err());
        let short = JwtTokens::load(&opts("1s", true)).unwrap();
        let soon_expired = short.sign("bob", 1).unwrap();
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(short.check(&soon_expired), None);
    }
}
