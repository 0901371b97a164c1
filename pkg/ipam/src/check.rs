//! The first steps of every interface plugin's CHECK on the container interface of
//! `prevResult`, in the reference's wording, which differs a little from plugin to plugin.

use rcni_netlink::{Link, LinkRef, Netlink, format_mac};
use rcni_types::{Error, Interface, Result};

/// How a plugin words its CHECK errors: the reference's macvlan starts them in lower
/// case; its ptp and vlan put their name before "Container Interface ... not found" and
/// the MAC mismatch.
#[derive(Debug, Clone, Copy)]
pub struct Wording {
    pub prefix: &'static str,
    pub lower_case: bool,
}

impl Wording {
    /// Most reference plugins: capitalised, no prefix.
    pub const GO: Wording = Wording {
        prefix: "",
        lower_case: false,
    };

    fn say(self, text: &str) -> String {
        let mut chars = text.chars();
        match chars.next() {
            Some(first) if self.lower_case => first.to_lowercase().chain(chars).collect(),
            _ => text.to_string(),
        }
    }
}

/// Checks that `iface` (an interface of `prevResult`) is named, exists through `ctr`, is
/// of link kind `kind.0` when given (named `kind.1` in the error, e.g. "veth/p2p"), and
/// has the MAC the result gives it, if any. Returns the link for the plugin's own checks.
///
/// # Errors
/// The first of these that fails, as the reference words it.
pub fn check_container_link(
    ctr: &mut dyn Netlink,
    iface: &Interface,
    kind: Option<(&str, &str)>,
    wording: Wording,
) -> Result<Link> {
    let fail = |text: String| Err(Error::internal(text));
    if iface.name.is_empty() {
        return fail(wording.say("Container interface name missing in prevResult: "));
    }
    let Ok(link) = ctr.get_link(&LinkRef::from(iface.name.as_str())) else {
        return fail(format!(
            "{}{}",
            wording.prefix,
            wording.say(&format!(
                "Container Interface name in prevResult: {} not found",
                iface.name
            ))
        ));
    };
    if let Some((kind, label)) = kind
        && link.kind.as_deref() != Some(kind)
    {
        return fail(wording.say(&format!(
            "Error: Container interface {} not of type {label}",
            link.name
        )));
    }
    let mac = link.mac.map(format_mac).unwrap_or_default();
    if !iface.mac.is_empty() && !iface.mac.eq_ignore_ascii_case(&mac) {
        return fail(format!(
            "{}{}",
            wording.prefix,
            wording.say(&format!(
                "Interface {} Mac {} doesn't match container Mac: {mac}",
                iface.name, iface.mac
            ))
        ));
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use rcni_netlink::FakeNetlink;

    use super::*;

    fn iface(name: &str, mac: &str) -> Interface {
        Interface {
            name: name.into(),
            mac: mac.into(),
            ..Interface::default()
        }
    }

    #[test]
    fn each_failure_in_each_wording() {
        let mut ctr = FakeNetlink::new();
        let link = ctr.seed_link("eth0", Some("veth"));
        let mac = link.mac.map(format_mac).unwrap_or_default();
        let macvlan = Wording {
            prefix: "",
            lower_case: true,
        };
        let ptp = Wording {
            prefix: "ptp: ",
            lower_case: false,
        };
        let msg = |r: Result<Link>| r.expect_err("fails").msg;
        assert_eq!(
            msg(check_container_link(
                &mut ctr,
                &iface("", ""),
                None,
                macvlan
            )),
            "container interface name missing in prevResult: "
        );
        assert_eq!(
            msg(check_container_link(
                &mut ctr,
                &iface("eth9", ""),
                None,
                ptp
            )),
            "ptp: Container Interface name in prevResult: eth9 not found"
        );
        assert_eq!(
            msg(check_container_link(
                &mut ctr,
                &iface("eth0", ""),
                Some(("macvlan", "macvlan")),
                macvlan
            )),
            "error: Container interface eth0 not of type macvlan"
        );
        assert_eq!(
            msg(check_container_link(
                &mut ctr,
                &iface("eth0", "02:00:00:00:00:01"),
                Some(("veth", "veth/p2p")),
                ptp
            )),
            format!("ptp: Interface eth0 Mac 02:00:00:00:00:01 doesn't match container Mac: {mac}")
        );
        let found = check_container_link(
            &mut ctr,
            &iface("eth0", &mac.to_uppercase()),
            Some(("veth", "veth/p2p")),
            Wording::GO,
        )
        .expect("matches");
        assert_eq!(found.index, link.index);
    }
}
