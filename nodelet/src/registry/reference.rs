//! Image references (`[host[:port]/]path[:tag][@digest]`), parsed the way Docker does and
//! checked so that no part of one can change the meaning of a URL built from it.

use super::error::RegistryError;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// host[:port] as written (docker.io for Docker Hub).
    pub registry: String,
    /// e.g. `library/busybox`.
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

fn valid_repository(path: &str) -> bool {
    // lowercase components of [a-z0-9] separated by `.`, `_`, `__` or dashes, as in the
    // distribution spec; nothing that could change a URL's meaning
    path.split('/').all(|c| {
        !c.is_empty()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    })
}

fn valid_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !tag.starts_with(['.', '-'])
}

/// True for `sha256:` and 64 lowercase hex digits, the only digests the nodelet accepts.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn valid_registry_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Parses `[host[:port]/]path[:tag][@digest]` the way Docker does.
pub fn parse_reference(image: &str) -> Result<Reference, RegistryError> {
    let bad = || RegistryError::Reference(image.to_owned());
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_owned())),
        None => (image, None),
    };
    let (first, remainder) = match rest.split_once('/') {
        Some((f, r)) if f.contains(['.', ':']) || f == "localhost" => (Some(f), r),
        _ => (None, rest),
    };
    let (path, tag) = match remainder.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p, Some(t.to_owned())),
        _ => (remainder, None),
    };
    if path.is_empty() || path.starts_with('/') || path.ends_with('/') {
        return Err(bad());
    }
    let registry = first.unwrap_or("docker.io").to_owned();
    let repository = if registry == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_owned()
    };
    if !valid_registry_host(&registry)
        || !valid_repository(&repository)
        || tag.as_deref().is_some_and(|t| !valid_tag(t))
        || digest.as_deref().is_some_and(|d| !valid_digest(d))
    {
        return Err(bad());
    }
    Ok(Reference {
        registry,
        repository,
        reference: digest.or(tag).unwrap_or_else(|| "latest".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_docker_does() {
        let r = |s: &str| parse_reference(s).expect(s);
        assert_eq!(
            r("busybox"),
            Reference {
                registry: "docker.io".into(),
                repository: "library/busybox".into(),
                reference: "latest".into()
            }
        );
        assert_eq!(
            r("ghcr.io/pterodactyl/yolks:java_21").repository,
            "pterodactyl/yolks"
        );
        assert_eq!(r("ghcr.io/pterodactyl/yolks:java_21").reference, "java_21");
        let local = r("127.0.0.1:5000/games/mumble:1.3");
        assert_eq!(local.registry, "127.0.0.1:5000");
        assert_eq!(local.repository, "games/mumble");
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(r(&format!("localhost/x@{digest}")).reference, digest);
        assert_eq!(r("user/repo").repository, "user/repo");
        assert_eq!(r("[::1]:5000/a/b:c").registry, "[::1]:5000");
        assert!(parse_reference("ghcr.io/").is_err());
    }

    #[test]
    fn references_that_could_bend_a_url_are_refused() {
        for bad in [
            "localhost:5000/a/../b",
            "localhost:5000/a?x=1",
            "localhost:5000/a#frag",
            "localhost:5000/A",
            "localhost:5000/a:t@sha256:abc",
            "localhost:5000/a@sha256:../../x",
            "localhost:5000/a:../x",
            "evil.com@other/x",
            "localhost:5000/a%2fb",
            "localhost:5000/a:-t",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }
}
