//! The SSRF guard: webhook URLs must not reach loopback, private, link-local or cloud
//! metadata addresses (unless `--webhook-allow-private`). Checked when an endpoint is saved
//! and again for every delivery through [`GuardedResolver`], which is the only resolver the
//! delivery client uses, so a name that re-resolves to a private address (DNS rebinding)
//! is refused at connection time. Redirects are never followed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why an address is refused, or `None` if it is public.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_reason(v4);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a unicast address")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                // fc00::/7 unique local (RFC 4193), which includes AWS's fd00:ec2::254 metadata.
                Some("private (unique local)")
            } else if s[0] == 0x64 && s[1] == 0xff9b {
                // NAT64 (RFC 6052) would reach an IPv4 address we cannot see: refused.
                Some("NAT64")
            } else {
                None
            }
        }
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        // 169.254.0.0/16, which holds the cloud metadata service 169.254.169.254.
        Some("link-local (cloud metadata)")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("carrier-grade NAT (shared, RFC 6598)")
    } else if ip.is_unspecified() || o[0] == 0 || ip.is_broadcast() || ip.is_multicast() {
        Some("not a unicast address")
    } else if o[0] >= 240 {
        Some("reserved")
    } else if o == [192, 0, 0, 192] || o == [100, 100, 100, 200] {
        // Oracle Cloud and Alibaba Cloud metadata.
        Some("cloud metadata")
    } else {
        None
    }
}

/// Checks a webhook URL as a client gives it: http or https, a host, and (unless private
/// addresses are allowed) every address it resolves to is public. The message says why not.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, String> {
    check_url_field("url", raw, allow_private).await
}

/// [`check_url`] for a URL given in the field `field` (e.g. an agent's `webhook_url`): the
/// message names that field.
pub async fn check_url_field(
    field: &str,
    raw: &str,
    allow_private: bool,
) -> Result<url::Url, String> {
    let u = url::Url::parse(raw.trim()).map_err(|e| format!("{field} is not a valid URL: {e}"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!(
            "{field} must be an http:// or https:// URL, got {}://",
            u.scheme()
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "{field} must not carry credentials (user:password@)"
        ));
    }
    let Some(host) = u.host_str() else {
        return Err(format!("{field} has no host"));
    };
    if allow_private {
        return Ok(u);
    }
    let port = u.port_or_known_default().unwrap_or(443);
    let addrs = resolve(host, port)
        .await
        .map_err(|e| format!("{field} host {host} does not resolve: {e}"))?;
    for a in &addrs {
        if let Some(why) = forbidden_reason(a.ip()) {
            return Err(format!(
                "{field} host {host} resolves to {} ({why}); webhooks may only reach public \
                 addresses (the server's --webhook-allow-private lifts this)",
                a.ip()
            ));
        }
    }
    Ok(u)
}

async fn resolve(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let v: Vec<SocketAddr> = tokio::net::lookup_host((h, port)).await?.collect();
    if v.is_empty() {
        return Err(std::io::Error::other("no addresses"));
    }
    Ok(v)
}

/// reqwest's resolver for deliveries: resolves, then refuses the name if any address is not
/// public (a mix would let the connection pick the private one).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve(&host, 0).await?;
            if let Some(a) = addrs.iter().find(|a| forbidden_reason(a.ip()).is_some()) {
                let why = forbidden_reason(a.ip()).unwrap_or("forbidden");
                return Err(Box::new(std::io::Error::other(format!(
                    "{host} resolves to {} ({why}): refused",
                    a.ip()
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// For an IP-literal URL (which no resolver sees): the reason it is refused.
pub fn literal_forbidden(u: &url::Url) -> Option<String> {
    let ip: IpAddr = match u.host()? {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    forbidden_reason(ip).map(|why| format!("{ip} is {why}: refused"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                forbidden_reason(bad.parse().unwrap()).is_some(),
                "{bad} allowed"
            );
        }
        for ok in ["8.8.8.8", "93.184.216.34", "2606:4700::1111"] {
            assert!(forbidden_reason(ok.parse().unwrap()).is_none(), "{ok}");
        }
    }

    #[tokio::test]
    async fn refuses_private_urls_unless_allowed() {
        let e = check_url("http://127.0.0.1:9/x", false).await.unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let e = check_url("http://[::1]/x", false).await.unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let e = check_url("http://169.254.169.254/latest", false)
            .await
            .unwrap_err();
        assert!(e.contains("metadata"), "{e}");
        assert!(check_url("ftp://example.com", false).await.is_err());
        assert!(check_url("http://127.0.0.1:9/x", true).await.is_ok());
        let e = check_url("http://localhost:9/x", false).await.unwrap_err();
        assert!(e.contains("loopback"), "{e}");
    }
}
