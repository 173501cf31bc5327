//! The join command `catalyst server` prints for other machines:
//! `catalyst nodelet --server https://HOST:PORT --join-token TOKEN`, where HOST is an address
//! other machines reach the server at — `--advertise-address`, else the listen address unless
//! it is a wildcard, else this machine's first global address — and is one the server's
//! generated certificate names.

use std::net::{IpAddr, SocketAddr};

/// Interfaces whose addresses other machines do not reach the server at: the bridges of
/// game servers and container runtimes, and veths.
const LOCAL_ONLY_PREFIXES: [&str; 5] = ["catalyst", "cni", "docker", "veth", "virbr"];

/// The global addresses in the output of `ip -o addr show scope global`, IPv4 first, without
/// those of [`LOCAL_ONLY_PREFIXES`] interfaces.
pub fn global_addresses(ip_output: &str) -> Vec<IpAddr> {
    let mut found: Vec<IpAddr> = ip_output
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let iface = f.nth(1)?;
            let _family = f.next()?;
            let addr = f.next()?.split('/').next()?.parse::<IpAddr>().ok()?;
            (!LOCAL_ONLY_PREFIXES.iter().any(|p| iface.starts_with(p))).then_some(addr)
        })
        .collect();
    found.sort_by_key(|a| a.is_ipv6());
    found
}

/// This machine's global addresses (`ip -o addr show scope global`); empty when `ip` fails.
pub fn this_machines_addresses() -> Vec<IpAddr> {
    std::process::Command::new("ip")
        .args(["-o", "addr", "show", "scope", "global"])
        .output()
        .map(|o| global_addresses(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default()
}

/// The host other machines reach a server listening on `listen` at: `given`, else the
/// listen IP unless it is a wildcard, else the first of `global` (of the listen address's
/// family for `0.0.0.0`), else None.
pub fn advertise_host(
    given: Option<&str>,
    listen: SocketAddr,
    global: &[IpAddr],
) -> Option<String> {
    if let Some(g) = given.map(str::trim).filter(|g| !g.is_empty()) {
        return Some(g.to_owned());
    }
    if !listen.ip().is_unspecified() {
        return Some(listen.ip().to_string());
    }
    global
        .iter()
        .find(|a| listen.is_ipv6() || a.is_ipv4())
        .map(IpAddr::to_string)
}

/// `https://HOST:PORT` (`http://` without TLS), an IPv6 address in brackets.
pub fn url(tls: bool, host: &str, port: u16) -> String {
    let scheme = if tls { "https" } else { "http" };
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("{scheme}://[{v6}]:{port}"),
        _ => format!("{scheme}://{host}:{port}"),
    }
}

/// The command that joins another machine to the cluster at `url` with `token`.
pub fn command(url: &str, token: &str) -> String {
    format!(
        "catalyst nodelet --server {url} --join-token {}",
        token.trim()
    )
}

/// How the join command names several servers sharing one store: a comma list.
pub fn several_servers_hint(url: &str) -> String {
    format!("(servers sharing this store: --server {url},https://OTHER:PORT,… — the nodelet holds a tunnel to each)")
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP_OUTPUT: &str = "\
2: eth0    inet 192.168.1.20/24 brd 192.168.1.255 scope global dynamic eth0\\       valid_lft 85000sec preferred_lft 85000sec
3: catalyst0    inet 10.89.0.1/16 brd 10.89.255.255 scope global catalyst0\\       valid_lft forever preferred_lft forever
4: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\\       valid_lft forever preferred_lft forever
2: eth0    inet6 2001:db8::20/64 scope global dynamic mngtmpaddr \\       valid_lft 86000sec preferred_lft 14000sec
5: wg0    inet 10.8.0.3/24 scope global wg0\\       valid_lft forever preferred_lft forever
";

    #[test]
    fn global_addresses_skip_bridges_and_put_ipv4_first() {
        let found: Vec<String> = global_addresses(IP_OUTPUT)
            .iter()
            .map(IpAddr::to_string)
            .collect();
        assert_eq!(found, ["192.168.1.20", "10.8.0.3", "2001:db8::20"]);
        assert!(global_addresses("").is_empty());
        assert!(global_addresses("garbage\n1: lo\n").is_empty());
    }

    #[test]
    fn the_advertised_host_is_given_else_the_listen_ip_else_a_global_address() {
        let any4: SocketAddr = "0.0.0.0:7443".parse().unwrap();
        let any6: SocketAddr = "[::]:7443".parse().unwrap();
        let one: SocketAddr = "10.0.0.1:7443".parse().unwrap();
        let global = global_addresses(IP_OUTPUT);
        let v6only: Vec<IpAddr> = vec!["2001:db8::20".parse().unwrap()];
        let host = |given, listen, global: &[IpAddr]| advertise_host(given, listen, global);
        assert_eq!(
            host(Some("cat.example"), one, &global).as_deref(),
            Some("cat.example")
        );
        assert_eq!(host(Some(" "), one, &global).as_deref(), Some("10.0.0.1"));
        assert_eq!(host(None, one, &global).as_deref(), Some("10.0.0.1"));
        assert_eq!(host(None, any4, &global).as_deref(), Some("192.168.1.20"));
        assert_eq!(host(None, any4, &v6only), None);
        assert_eq!(host(None, any6, &v6only).as_deref(), Some("2001:db8::20"));
        assert_eq!(host(None, any4, &[]), None);
    }

    #[test]
    fn the_command_names_the_url_and_the_token() {
        assert_eq!(url(true, "10.0.0.1", 7443), "https://10.0.0.1:7443");
        assert_eq!(url(true, "2001:db8::1", 7443), "https://[2001:db8::1]:7443");
        assert_eq!(url(false, "cat.example", 80), "http://cat.example:80");
        assert_eq!(
            command("https://10.0.0.1:7443", "K10ab::cd\n"),
            "catalyst nodelet --server https://10.0.0.1:7443 --join-token K10ab::cd"
        );
    }
}
